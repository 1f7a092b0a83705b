"""Directions: safe − unsafe difference of means, per category, and vector arithmetic."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.maths.directions import Direction, category_directions, difference_of_means


def _planted_pairs(n: int, d: int, direction: torch.Tensor, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g)
    noise = 0.3 * torch.randn(n, d, generator=g)
    return base + direction + noise, base  # safe = unsafe + v + noise


def test_difference_of_means_recovers_planted_direction() -> None:
    g = torch.Generator().manual_seed(1)
    v = 2.0 * torch.randn(64, generator=g)
    safe, unsafe = _planted_pairs(2000, 64, v)
    d = difference_of_means(safe, unsafe, category="violence", space="test/space")
    cos = torch.nn.functional.cosine_similarity(d.vector, v, dim=0)
    assert cos > 0.99
    assert d.norm == pytest.approx(float(v.norm()), rel=0.02)  # raw norm kept
    assert (d.n_pairs, d.category, d.space) == (2000, "violence", "test/space")


def test_sign_is_safe_minus_unsafe() -> None:
    safe, unsafe = torch.ones(3, 2), torch.zeros(3, 2)
    assert difference_of_means(safe, unsafe).vector.tolist() == [1.0, 1.0]
    assert difference_of_means(unsafe, safe).vector.tolist() == [-1.0, -1.0]


def test_category_directions_use_only_their_pairs() -> None:
    d = 16
    va, vb = torch.zeros(d), torch.zeros(d)
    va[0], vb[1] = 3.0, -2.0
    sa, ua = _planted_pairs(300, d, va, seed=2)
    sb, ub = _planted_pairs(200, d, vb, seed=3)
    cats = ["a"] * 300 + ["b"] * 200
    out = category_directions(torch.cat([sa, sb]), torch.cat([ua, ub]), cats, space="s")
    assert list(out) == ["a", "b"]
    assert out["a"].n_pairs == 300 and out["b"].n_pairs == 200
    assert torch.allclose(out["a"].vector, va, atol=0.1)
    assert torch.allclose(out["b"].vector, vb, atol=0.1)
    assert out["b"].category == "b" and out["b"].space == "s"


def test_arithmetic() -> None:
    a = Direction(torch.tensor([3.0, 4.0]), category="x", n_pairs=2, space="s")
    b = Direction(torch.tensor([1.0, 0.0]), category="y", n_pairs=1, space="s")
    assert a.norm == pytest.approx(5.0)
    assert a.unit().vector.tolist() == pytest.approx([0.6, 0.8])
    assert (-a).vector.tolist() == [-3.0, -4.0]
    assert (a * 2.0).vector.tolist() == [6.0, 8.0]
    assert (0.5 * a).vector.tolist() == [1.5, 2.0]
    s = a + b
    assert s.vector.tolist() == [4.0, 4.0] and s.n_pairs == 3 and s.category is None
    assert (a + a).category == "x"


def test_refusals() -> None:
    a = Direction(torch.ones(2), space="s1")
    with pytest.raises(InputError, match="s1"):
        a + Direction(torch.ones(2), space="s2")
    with pytest.raises(InputError, match="dim"):
        a + Direction(torch.ones(3), space="s1")
    with pytest.raises(InputError, match="zero"):
        Direction(torch.zeros(2)).unit()
    with pytest.raises(InputError, match="paired"):
        difference_of_means(torch.ones(3, 2), torch.ones(4, 2))
    with pytest.raises(InputError, match="labels"):
        category_directions(torch.ones(3, 2), torch.ones(3, 2), ["a"])
    with pytest.raises(InputError, match="no pairs"):
        difference_of_means(torch.ones(0, 2), torch.ones(0, 2))
