"""Steering arithmetic: ĥ = h + α·v, masks, per-prompt vectors and strengths, combination."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safesteer.errors import InputError, PackError
from safesteer.maths.steering import combine_directions, steer_states


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
