"""SD3 adapter on a tiny random-weight pipeline of the real diffusers class."""

from __future__ import annotations

import targets_checks as tc
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture

FAMILY = tc.Family("sd3", "cat", {"guidance_scale": 5.0})


def test_conditioning_space_and_dim() -> None:
    adapter = tc.adapter_of("sd3")
    assert type(adapter).__name__ == "SD3Adapter"
    assert adapter.conditioning_space == "sd3/clip+t5"
    assert adapter.dim == 32


def test_states_match_what_the_denoiser_receives() -> None:
    tc.check_states_match_pipeline(FAMILY)


def test_alpha_zero_gives_identical_output() -> None:
    tc.check_alpha_zero_identical(FAMILY)


def test_shift_is_alpha_v_on_positive_branch_only() -> None:
    tc.check_shift_is_alpha_v(FAMILY)


def test_real_tokens_option() -> None:
    tc.check_shift_is_alpha_v(FAMILY, alpha=-1.0, tokens="real")


def test_attach_detach_restores_pipeline() -> None:
    tc.check_attach_detach_restores(FAMILY)


def test_mismatched_pack_refused() -> None:
    tc.check_mismatched_pack_refused(FAMILY)


def test_t5_space_pack_steers_only_the_t5_positions() -> None:
    import torch

    from safesteer.targets import adapter_for, attach, detach

    pipe, _ = tc.make("sd3")
    t5 = adapter_for(pipe, conditioning_space="sd3/t5")
    assert t5.conditioning_space == "sd3/t5" and t5.encode(["a cat"]).states.shape[1] == 16
    pack = tc.random_pack(t5)
    _, base = tc.run(pipe, FAMILY, ["a cat"])
    attach(pipe, pack, alpha=1.0)
    _, steer = tc.run(pipe, FAMILY, ["a cat"])
    detach(pipe)
    shift = tc.branches(FAMILY, steer, 1)[0] - tc.branches(FAMILY, base, 1)[0]
    assert torch.equal(shift[0, :77], torch.zeros_like(shift[0, :77]))  # CLIP part untouched
    torch.testing.assert_close(shift[0, 77:], pack.global_vector.expand(16, -1))
