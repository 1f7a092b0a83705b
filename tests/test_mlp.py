"""MLPMap: determinism for a seed, non-linear fit, the three transport modes."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.maths.alignment import MLPMap, RidgeMap
from safesteer.maths.alignment.mlp import TRANSPORT_MODES, _forward
from safesteer.maths.metrics import cosine


def _nonlinear(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 4, generator=torch.Generator().manual_seed(99))
    x = torch.randn(n, 6, generator=g) + 1.0
    y = 3.0 * torch.tanh(x @ w) + 0.05 * torch.randn(n, 4, generator=g)
    return x, y


def test_deterministic_for_a_seed() -> None:
    x, y = _nonlinear(400, 0)
    a = MLPMap(hidden_dim=32, seed=5, max_epochs=60).fit(x, y)
    b = MLPMap(hidden_dim=32, seed=5, max_epochs=60).fit(x, y)
    c = MLPMap(hidden_dim=32, seed=6, max_epochs=60).fit(x, y)
    assert torch.equal(a.w1_, b.w1_) and torch.equal(a.w2_, b.w2_) and a.epochs_ == b.epochs_
    assert not torch.equal(a.w1_, c.w1_)


def test_fits_a_nonlinear_map_better_than_ridge() -> None:
    x, y = _nonlinear(1500, 1)
    xt, yt = _nonlinear(500, 2)
    mlp = MLPMap(hidden_dim=64, seed=0).fit(x, y)
    ridge = RidgeMap().fit(x, y)
    r_mlp, r_ridge = mlp.score(xt, yt), ridge.score(xt, yt)
    assert r_mlp.r2 > 0.9 and r_mlp.r2 > r_ridge.r2 + 0.1
    assert 1 <= mlp.epochs_ <= mlp.max_epochs


def test_transport_modes() -> None:
    g = torch.Generator().manual_seed(3)
    w = torch.randn(5, 7, generator=g)
    x = torch.randn(1000, 7, generator=g)
    y = x @ w.T  # linear target: both modes should carry v to ≈ W v
    direct = MLPMap(hidden_dim=64, seed=0).fit(x, y)
    diff = MLPMap(hidden_dim=64, seed=0, transport_mode="difference").fit(x, y)
    v = torch.randn(7, generator=g)
    assert torch.equal(direct.transport(v), direct._apply(v))
    expected = diff._apply(0.5 * v) - diff._apply(-0.5 * v)
    assert torch.equal(diff.transport(v), expected)
    assert cosine(direct.transport(v), w @ v) > 0.95
    assert cosine(diff.transport(v), w @ v) > 0.95
    safe, unsafe = x[:10].mean(0) + v, x[:10].mean(0)
    means = diff.transport_means(safe, unsafe)
    assert torch.allclose(means, diff.transform(safe) - diff.transform(unsafe))
    assert cosine(means, w @ v) > 0.95


def test_refusals_and_params() -> None:
    with pytest.raises(InputError, match="transport_mode"):
        MLPMap(transport_mode="sideways")
    with pytest.raises(InputError):
        MLPMap(hidden_dim=0)
    m = MLPMap(hidden_dim=8, max_epochs=3).fit(torch.randn(30, 3), torch.randn(30, 2))
    assert m.params()["hidden_dim"] == 8 and m.params()["epochs"] <= 3


def _as_double(m: MLPMap):
    """The fitted network T in float64, for reference derivatives."""
    p = {k: getattr(m, f"{k}_").double() for k in ("w1", "b1", "w2", "b2")}
    return lambda x: m.target_scale_ * _forward(p, x.double() / m.source_scale_), p


def test_jacobian_transport_is_the_derivative_at_the_anchor_mean() -> None:
    x, y = _nonlinear(600, 4)
    m = MLPMap(hidden_dim=32, seed=0, transport_mode="jacobian", max_epochs=80).fit(x, y)
    t, p = _as_double(m)
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(6, generator=g)
        got = m.transport(v).double()
        # central finite differences of T around the centred anchor mean (input 0), float64
        eps = 1e-4
        fd = (t(eps * v) - t(-eps * v)) / (2 * eps)
        assert torch.allclose(got, fd, rtol=1e-4, atol=1e-5)
        # the closed form: (s_t / s_s) · W₂ diag(GELU′(b₁)) W₁ v
        b1 = p["b1"].clone().requires_grad_(True)
        (slope,) = torch.autograd.grad(torch.nn.functional.gelu(b1).sum(), b1)
        closed = m.target_scale_ / m.source_scale_ * p["w2"] @ (slope * (p["w1"] @ v.double()))
        assert torch.allclose(got, closed, rtol=1e-4, atol=1e-5)
    # linear in v (a Jacobian), unlike T itself
    v, w = torch.randn(6, generator=g), torch.randn(6, generator=g)
    assert torch.allclose(m.transport(2 * v - w), 2 * m.transport(v) - m.transport(w), atol=1e-5)
    assert not torch.allclose(m._apply(2 * v), 2 * m._apply(v), atol=1e-3)
    # at another point the Jacobian differs (the map is not linear)
    assert not torch.allclose(m.jacobian_vector_product(v, at=3 * w), m.transport(v), atol=1e-3)


def test_jacobian_mode_on_a_linear_target_and_in_params() -> None:
    g = torch.Generator().manual_seed(6)
    w = torch.randn(5, 7, generator=g)
    x = torch.randn(1000, 7, generator=g)
    jac = MLPMap(hidden_dim=64, seed=0, transport_mode="jacobian").fit(x, x @ w.T)
    v = torch.randn(7, generator=g)
    assert cosine(jac.transport(v), w @ v) > 0.95
    assert jac.params()["transport_mode"] == "jacobian"
    assert TRANSPORT_MODES == ("direct", "difference", "jacobian")
    with pytest.raises(InputError, match="dimension"):
        jac.transport(torch.ones(3))
