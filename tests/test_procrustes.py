"""ProcrustesMap: planted (semi-)orthogonal maps between spaces of different dimension."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safesteer.errors import InputError
from safesteer.maths.alignment import ProcrustesMap
from safesteer.maths.metrics import cosine, mean_cosine


def _planted(
    ds: int, dt: int, n: int, seed: int, noise: float = 0.05, scale: float = 1.0, iso: bool = False
):
    """Source (anisotropic unless ``iso``), target = scale · Q x + offset + noise."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(max(ds, dt), min(ds, dt), generator=g))
    q = q if dt >= ds else q.T  # [dt, ds], semi-orthogonal
    spectrum = torch.ones(ds) if iso else torch.linspace(3.0, 0.5, ds)
    x = torch.randn(n, ds, generator=g) * spectrum + 2.0
    y = scale * x @ q.T + 1.5 + noise * torch.randn(n, dt, generator=g)
    return q, x, y


@pytest.mark.parametrize(("ds", "dt"), [(24, 40), (40, 24)])
def test_recovers_planted_map_on_held_out_points(ds: int, dt: int) -> None:
    # dt < ds (a projection) is exact only for an isotropic source: see the next test
    q, x, y = _planted(ds, dt, 1500, seed=ds, iso=dt < ds)
    fitted = ProcrustesMap().fit(x[:1000], y[:1000])
    assert fitted.weight_.shape == (dt, ds)
    report = fitted.score(x[1000:], y[1000:])
    assert report.mean_cosine > 0.99 and report.r2 > 0.98 and report.n_anchors == 500
    if dt >= ds:  # every source direction is kept: the map itself is recovered
        assert torch.allclose(fitted.weight_, q, atol=0.02)
        v = torch.randn(ds, generator=torch.Generator().manual_seed(1))
        assert cosine(fitted.transport(v), q @ v) > 0.999


def test_projection_with_anisotropic_source_is_biased() -> None:
    # documented limit: with WWᵀ = I, ‖XWᵀ‖ depends on W, so U Vᵀ is not least squares
    _, x, y = _planted(40, 24, 1500, seed=40, iso=False)
    m = ProcrustesMap().fit(x[:1000], y[:1000])
    assert m.score(x[1000:], y[1000:]).mean_cosine < 0.99
    w = m.weight_.double()
    assert torch.allclose(w @ w.T, torch.eye(24, dtype=torch.float64), atol=1e-5)


def test_solvers_agree() -> None:
    _, x, y = _planted(30, 20, 600, seed=3)
    a = ProcrustesMap(solver="svd").fit(x, y)
    b = ProcrustesMap(solver="eigh").fit(x, y)
    assert a.solver_ == "svd" and b.solver_ == "eigh"
    assert torch.allclose(a.weight_, b.weight_, atol=1e-4)
    assert torch.allclose(a.singular_values_, b.singular_values_, rtol=1e-4)


def test_few_anchors_give_a_partial_isometry_on_their_span() -> None:
    _, x, y = _planted(50, 60, 20, seed=4)  # 20 anchors < 50 dims: centred, they span 19
    m = ProcrustesMap().fit(x, y)
    svd = ProcrustesMap(solver="svd").fit(x, y)
    assert m.solver_ == "dual" and svd.solver_ == "svd" and m.rank_ == svd.rank_ == 19
    assert m.params()["rank"] == 19
    w = m.weight_.double()
    assert torch.allclose(w @ w.T @ w, w, atol=1e-5)  # a partial isometry …
    assert torch.allclose(m.weight_, svd.weight_, atol=1e-4)  # … the same through the dual
    centred = x - x.mean(0)
    # an isometry on the anchors' span; a direction they never saw maps to 0, not to noise
    assert torch.allclose(m.transport(centred).norm(dim=1), centred.norm(dim=1), rtol=1e-4)
    unseen = torch.linalg.svd(centred.double()).Vh[-1].float()
    assert float(m.transport(unseen).norm()) < 1e-4
    with pytest.raises(InputError, match="ill-conditioned"):
        ProcrustesMap(solver="eigh").fit(torch.randn(3, 5), torch.randn(3, 5))
    with pytest.raises(InputError, match="rank_rtol"):
        ProcrustesMap(rank_rtol=1.5)


def test_few_anchors_map_does_not_amplify_rounding_noise() -> None:
    # the pilot's failure: last-bit changes of 200 anchors moved the global vector by 33%
    _, x, y = _planted(80, 90, 40, seed=6)
    g = torch.Generator().manual_seed(0)
    noisy_x = x * (1 + 1e-6 * torch.randn(x.shape, generator=g))
    noisy_y = y * (1 + 1e-6 * torch.randn(y.shape, generator=g))
    v = torch.randn(80, generator=g)
    a = ProcrustesMap().fit(x, y).transport(v)
    b = ProcrustesMap().fit(noisy_x, noisy_y).transport(v)
    assert float((a - b).norm() / a.norm()) < 1e-3


def test_scale_difference_rotation_vs_scaled() -> None:
    _, x, y = _planted(16, 16, 1200, seed=5, scale=4.0)
    plain = ProcrustesMap().fit(x[:800], y[:800])
    scaled = ProcrustesMap(scaled=True).fit(x[:800], y[:800])
    r_plain, r_scaled = plain.score(x[800:], y[800:]), scaled.score(x[800:], y[800:])
    assert plain.scale_ == 1.0 and scaled.scale_ == pytest.approx(4.0, rel=0.01)
    assert r_plain.r2 < 0.5 < 0.99 < r_scaled.r2  # a rotation cannot absorb the scale …
    assert r_plain.mean_cosine > 0.99  # … but its directions are right
    assert plain.params()["solver"] in ("svd", "eigh")


@settings(max_examples=25, deadline=None)
@given(ds=st.integers(2, 12), dt=st.integers(2, 12), n=st.integers(3, 40), seed=st.integers(0, 999))
def test_weight_is_semi_orthogonal(ds: int, dt: int, n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    m = ProcrustesMap().fit(torch.randn(n, ds, generator=g), torch.randn(n, dt, generator=g))
    w = m.weight_.double()
    assert torch.allclose(w @ w.T @ w, w, atol=1e-4)  # always a partial isometry
    if n - 1 >= min(ds, dt):  # enough anchors to span every direction: semi-orthogonal
        gram = w.T @ w if dt >= ds else w @ w.T
        assert torch.allclose(gram, torch.eye(min(ds, dt), dtype=torch.float64), atol=1e-4)
    else:
        assert m.rank_ == n - 1


@settings(max_examples=25, deadline=None)
@given(a=st.floats(-5, 5), b=st.floats(-5, 5), seed=st.integers(0, 999))
def test_transport_is_linear(a: float, b: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    m = ProcrustesMap().fit(torch.randn(50, 6, generator=g), torch.randn(50, 9, generator=g))
    u, w = torch.randn(6, generator=g), torch.randn(6, generator=g)
    lhs = m.transport(a * u + b * w)
    rhs = a * m.transport(u) + b * m.transport(w)
    assert torch.allclose(lhs, rhs, atol=1e-4)
    # points and differences agree: T(x) − T(y) = transport(x − y)
    assert torch.allclose(m.transform(u) - m.transform(w), m.transport(u - w), atol=1e-4)
    assert mean_cosine(m.transform(u[None]), m.transform(u[None])) == pytest.approx(1.0)
