"""WhitenRecolourMap: T = Σ_t^{1/2} Q Σ_s^{-1/2} recovers planted linear maps Procrustes cannot."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.maths.alignment import MAPS, ProcrustesMap, WhitenRecolourMap, make_map
from safesteer.maths.covariance import shrunk_covariance, symmetric_sqrt
from safesteer.maths.metrics import cosine


def _planted(n: int, d: int, seed: int, noise: float = 0.02):
    """Anisotropic source, target = A x + offset with A far from orthogonal (condition ≈ 6)."""
    g = torch.Generator().manual_seed(seed)
    q1, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    q2, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    a = q1 @ torch.diag(torch.linspace(3.0, 0.5, d)) @ q2.T
    x = torch.randn(n, d, generator=g) * torch.linspace(2.5, 0.4, d) + 1.0
    y = x @ a.T - 2.0 + noise * torch.randn(n, d, generator=g)
    return a, x, y


def test_recovers_a_planted_linear_map_better_than_procrustes() -> None:
    a, x, y = _planted(6000, 12, seed=0)
    wrc = WhitenRecolourMap().fit(x[:5000], y[:5000])
    proc = ProcrustesMap(scaled=True).fit(x[:5000], y[:5000])
    assert torch.allclose(wrc.weight_, a, atol=0.05)
    r_wrc, r_proc = wrc.score(x[5000:], y[5000:]), proc.score(x[5000:], y[5000:])
    assert r_wrc.r2 > 0.999 and r_proc.r2 < 0.9  # the scaled rotation: 0.88
    assert r_wrc.mean_cosine > 0.99 > r_proc.mean_cosine + 0.02
    g = torch.Generator().manual_seed(1)
    for _ in range(5):  # directions: carried to A v, where a rotation cannot
        v = torch.randn(12, generator=g)
        assert cosine(wrc.transport(v), a @ v) > 0.995
    worst = min(cosine(proc.transport(v), a @ v) for v in torch.randn(20, 12, generator=g))
    assert worst < 0.95


def test_the_formula_and_its_parts() -> None:
    _, x, y = _planted(800, 6, seed=2, noise=0.3)
    m = WhitenRecolourMap(shrinkage=0.2).fit(x, y)
    xs, xt = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    cs, gs = shrunk_covariance(xs, 0.2)
    ct, gt = shrunk_covariance(xt, 0.2)
    assert m.source_shrinkage_ == gs == 0.2 and m.target_shrinkage_ == gt
    _, s_inv = symmetric_sqrt(cs)
    t_half, t_inv = symmetric_sqrt(ct)
    u, _, vh = torch.linalg.svd((xt @ t_inv).T @ (xs @ s_inv))
    want = t_half @ (u @ vh) @ s_inv
    assert torch.allclose(m.weight_.double(), want, atol=1e-5)
    rot = m.rotation_.double()
    assert torch.allclose(rot @ rot.T, torch.eye(6, dtype=torch.float64), atol=1e-5)
    v = torch.randn(6, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(m.transport(v), m.weight_ @ v, atol=1e-6)
    assert torch.allclose(
        m.transform(x[:3]), m.target_mean_ + (x[:3] - m.source_mean_) @ m.weight_.T
    )


@pytest.mark.parametrize(("ds", "dt"), [(10, 16), (16, 10)])
def test_different_dimensions_and_few_anchors(ds: int, dt: int) -> None:
    g = torch.Generator().manual_seed(ds)
    x = torch.randn(40, ds, generator=g)  # fewer anchors than dims on one side: shrinkage copes
    y = x @ torch.randn(ds, dt, generator=g)
    m = WhitenRecolourMap().fit(x, y)
    assert m.weight_.shape == (dt, ds) and m.rotation_.shape == (dt, ds)
    assert bool(torch.isfinite(m.weight_).all()) and 0 < m.target_shrinkage_ <= 1
    rot = m.rotation_.double()
    small = min(ds, dt)
    gram = rot.T @ rot if dt >= ds else rot @ rot.T
    assert torch.allclose(gram, torch.eye(small, dtype=torch.float64), atol=1e-5)


def test_registered_and_refusals() -> None:
    assert MAPS["whiten-recolour"] is WhitenRecolourMap
    assert isinstance(make_map("wrc"), WhitenRecolourMap)
    m = make_map("whiten-recolour", shrinkage=0.1)
    assert m.params() == {"kind": "whiten-recolour", "shrinkage": 0.1}
    with pytest.raises(InputError, match="shrinkage"):
        WhitenRecolourMap(shrinkage=1.5)
    fitted = WhitenRecolourMap().fit(torch.randn(50, 4), torch.randn(50, 3))
    assert set(fitted.params()) == {"kind", "shrinkage", "source_shrinkage", "target_shrinkage"}
