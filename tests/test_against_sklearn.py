"""Our pure-torch maths against the reference implementations in scikit-learn / SciPy.

AUROC (``roc_auc_score``), Ledoit–Wolf shrinkage and the shrunk covariance
(``sklearn.covariance``), the ridge map (``sklearn.linear_model.Ridge``), the Procrustes map
(``scipy.linalg.orthogonal_procrustes``), LDA (``LinearDiscriminantAnalysis``), Pearson's ρ
(``scipy.stats.pearsonr``), and the probes' logistic regression (sklearn) against the stated
objective solved by Newton.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from safesteer.evaluation.probes import fit_logistic
from safesteer.maths.alignment import ProcrustesMap, RidgeMap, WhitenRecolourMap
from safesteer.maths.covariance import shrunk_covariance
from safesteer.maths.directions import shrunk_lda
from safesteer.maths.gating import ledoit_wolf_shrinkage
from safesteer.maths.metrics import auroc, pearson


def test_auroc_matches_roc_auc_score_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 6, (57,), generator=g).double() + 0.5  # many ties
    neg = torch.randint(0, 6, (43,), generator=g).double()
    labels = np.r_[np.ones(57), np.zeros(43)]
    want = roc_auc_score(labels, torch.cat([pos, neg]).numpy())
    assert auroc(pos, neg) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(("n", "d"), [(40, 200), (300, 20)], ids=["n<d (Gram form)", "n>d"])
def test_ledoit_wolf_shrinkage_matches_sklearn(n: int, d: int) -> None:
    from sklearn.covariance import ledoit_wolf_shrinkage as sk_shrinkage

    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g)
    x = x - x.mean(0)
    want = sk_shrinkage(x.double().numpy(), assume_centered=True)
    assert ledoit_wolf_shrinkage(x) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("shrinkage", [None, 0.3])
def test_shrunk_covariance_matches_sklearn(shrinkage: float | None) -> None:
    from sklearn.covariance import LedoitWolf, ShrunkCovariance

    g = torch.Generator().manual_seed(3)
    x = torch.randn(80, 12, generator=g) @ torch.randn(12, 12, generator=g)
    x = (x - x.mean(0)).double()
    ours, gamma = shrunk_covariance(x, shrinkage)
    if shrinkage is None:
        ref = LedoitWolf(assume_centered=True).fit(x.numpy())
        assert gamma == pytest.approx(ref.shrinkage_, rel=1e-9)
    else:
        ref = ShrunkCovariance(shrinkage=shrinkage, assume_centered=True).fit(x.numpy())
    torch.testing.assert_close(ours, torch.from_numpy(ref.covariance_), rtol=1e-9, atol=1e-12)


def test_whiten_recolour_matches_ledoit_wolf_sqrtm_and_orthogonal_procrustes() -> None:
    """T = Σ_t^{1/2} Q Σ_s^{-1/2} from sklearn's LedoitWolf, scipy's sqrtm and Procrustes."""
    from scipy.linalg import orthogonal_procrustes, sqrtm
    from sklearn.covariance import LedoitWolf

    g = torch.Generator().manual_seed(6)
    src = torch.randn(150, 8, generator=g) @ torch.randn(8, 8, generator=g)
    tgt = src @ torch.randn(8, 8, generator=g) + 0.5 * torch.randn(150, 8, generator=g) + 3.0
    m = WhitenRecolourMap().fit(src, tgt)
    xs = (src - src.mean(0)).double().numpy()
    xt = (tgt - tgt.mean(0)).double().numpy()
    lw_s, lw_t = LedoitWolf().fit(xs), LedoitWolf().fit(xt)
    # the map centres in float32 (its anchors' dtype), so γ agrees to float32 precision
    assert m.source_shrinkage_ == pytest.approx(lw_s.shrinkage_, rel=1e-6)
    assert m.target_shrinkage_ == pytest.approx(lw_t.shrinkage_, rel=1e-6)
    s_inv_half = np.linalg.inv(np.real(sqrtm(lw_s.covariance_)))
    t_half = np.real(sqrtm(lw_t.covariance_))
    t_inv_half = np.linalg.inv(t_half)
    r, _ = orthogonal_procrustes(xs @ s_inv_half, xt @ t_inv_half)  # min ‖W_s R − W_t‖: R = Qᵀ
    want = torch.from_numpy(t_half @ r.T @ s_inv_half)
    torch.testing.assert_close(m.weight_.double(), want, rtol=1e-4, atol=1e-5)


def test_unshrunk_lda_matches_sklearn_lda_direction() -> None:
    """With γ = 0 and equal classes, Σ_w is sklearn's prior-weighted class covariance."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    g = torch.Generator().manual_seed(4)
    mix = torch.randn(10, 10, generator=g)
    unsafe = (torch.randn(300, 10, generator=g) @ mix).double()
    safe = (torch.randn(300, 10, generator=g) @ mix + torch.randn(10, generator=g)).double()
    x = torch.cat([safe, unsafe]).numpy()
    y = np.r_[np.ones(300), np.zeros(300)]  # class 1 = safe: its coef points to safe
    ref = LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
    ours = shrunk_lda(safe, unsafe, shrinkage=0.0).vector.double()
    coef = torch.from_numpy(ref.coef_[0])
    assert float(ours @ coef / (ours.norm() * coef.norm())) == pytest.approx(1.0, abs=1e-9)


def test_pearson_matches_scipy() -> None:
    from scipy.stats import pearsonr

    g = torch.Generator().manual_seed(5)
    a = torch.randn(200, generator=g, dtype=torch.float64)
    b = 0.3 * a + torch.randn(200, generator=g, dtype=torch.float64)
    assert pearson(a, b) == pytest.approx(float(pearsonr(a.numpy(), b.numpy())[0]), abs=1e-12)


def test_ridge_map_matches_sklearn_ridge() -> None:
    from sklearn.linear_model import Ridge

    g = torch.Generator().manual_seed(1)
    src = torch.randn(120, 16, generator=g).double()
    tgt = (
        src @ torch.randn(16, 12, generator=g).double()
        + 0.1 * torch.randn(120, 12, generator=g).double()
        + 3.0
    )
    ours = RidgeMap(lambdas=[2.5]).fit(src.float(), tgt.float())
    ref = Ridge(alpha=2.5, fit_intercept=True).fit(src.numpy(), tgt.numpy())
    probe = torch.randn(7, 16, generator=g)
    want = torch.from_numpy(ref.predict(probe.double().numpy())).float()
    torch.testing.assert_close(ours.transform(probe), want, rtol=1e-4, atol=1e-4)


def test_procrustes_map_matches_scipy_orthogonal_procrustes() -> None:
    from scipy.linalg import orthogonal_procrustes

    g = torch.Generator().manual_seed(2)
    src = torch.randn(200, 10, generator=g).double()
    q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g).double())
    tgt = src @ q + 0.05 * torch.randn(200, 10, generator=g).double()
    ours = ProcrustesMap(solver="svd").fit(src.float(), tgt.float())
    cs, ct = src - src.mean(0), tgt - tgt.mean(0)
    r, _ = orthogonal_procrustes(cs.numpy(), ct.numpy())  # cs @ r ≈ ct
    torch.testing.assert_close(ours.weight_.double(), torch.from_numpy(r).T, rtol=0, atol=1e-5)


def _newton(x: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, float]:
    """The objective fit_logistic states, solved by Newton's method in float64 (reference)."""
    x1 = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    y = y.double()
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    w_i = torch.where(y > 0.5, 1 / (2 * n_pos), 1 / (2 * n_neg))
    pen = torch.full((x1.shape[1],), l2, dtype=torch.float64)
    pen[-1] = 0.0
    w = torch.zeros(x1.shape[1], dtype=torch.float64)
    for _ in range(100):
        p = torch.sigmoid(x1 @ w)
        grad = x1.T @ (w_i * (p - y)) + pen * w
        hess = (x1.T * (w_i * p * (1 - p))) @ x1 + torch.diag(pen + 1e-12)
        step = torch.linalg.solve(hess, grad)
        w -= step
        if float(step.abs().max()) < 1e-12:
            break
    return w[:-1], float(w[-1])


def test_probe_logistic_regression_solves_the_stated_objective() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(150, 6, generator=g)
    y = (x[:, 0] + 0.8 * torch.randn(150, generator=g) > 0.7).float()  # unbalanced classes
    coef, intercept = fit_logistic(x, y, l2=0.05)
    ref_coef, ref_intercept = _newton(x, y, 0.05)
    torch.testing.assert_close(coef.double(), ref_coef, rtol=0, atol=1e-4)
    assert intercept == pytest.approx(ref_intercept, abs=1e-4)
