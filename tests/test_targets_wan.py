"""Wan adapter on a tiny random-weight pipeline of the real diffusers class."""

from __future__ import annotations

import targets_checks as tc
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture

FAMILY = tc.Family("wan", "separate", {"guidance_scale": 5.0, "negative_prompt": "blurry"})


def test_conditioning_space_and_dim() -> None:
    adapter = tc.adapter_of("wan")
    assert type(adapter).__name__ == "WanAdapter"
    assert adapter.conditioning_space == "wan/umt5"
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
