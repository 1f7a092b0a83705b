"""Metrics against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.maths.metrics import auroc, cosine, mean_cosine, r2_score


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
