"""Directions: difference of means, shrunk LDA, per category, averaging, vector arithmetic."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.maths.directions import (
    DIRECTION_KINDS,
    Direction,
    average_transported,
    category_directions,
    difference_of_means,
    direction_estimator,
    shrunk_lda,
)
from safesteer.maths.metrics import auroc, cosine


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


# ---- shrunk LDA (issue 11) -------------------------------------------------------------------
def _noisy_axis_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unsafe → safe moves along e0 + e1, but e1 carries large within-class noise."""
    g = torch.Generator().manual_seed(seed)
    spread = torch.ones(16)
    spread[1] = 6.0
    shift = torch.zeros(16)
    shift[:2] = 1.0
    unsafe = torch.randn(n, 16, generator=g) * spread
    safe = torch.randn(n, 16, generator=g) * spread + shift
    return safe, unsafe, shift


def test_shrunk_lda_separates_better_than_difference_of_means() -> None:
    safe, unsafe, _ = _noisy_axis_pairs(3000, 0)
    test_safe, test_unsafe, _ = _noisy_axis_pairs(3000, 1)
    results = {}
    for name, fn in DIRECTION_KINDS.items():
        u = fn(safe, unsafe).unit().vector
        results[name] = auroc(test_safe @ u, test_unsafe @ u)
    assert results["shrunk-lda"] > results["difference-of-means"] + 0.1
    assert results["shrunk-lda"] > 0.7


def test_shrunk_lda_norm_convention_and_formula() -> None:
    safe, unsafe, _ = _noisy_axis_pairs(500, 2)
    d = safe.double().mean(0) - unsafe.double().mean(0)
    lda = shrunk_lda(safe, unsafe, shrinkage=0.1, category="x", space="s")
    v = lda.vector.double()
    assert float(v @ d / d.norm()) == pytest.approx(float(d.norm()), rel=1e-5)  # ⟨v, d̂⟩ = ‖d‖
    assert lda.norm == pytest.approx(float(d.norm()) / cosine(v, d), rel=1e-5)
    # direction: Σ_w⁻¹ d with Σ_w the shrunk pooled within-class covariance, by hand
    within = torch.cat(
        [safe.double() - safe.double().mean(0), unsafe.double() - unsafe.double().mean(0)]
    )
    s_w = within.T @ within / within.shape[0]
    sigma = 0.9 * s_w + 0.1 * float(torch.trace(s_w)) / 16 * torch.eye(16, dtype=torch.float64)
    assert cosine(v, torch.linalg.solve(sigma, d)) == pytest.approx(1.0, abs=1e-9)
    assert (lda.category, lda.space, lda.n_pairs) == ("x", "s", 500)
    assert lda.provenance["direction_kind"] == "shrunk-lda" and lda.provenance["shrinkage"] == "0.1"


def test_shrunk_lda_with_isotropic_noise_is_difference_of_means() -> None:
    safe, unsafe = _planted_pairs(400, 8, torch.ones(8), seed=3)
    full = shrunk_lda(safe, unsafe, shrinkage=1.0)  # Σ_w ∝ I
    assert torch.allclose(full.vector, difference_of_means(safe, unsafe).vector, atol=1e-5)
    auto = shrunk_lda(safe, unsafe)  # Ledoit–Wolf: close to isotropic here
    assert cosine(auto.vector, full.vector) > 0.95
    assert 0.0 <= float(auto.provenance["shrinkage"]) <= 1.0


def test_shrunk_lda_refusals() -> None:
    with pytest.raises(InputError, match="2 pairs"):
        shrunk_lda(torch.ones(1, 3), torch.zeros(1, 3))
    with pytest.raises(InputError, match="coincide"):
        shrunk_lda(
            torch.randn(5, 3, generator=torch.Generator().manual_seed(0)).repeat(2, 1),
            torch.randn(5, 3, generator=torch.Generator().manual_seed(0)).repeat(2, 1),
        )
    with pytest.raises(InputError, match="shrinkage"):
        shrunk_lda(torch.randn(5, 3), torch.randn(5, 3), shrinkage=2.0)


# ---- several sources -------------------------------------------------------------------------
def test_average_transported_is_the_mean_unit_vector_at_the_mean_norm() -> None:
    g = torch.Generator().manual_seed(4)
    vs = [torch.randn(12, generator=g) * s for s in (1.0, 3.0, 10.0)]
    avg = average_transported(vs)
    units = torch.stack([v / v.norm() for v in vs]).mean(0)
    assert cosine(avg, units) == pytest.approx(1.0, abs=1e-6)
    assert float(avg.norm()) == pytest.approx(sum(float(v.norm()) for v in vs) / 3, rel=1e-6)
    # lengths do not weigh: scaling one source changes only the final length
    again = average_transported([vs[0], 100 * vs[1], vs[2]])
    assert cosine(again, avg) == pytest.approx(1.0, abs=1e-6)
    given = average_transported(vs, norms=[2.0, 4.0, 6.0])
    assert float(given.norm()) == pytest.approx(4.0) and cosine(given, avg) == pytest.approx(1.0)
    one = average_transported([vs[1]])
    assert torch.allclose(one, vs[1], atol=1e-5)


def test_average_transported_refusals() -> None:
    v = torch.ones(4)
    with pytest.raises(InputError, match="no vectors"):
        average_transported([])
    with pytest.raises(InputError, match="cancel"):
        average_transported([v, -v])
    with pytest.raises(InputError, match="one D"):
        average_transported([v, torch.ones(5)])
    with pytest.raises(InputError, match="zero"):
        average_transported([v, torch.zeros(4)])
    with pytest.raises(InputError, match="norms"):
        average_transported([v, v], norms=[1.0])


def test_category_directions_by_kind_and_the_kinds_registry() -> None:
    g = torch.Generator().manual_seed(2)
    safe = torch.randn(60, 5, generator=g) * torch.tensor([0.2, 3.0, 1.0, 1.0, 1.0]) + 1.0
    unsafe = torch.randn(60, 5, generator=g) * torch.tensor([0.2, 3.0, 1.0, 1.0, 1.0])
    labels = ["x"] * 30 + ["y"] * 30
    lda = category_directions(safe, unsafe, labels, kind="shrunk-lda")
    for name, rows in (("x", slice(0, 30)), ("y", slice(30, 60))):
        want = shrunk_lda(safe[rows], unsafe[rows]).vector
        assert torch.allclose(lda[name].vector, want)
        assert lda[name].category == name and lda[name].provenance["direction_kind"] == "shrunk-lda"
    assert list(DIRECTION_KINDS) == ["difference-of-means", "shrunk-lda"]
    assert direction_estimator("difference-of-means") is difference_of_means
    with pytest.raises(InputError, match="direction kind"):
        category_directions(safe, unsafe, labels, kind="pca")
