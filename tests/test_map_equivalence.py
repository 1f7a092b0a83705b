"""The faster maps give today's answers: against the previous implementation, scipy and sklearn.

``previous_maps`` is a frozen copy of ``ProcrustesMap`` / ``RidgeMap`` before the speed work
(commit 2837ee6). Where the previous Procrustes was arbitrary (fewer anchors than dimensions:
the directions the anchors never saw), the new map is compared on the anchors' span and shown
not to amplify rounding noise.
"""

from __future__ import annotations

import pytest
import torch

from previous_maps import PreviousProcrustesMap, PreviousRidgeMap
from safesteer.errors import InputError
from safesteer.maths.alignment import ProcrustesMap, RidgeMap
from safesteer.maths.alignment.ridge import _solve
from safesteer.maths.metrics import r2_score


def anchors(n: int, ds: int, dt: int, seed: int, *, decay: float = 0.0, noise: float = 0.1):
    """Planted linear data; ``decay > 0`` gives the source a power-law spectrum (LLM-like)."""
    g = torch.Generator().manual_seed(seed)
    spectrum = torch.arange(1, ds + 1, dtype=torch.float32) ** -decay
    x = torch.randn(n, ds, generator=g) * spectrum + 0.5
    w = torch.randn(dt, ds, generator=g) / ds**0.5
    y = x @ w.T - 1.0 + noise * torch.randn(n, dt, generator=g) * float(spectrum.mean())
    return x, y


# ---- Procrustes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "ds", "dt", "decay"),
    [(600, 64, 48, 0.0), (600, 48, 64, 0.5), (900, 80, 80, 1.0), (400, 30, 30, 0.0)],
)
def test_procrustes_equals_previous_with_enough_anchors(
    n: int, ds: int, dt: int, decay: float
) -> None:
    x, y = anchors(n, ds, dt, seed=n + ds, decay=decay)
    new, old = ProcrustesMap().fit(x, y), PreviousProcrustesMap().fit(x, y)
    assert new.rank_ == min(ds, dt)
    torch.testing.assert_close(new.weight_, old.weight_, rtol=0, atol=2e-6)
    torch.testing.assert_close(new.singular_values_, old.singular_values_, rtol=1e-5, atol=0)


def test_procrustes_equals_scipy_orthogonal_procrustes() -> None:
    scipy_linalg = pytest.importorskip("scipy.linalg")
    x, y = anchors(500, 40, 40, seed=1, decay=0.5)
    xc, yc = x - x.mean(0), y - y.mean(0)
    r, _ = scipy_linalg.orthogonal_procrustes(xc.double().numpy(), yc.double().numpy())
    for solver in ("auto", "svd", "eigh"):
        fitted = ProcrustesMap(solver=solver).fit(x, y)
        torch.testing.assert_close(
            fitted.weight_.double(), torch.from_numpy(r).T, atol=1e-5, rtol=0
        )


def test_procrustes_few_anchors_agrees_on_their_span_and_is_stable() -> None:
    x, y = anchors(60, 200, 150, seed=2, decay=0.5)  # 60 anchors < 150 dims
    new, old = ProcrustesMap().fit(x, y), PreviousProcrustesMap().fit(x, y)
    assert new.solver_ == "dual" and new.rank_ == 59
    # the anchors themselves (their span) are mapped as before
    torch.testing.assert_close(new.transform(x), old.transform(x), rtol=0, atol=1e-4)
    # a last-bit change of the anchors: the previous map's unseen directions jump, ours do not
    g = torch.Generator().manual_seed(3)
    x2 = x * (1 + 1e-6 * torch.randn(x.shape, generator=g))
    v = torch.randn(200, generator=g)

    def moved(cls: type) -> float:
        a, b = cls().fit(x, y).transport(v), cls().fit(x2, y).transport(v)
        return float((a - b).norm() / a.norm())

    assert moved(ProcrustesMap) < 1e-3 < 0.1 < moved(PreviousProcrustesMap)


# ---- ridge -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "ds", "dt", "decay"), [(800, 60, 40, 0.0), (800, 60, 40, 1.0), (90, 150, 30, 0.5)]
)
def test_ridge_holdout_equals_previous(n: int, ds: int, dt: int, decay: float) -> None:
    x, y = anchors(n, ds, dt, seed=ds, decay=decay)
    new, old = RidgeMap().fit(x, y), PreviousRidgeMap().fit(x, y)
    assert new.form_ == old.form_ and new.params()["selection"] == "holdout"
    assert new.lambda_ == pytest.approx(old.lambda_, rel=1e-6)
    assert new.holdout_r2_ == pytest.approx(old.holdout_r2_, abs=1e-6)
    torch.testing.assert_close(new.weight_, old.weight_, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("n", "ds"), [(500, 40), (50, 120)])
def test_ridge_fixed_lambda_equals_sklearn(n: int, ds: int) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    x, y = anchors(n, ds, 12, seed=4)
    for lam in (1e-2, 1.0, 50.0):
        ours = RidgeMap(lambdas=[lam]).fit(x, y)
        ref = linear_model.Ridge(alpha=lam, fit_intercept=True).fit(x.double(), y.double())
        torch.testing.assert_close(
            ours.weight_.double(), torch.from_numpy(ref.coef_), atol=1e-4, rtol=1e-4
        )
        pred = torch.from_numpy(ref.predict(x[:5].double().numpy())).float()
        torch.testing.assert_close(ours.transform(x[:5]), pred, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize(("n", "ds"), [(400, 30), (60, 100)])
def test_ridge_kfold_scores_equal_brute_force_sklearn_refits(n: int, ds: int) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    x, y = anchors(n, ds, 6, seed=5, noise=1.0)
    m = RidgeMap(selection="kfold", folds=4, seed=9).fit(x, y)
    assert m.params()["folds"] == 4 and len(m.holdout_r2_) == len(m.lambda_grid_) == 10
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(9))
    parts = torch.tensor_split(perm, 4)
    for lam, got in zip(m.lambda_grid_, m.holdout_r2_, strict=True):
        ss_res = ss_tot = 0.0
        for k, val in enumerate(parts):
            train = torch.cat([p for j, p in enumerate(parts) if j != k])
            fit = linear_model.Ridge(alpha=lam).fit(x[train].double(), y[train].double())
            pred = torch.from_numpy(fit.predict(x[val].double().numpy()))
            yv = y[val].double()
            ss_res += float(((yv - pred) ** 2).sum())
            ss_tot += float(((yv - yv.mean(0)) ** 2).sum())
        assert got == pytest.approx(1 - ss_res / ss_tot, abs=1e-3)
    best = max(range(10), key=lambda i: m.holdout_r2_[i])
    n_train = sum(n - len(p) for p in parts) / 4
    assert m.lambda_ == pytest.approx(m.lambda_grid_[best] * n / n_train)


def test_ridge_kfold_regularises_noisy_targets_more() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(300, 40, generator=g)
    coef = torch.randn(40, 5, generator=g) * 0.1
    clean = RidgeMap(selection="kfold").fit(x, x @ coef + 0.01 * torch.randn(300, 5, generator=g))
    noisy = RidgeMap(selection="kfold").fit(x, x @ coef + 3.0 * torch.randn(300, 5, generator=g))
    assert noisy.lambda_ > 10 * clean.lambda_
    held = torch.randn(200, 40, generator=g)
    assert clean.score(held, held @ coef).r2 > 0.99
    with pytest.raises(InputError, match="selection"):
        RidgeMap(selection="loo")
    with pytest.raises(InputError, match="folds"):
        RidgeMap(selection="kfold", folds=1)


def test_dual_solution_matches_brute_force_refit() -> None:
    x, y = anchors(40, 90, 7, seed=7)
    xc, yc = x - x.mean(0), y - y.mean(0)
    m = RidgeMap(lambdas=[0.5]).fit(x, y)
    torch.testing.assert_close(m.weight_, _solve(xc, yc, 0.5, "dual").float(), atol=1e-5, rtol=1e-5)
    assert r2_score(m.transform(x), y) > 0.9
