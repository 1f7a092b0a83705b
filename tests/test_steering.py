"""Steering arithmetic: ĥ = h + α·v, masks, per-prompt vectors and strengths, combination."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safesteer.errors import InputError, PackError
from safesteer.maths.pooling import masked_mean
from safesteer.maths.steering import (
    STEERING_RULES,
    combine_directions,
    projection_shift,
    projection_target,
    steer_states,
    steer_to_projection,
)


def test_adds_alpha_v_on_every_token() -> None:
    g = torch.Generator().manual_seed(0)
    h, v = torch.randn(2, 5, 8, generator=g), torch.randn(8, generator=g)
    out = steer_states(h, v, 3.0)
    assert torch.allclose(out - h, (3.0 * v).expand(2, 5, 8))
    assert not torch.equal(out, h)  # new tensor; input untouched
    assert torch.equal(steer_states(h, v, 0.0), h)


def test_token_mask_moves_only_real_tokens() -> None:
    h, v = torch.zeros(2, 3, 4), torch.ones(4)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out = steer_states(h, v, 2.0, token_mask=mask)
    assert out[0, :, 0].tolist() == [2.0, 2.0, 0.0]
    assert out[1, :, 0].tolist() == [2.0, 0.0, 0.0]


def test_per_prompt_vector_and_alpha() -> None:
    h = torch.zeros(2, 3, 2)
    vs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = steer_states(h, vs, torch.tensor([5.0, 0.0]))
    assert out[0, 0].tolist() == [5.0, 0.0] and out[1].abs().sum() == 0
    assert steer_states(torch.zeros(3, 2), torch.ones(2), 1.0).shape == (3, 2)  # [T, D] input


def test_dimension_mismatch_names_both_dims() -> None:
    with pytest.raises(PackError, match=r"dimension 6 .* dimension 8"):
        steer_states(torch.zeros(1, 2, 8), torch.ones(6), 1.0)
    with pytest.raises(InputError):
        steer_states(torch.zeros(2, 2, 8), torch.ones(3, 8), 1.0)
    with pytest.raises(InputError):
        steer_states(torch.zeros(2, 2, 8), torch.ones(8), torch.ones(3))
    with pytest.raises(InputError):
        steer_states(torch.zeros(2, 2, 8), torch.ones(8), 1.0, token_mask=torch.ones(2, 3).bool())


@settings(max_examples=30, deadline=None)
@given(a=st.floats(-10, 10), b=st.floats(-10, 10), seed=st.integers(0, 2**16))
def test_additivity(a: float, b: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    u, w = (
        torch.randn(5, generator=g, dtype=torch.float64),
        torch.randn(5, generator=g, dtype=torch.float64),
    )
    twice = steer_states(steer_states(h, u, a), w, b)
    once = steer_states(h, a * u + b * w, 1.0)
    assert torch.allclose(twice, once, atol=1e-9)


def test_combine_directions_uniform_and_weighted() -> None:
    vs = {"a": torch.tensor([2.0, 0.0]), "b": torch.tensor([0.0, 4.0]), "c": torch.ones(2)}
    assert combine_directions(vs, ["a", "b"]).tolist() == [1.0, 2.0]
    assert combine_directions(vs, ["a"]).tolist() == [2.0, 0.0]
    assert combine_directions(vs, []).tolist() == [0.0, 0.0]
    summed = combine_directions(vs, ["a", "b"], weights={"a": 1.0, "b": 1.0})
    assert summed.tolist() == [2.0, 4.0]
    with pytest.raises(InputError, match="unknown"):
        combine_directions(vs, ["zzz"])
    with pytest.raises(InputError, match="weight"):
        combine_directions(vs, ["a", "b"], weights={"a": 1.0})


def test_untouched_rows_and_tokens_are_bit_for_bit() -> None:
    # −0.0 + 0.0 is +0.0: a masked add would change the bits of untouched positions
    h = torch.tensor([[[-0.0, 1.0], [2.0, -0.0]], [[-0.0, -0.0], [3.0, 4.0]]])
    mask = torch.tensor([[True, False], [True, True]])
    out = steer_states(h, torch.ones(2), torch.tensor([1.0, 0.0]), token_mask=mask)
    assert out[0, 1].view(torch.int32).tolist() == h[0, 1].view(torch.int32).tolist()
    assert out[1].view(torch.int32).tolist() == h[1].view(torch.int32).tolist()
    assert out[0, 0].tolist() == [1.0, 2.0]


# ---- the to-projection rule (issue 11) -------------------------------------------------------
def _prompts(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """4 prompts of up to 6 tokens in 8 dims, with padding rows full of junk."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(4, 6, 8, generator=g)
    mask = torch.tensor(
        [[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4, [True] * 5 + [False]]
    )
    h[~mask] = 100.0  # padding must not enter the pooled state nor move
    return h, mask, torch.randn(8, generator=g)


def test_to_projection_moves_a_low_prompt_exactly_to_tau_and_leaves_a_high_one() -> None:
    h, mask, v = _prompts()
    u = v / v.norm()
    proj = masked_mean(h.double(), mask) @ u.double()
    tau = float(proj[1:3].mean())  # prompts 1, 2 on either side of τ
    below = proj < tau
    out = steer_to_projection(h, v, tau, token_mask=mask)
    after = masked_mean(out.double(), mask) @ u.double()
    assert torch.allclose(after[below], torch.full_like(after[below], tau), atol=1e-5)
    assert torch.equal(out[~below], h[~below])  # above τ: bit for bit
    assert torch.equal(out[~mask], h[~mask])  # padding never moves
    moved = out - h
    # every real token of a low prompt moved by the same multiple of v̂, τ − ⟨h̄, v̂⟩
    for b in torch.nonzero(below).flatten().tolist():
        want = (tau - float(proj[b])) * u
        assert torch.allclose(moved[b][mask[b]], want.expand(int(mask[b].sum()), 8), atol=1e-5)


def test_to_projection_alpha_scales_the_move_and_tau_is_a_benign_quantile() -> None:
    h, mask, v = _prompts(1)
    benign = torch.randn(1000, 8, generator=torch.Generator().manual_seed(2))
    tau = projection_target(benign, v, q=0.95)
    proj = benign.double() @ (v / v.norm()).double()
    assert tau == pytest.approx(float(torch.quantile(proj, 0.95)))
    assert float((proj > tau).double().mean()) == pytest.approx(0.05, abs=0.002)
    pooled = masked_mean(h, mask)
    full = projection_shift(pooled, v, tau)
    half = projection_shift(pooled, v, tau, alpha=0.5)
    assert torch.allclose(half, 0.5 * full) and bool((full >= 0).all())
    a = steer_to_projection(h, v, tau, alpha=0.5, token_mask=mask)
    b = steer_states(h, v / v.norm(), half, token_mask=mask)
    assert torch.allclose(a, b)
    # pooled passed in (a pack's view of the states) is the one compared with τ
    assert torch.equal(steer_to_projection(h, v, tau, token_mask=mask, pooled=pooled + 1e3), h)


def test_to_projection_refusals() -> None:
    h, _, v = _prompts()
    with pytest.raises(InputError, match="quantile"):
        projection_target(torch.randn(10, 8), v, q=1.0)
    with pytest.raises(PackError):
        projection_shift(torch.randn(2, 8), torch.ones(7), 0.0)
    with pytest.raises(PackError, match="zero"):
        steer_to_projection(h, torch.zeros(8), 0.0)
    assert STEERING_RULES == ("add", "to-projection")
