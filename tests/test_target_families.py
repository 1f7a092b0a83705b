"""Every target family on a tiny random-weight pipeline of its real diffusers class.

The same checks run for each family (one parametrized test each): the adapter's states are
what the denoiser receives, α=0 changes nothing, α≠0 shifts exactly α·v on the intended tokens
of the positive branch, the to-projection rule moves a prompt up to τ and no further,
attach/detach restores the pipeline, and mismatched packs are refused.
Family-specific checks follow at the end.
"""

from __future__ import annotations

import pytest
import torch

import targets_checks as tc
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture

# family spec, adapter class, conditioning space, tiny dim
FAMILIES = {
    "sd": (tc.Family("sd", "cat", {"guidance_scale": 7.5}), "SDAdapter", "sd/clip", 32),
    "sdxl": (
        tc.Family("sdxl", "cat", {"guidance_scale": 5.0}),
        "SDXLAdapter",
        "sdxl/clip-l+bigg",
        64,
    ),
    "sd3": (tc.Family("sd3", "cat", {"guidance_scale": 5.0}), "SD3Adapter", "sd3/clip+t5", 32),
    "flux": (
        tc.Family("flux", "separate", {"negative_prompt": "blurry", "true_cfg_scale": 2.0}),
        "FluxAdapter",
        "flux/t5",
        32,
    ),
    "qwen_image": (
        tc.Family("qwen_image", "separate", {"negative_prompt": "blurry", "true_cfg_scale": 2.0}),
        "QwenImageAdapter",
        "qwen_image/qwen2.5-vl",
        16,
    ),
    "zimage": (
        tc.Family("zimage", "list", {"guidance_scale": 3.0, "negative_prompt": "blurry"}, arg=2),
        "ZImageAdapter",
        "zimage/qwen3",
        16,
    ),
    "wan": (
        tc.Family("wan", "separate", {"guidance_scale": 5.0, "negative_prompt": "blurry"}),
        "WanAdapter",
        "wan/umt5",
        32,
    ),
    "cogvideox": (
        tc.Family("cogvideox", "cat", {"guidance_scale": 6.0}),
        "CogVideoXAdapter",
        "cogvideox/t5",
        32,
    ),
    "sana": (tc.Family("sana", "cat", {"guidance_scale": 4.5}), "SanaAdapter", "sana/gemma2", 8),
}
NAMES = list(FAMILIES)


def _family(name: str) -> tc.Family:
    return FAMILIES[name][0]


@pytest.mark.parametrize("name", NAMES)
def test_conditioning_space_and_dim(name: str) -> None:
    _, cls, space, dim = FAMILIES[name]
    adapter = tc.adapter_of(name)
    assert type(adapter).__name__ == cls
    assert adapter.conditioning_space == space
    assert adapter.dim == dim


@pytest.mark.parametrize("name", NAMES)
def test_states_match_what_the_denoiser_receives(name: str) -> None:
    tc.check_states_match_pipeline(_family(name))


@pytest.mark.parametrize("name", NAMES)
def test_alpha_zero_gives_identical_output(name: str) -> None:
    tc.check_alpha_zero_identical(_family(name))


@pytest.mark.parametrize("name", NAMES)
def test_shift_is_alpha_v_on_positive_branch_only(name: str) -> None:
    tc.check_shift_is_alpha_v(_family(name))


@pytest.mark.parametrize("name", NAMES)
def test_real_tokens_option_leaves_padding(name: str) -> None:
    tc.check_shift_is_alpha_v(_family(name), alpha=-1.0, tokens="real")


@pytest.mark.parametrize("name", NAMES)
def test_to_projection_rule_moves_up_to_tau_only(name: str) -> None:
    tc.check_to_projection(_family(name))


@pytest.mark.parametrize("name", NAMES)
def test_attach_detach_restores_pipeline(name: str) -> None:
    tc.check_attach_detach_restores(_family(name))


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_pack_refused(name: str) -> None:
    tc.check_mismatched_pack_refused(_family(name))


def test_sd_mask_is_clip_real_tokens() -> None:
    enc = tc.adapter_of("sd").encode(["a photo of a cat"])
    # BOS + 5 words + EOS, then padding
    assert enc.mask[0].tolist() == [True] * 7 + [False] * 70


def test_sd_steered_context_overrides_alpha() -> None:
    tc.check_steered_context(_family("sd"))


def test_sd3_t5_space_pack_steers_only_the_t5_positions() -> None:
    from safesteer.targets import adapter_for, attach, detach

    family = _family("sd3")
    pipe, _ = tc.make("sd3")
    t5 = adapter_for(pipe, conditioning_space="sd3/t5")
    assert t5.conditioning_space == "sd3/t5" and t5.encode(["a cat"]).states.shape[1] == 16
    pack = tc.random_pack(t5)
    _, base = tc.run(pipe, family, ["a cat"])
    attach(pipe, pack, alpha=1.0)
    _, steer = tc.run(pipe, family, ["a cat"])
    detach(pipe)
    shift = tc.branches(family, steer, 1)[0] - tc.branches(family, base, 1)[0]
    assert torch.equal(shift[0, :77], torch.zeros_like(shift[0, :77]))  # CLIP part untouched
    torch.testing.assert_close(shift[0, 77:], pack.global_vector.expand(16, -1))
