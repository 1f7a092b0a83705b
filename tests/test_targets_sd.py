"""Stable Diffusion adapter on a tiny random-weight StableDiffusionPipeline (real CLIP BPE)."""

from __future__ import annotations

import targets_checks as tc
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture

SD = tc.Family("sd", "cat", {"guidance_scale": 7.5})


def test_conditioning_space_and_dim() -> None:
    adapter = tc.adapter_of("sd")
    assert type(adapter).__name__ == "SDAdapter"
    assert adapter.conditioning_space == "sd/clip"
    assert adapter.dim == 32


def test_states_match_what_the_unet_receives() -> None:
    tc.check_states_match_pipeline(SD)


def test_mask_is_clip_real_tokens() -> None:
    enc = tc.adapter_of("sd").encode(["a photo of a cat"])
    # BOS + 5 words + EOS, then padding
    assert enc.mask[0].tolist() == [True] * 7 + [False] * 70


def test_alpha_zero_gives_identical_images() -> None:
    tc.check_alpha_zero_identical(SD)


def test_shift_is_alpha_v_on_positive_branch_only() -> None:
    tc.check_shift_is_alpha_v(SD)


def test_real_tokens_option_leaves_padding() -> None:
    tc.check_shift_is_alpha_v(SD, alpha=-1.0, tokens="real")


def test_attach_detach_restores_pipeline() -> None:
    tc.check_attach_detach_restores(SD)


def test_mismatched_pack_refused() -> None:
    tc.check_mismatched_pack_refused(SD)


def test_steered_context_overrides_alpha() -> None:
    tc.check_steered_context(SD)
