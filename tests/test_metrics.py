"""Metrics against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.maths.alignment import ProcrustesMap
from safesteer.maths.metrics import (
    auroc,
    cosine,
    mean_cosine,
    pearson,
    r2_score,
    transport_fidelity,
)


def test_auroc_perfect_random_and_ties() -> None:
    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])) == 0.0
    assert auroc(torch.tensor([1.0, 1.0]), torch.tensor([1.0])) == 0.5
    # pairs: (2>1) (2<3) (2=2 → ½) ⇒ 1.5 / 3
    assert auroc(torch.tensor([2.0]), torch.tensor([1.0, 3.0, 2.0])) == pytest.approx(0.5)
    assert auroc(torch.tensor([2.0, 5.0]), torch.tensor([1.0, 3.0])) == pytest.approx(0.75)


def test_auroc_matches_pairwise_count() -> None:
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 5, (40,), generator=g).float()
    neg = torch.randint(0, 5, (30,), generator=g).float()
    diff = pos[:, None] - neg[None, :]
    expected = float((diff > 0).double().mean() + 0.5 * (diff == 0).double().mean())
    assert auroc(pos, neg) == pytest.approx(expected)
    with pytest.raises(InputError):
        auroc(torch.tensor([]), neg)


def test_r2_and_cosines() -> None:
    y = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    assert r2_score(y, y) == 1.0
    assert r2_score(y.mean(dim=0).expand_as(y), y) == pytest.approx(0.0)
    ss_tot = float(((y - y.mean(0)) ** 2).sum())
    assert r2_score(y + 1.0, y) == pytest.approx(1 - 6.0 / ss_tot)
    assert cosine(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])) == 0.0
    assert cosine(torch.tensor([1.0, 1.0]), torch.tensor([-2.0, -2.0])) == pytest.approx(-1.0)
    assert cosine(torch.zeros(2), torch.ones(2)) == 0.0
    assert mean_cosine(y, 3 * y) == pytest.approx(1.0)
    assert (
        mean_cosine(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        == 0.0
    )
    with pytest.raises(InputError):
        r2_score(y, y[:2])


# ---- ρ, the benign-only transport-fidelity score (issue 11) ----------------------------------
def _planted_map(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    w, _ = torch.linalg.qr(torch.randn(48, 32, generator=torch.Generator().manual_seed(99)))
    g = torch.Generator().manual_seed(seed)  # the map is fixed, the anchors drawn per seed
    src = torch.randn(n, 32, generator=g) * torch.linspace(2.0, 0.5, 32) + 3.0
    tgt = src @ w.T - 1.0 + 0.05 * torch.randn(n, 48, generator=g)
    return w, src, tgt


def test_transport_fidelity_is_one_for_the_true_transport_and_zero_for_a_random_one() -> None:
    w, src, tgt = _planted_map(2000, 0)
    g = torch.Generator().manual_seed(1)
    v = torch.randn(32, generator=g)
    assert transport_fidelity(src, tgt, v, w @ v) > 0.995
    assert transport_fidelity(src, tgt, v, -(w @ v)) < -0.995  # the sign is part of it
    randoms = [transport_fidelity(src, tgt, v, torch.randn(48, generator=g)) for _ in range(20)]
    # a random direction: ρ ~ a cosine between random directions in 32 dims (mean |ρ| ≈ 0.2)
    assert sum(abs(r) for r in randoms) / 20 < 0.3 and max(abs(r) for r in randoms) < 0.6
    # a half-right transport scores in between
    mixed = w @ v / (w @ v).norm() + torch.randn(48, generator=g) / 48**0.5
    assert 0.3 < transport_fidelity(src, tgt, v, mixed) < 0.95
    # a fitted map's own method: fitted on other anchors, scored on these held-out ones
    _, fit_s, fit_t = _planted_map(3000, 2)
    fitted = ProcrustesMap().fit(fit_s, fit_t)
    assert fitted.direction_fidelity(src, tgt, v) > 0.99
    assert fitted.direction_fidelity(src, tgt, v, transported=-fitted.transport(v)) < -0.99


def test_transport_fidelity_ignores_centring_and_matches_the_formula() -> None:
    w, src, tgt = _planted_map(300, 3)
    v = torch.randn(32, generator=torch.Generator().manual_seed(4))
    moved = w @ v + 0.3 * torch.randn(48, generator=torch.Generator().manual_seed(5))
    rho = transport_fidelity(src, tgt, v, moved)
    s64, t64, v64, m64 = src.double(), tgt.double(), v.double(), moved.double()
    a = (s64 - s64.mean(0)) @ (v64 / v64.norm())
    b = (t64 - t64.mean(0)) @ (m64 / m64.norm())
    assert rho == pytest.approx(float(torch.corrcoef(torch.stack([a, b]))[0, 1]), abs=1e-12)
    shifted = transport_fidelity(src.double() + 50.0, tgt.double() - 7.0, v, moved)
    assert shifted == pytest.approx(rho, abs=1e-9)
    assert transport_fidelity(src, tgt, 3 * v, 0.1 * moved) == pytest.approx(rho, abs=1e-7)


def test_pearson_and_fidelity_refusals() -> None:
    with pytest.raises(InputError, match="no spread"):
        pearson(torch.ones(5), torch.arange(5.0))
    with pytest.raises(InputError):
        pearson(torch.ones(5), torch.ones(4))
    src, tgt = torch.randn(10, 3), torch.randn(10, 4)
    with pytest.raises(InputError, match="same held-out prompts"):
        transport_fidelity(src, tgt[:9], torch.ones(3), torch.ones(4))
    with pytest.raises(InputError, match="dimension 4"):
        transport_fidelity(src, tgt, torch.ones(3), torch.ones(3))
    with pytest.raises(InputError, match="zero"):
        transport_fidelity(src, tgt, torch.zeros(3), torch.ones(4))
