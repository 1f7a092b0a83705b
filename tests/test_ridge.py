"""RidgeMap: planted linear maps (primal and dual), λ selection against brute force."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safesteer.errors import InputError
from safesteer.maths.alignment import RidgeMap
from safesteer.maths.alignment.ridge import _solve
from safesteer.maths.metrics import r2_score


def _planted(ds: int, dt: int, n: int, seed: int, noise: float = 0.05, rank: int | None = None):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dt, ds, generator=g) / ds**0.5
    if rank is None:
        x = torch.randn(n, ds, generator=g)
    else:  # anchors on a low-dimensional subspace (identifiable from few anchors)
        x = torch.randn(n, rank, generator=g) @ torch.randn(rank, ds, generator=g)
    y = x @ w.T + 3.0 + noise * torch.randn(n, dt, generator=g)
    return w, x + 1.0, y  # the x offset is absorbed by centring


def test_recovers_known_map_primal() -> None:
    w, x, y = _planted(30, 20, 2000, seed=0)
    m = RidgeMap().fit(x, y)
    assert m.form_ == "primal" and m.weight_.shape == (20, 30)
    assert torch.allclose(m.weight_, w, atol=0.01)
    x_held = torch.randn(500, 30, generator=torch.Generator().manual_seed(77))  # fresh draws
    y_held = x_held @ w.T + 3.0
    assert m.score(x_held + 1.0, y_held).r2 > 0.99  # +1: the offset _planted adds to x


def test_dual_regime_fewer_anchors_than_dimensions() -> None:
    _, x, y = _planted(300, 40, 150, seed=1, rank=20)
    m = RidgeMap().fit(x[:120], y[:120])
    assert m.form_ == "dual"
    report = m.score(x[120:], y[120:])
    assert report.r2 > 0.95 and report.mean_cosine > 0.97


def test_dual_and_primal_give_the_same_solution() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(60, 25, generator=g), torch.randn(60, 7, generator=g)
    x, y = x - x.mean(0), y - y.mean(0)
    for lam in (1e-3, 1.0, 100.0):
        assert torch.allclose(_solve(x, y, lam, "primal"), _solve(x, y, lam, "dual"), atol=1e-5)


@pytest.mark.parametrize(("n", "ds"), [(400, 20), (60, 120)])
def test_grid_scores_equal_brute_force_refits(n: int, ds: int) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, ds, generator=g)
    y = x @ torch.randn(ds, 6, generator=g) + 2.0 * torch.randn(n, 6, generator=g)
    m = RidgeMap(seed=7).fit(x, y)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(7))
    n_val = round(n * 0.2)
    val, tr = perm[:n_val], perm[n_val:]
    mx, my = x[tr].mean(0), y[tr].mean(0)
    for lam, got in zip(m.lambda_grid_, m.holdout_r2_, strict=True):
        w = _solve(x[tr] - mx, y[tr] - my, lam, m.form_).float()
        expected = r2_score((x[val] - mx) @ w.T + my, y[val])
        assert got == pytest.approx(expected, abs=1e-3)
    best = max(range(len(m.holdout_r2_)), key=lambda i: m.holdout_r2_[i])
    assert m.lambda_ == pytest.approx(m.lambda_grid_[best] * n / len(tr))


def test_noisier_targets_choose_more_regularisation() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(300, 60, generator=g)
    signal = x @ (torch.randn(60, 5, generator=g) * 0.1)
    clean = RidgeMap().fit(x, signal + 0.01 * torch.randn(300, 5, generator=g))
    noisy = RidgeMap().fit(x, signal + 3.0 * torch.randn(300, 5, generator=g))
    assert noisy.lambda_ > 10 * clean.lambda_


def test_fixed_lambda_and_refusals() -> None:
    _, x, y = _planted(10, 4, 100, seed=5)
    m = RidgeMap(lambdas=[0.0]).fit(x, y)
    assert m.lambda_ == 0.0 and m.params()["lambda"] == 0.0
    with pytest.raises(InputError):
        RidgeMap(lambdas=[-1.0])
    with pytest.raises(InputError):
        RidgeMap(holdout_fraction=1.5)


@settings(max_examples=25, deadline=None)
@given(a=st.floats(-5, 5), b=st.floats(-5, 5), seed=st.integers(0, 999))
def test_transport_is_linear(a: float, b: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    m = RidgeMap().fit(torch.randn(40, 8, generator=g), torch.randn(40, 5, generator=g))
    u, w = torch.randn(8, generator=g), torch.randn(8, generator=g)
    assert torch.allclose(
        m.transport(a * u + b * w), a * m.transport(u) + b * m.transport(w), atol=1e-4
    )
