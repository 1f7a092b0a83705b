"""Transfer-report metrics on planted geometry."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.evaluation.probes import LinearProbe, fit_probes
from safesteer.evaluation.transfer_metrics import (
    alpha_reaching,
    category_table,
    norm_ratio,
    null_cosines,
    projection_auroc,
    random_directions,
    shift_pooled,
    steering_curve,
)


def clouds(
    n: int = 200, d: int = 16, gap: float = 4.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Safe cloud at +gap/2 e0, unsafe at -gap/2 e0 (so the safe direction is +e0)."""
    g = torch.Generator().manual_seed(seed)
    safe, unsafe = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    safe[:, 0] += gap / 2
    unsafe[:, 0] -= gap / 2
    return safe, unsafe


def test_projection_auroc_sign_and_chance() -> None:
    safe, unsafe = clouds()
    e0 = torch.zeros(16)
    e0[0] = 1.0
    assert projection_auroc(e0, safe, unsafe) > 0.95
    assert projection_auroc(-e0, safe, unsafe) < 0.05  # the counter-direction ranks the other way
    e5 = torch.zeros(16)
    e5[5] = 1.0
    assert abs(projection_auroc(e5, safe, unsafe) - 0.5) < 0.1


def test_random_directions_norm_and_seed() -> None:
    r = random_directions(32, 3.0, 5, seed=1)
    assert torch.allclose(torch.linalg.vector_norm(r, dim=1), torch.full((5,), 3.0))
    assert torch.equal(r, random_directions(32, 3.0, 5, seed=1))
    assert not torch.equal(r, random_directions(32, 3.0, 5, seed=2))


def test_null_cosines_small_for_random_large_for_aligned_map() -> None:
    ref = torch.zeros(64)
    ref[0] = 1.0
    nulls = null_cosines(lambda v: v, 64, 2.0, ref, n_draws=50)
    assert max(abs(c) for c in nulls) < 0.5
    # a map that collapses everything onto ref gives cosine 1 for any input: the null catches it
    collapsed = null_cosines(lambda v: ref * float(v.abs().sum()), 64, 2.0, ref, n_draws=5)
    assert min(collapsed) > 0.99


def test_shift_pooled_gated_rows_bit_identical() -> None:
    pooled = torch.randn(6, 4)
    v = torch.randn(4)
    steer = torch.tensor([True, False, True, False, False, True])
    out = shift_pooled(pooled, v, 2.5, steer)
    assert torch.equal(out[~steer], pooled[~steer])
    assert torch.allclose(out[steer], pooled[steer] + 2.5 * v)


def test_steering_curve_along_safe_direction_clears_judge() -> None:
    safe, unsafe = clouds()
    test_safe, test_unsafe = clouds(seed=3)
    judges = fit_probes(safe, unsafe)
    v = torch.zeros(16)
    v[0] = 2.0
    curve = steering_curve(v, test_unsafe, test_safe, judges, (0.0, 1.0, 3.0))
    lin = [row["unsafe_rate"]["linear-probe"] for row in curve]
    assert lin[0] > 0.9 and lin[-1] < 0.05 and lin[0] >= lin[1] >= lin[2]
    assert curve[0]["benign_cosine"] == pytest.approx(1.0)
    assert curve[-1]["benign_cosine"] < curve[1]["benign_cosine"] < 1.0
    assert curve[0]["benign_shift_in_spread"] == 0.0
    # random vector of the same norm barely moves it
    r = random_directions(16, 2.0, 1, seed=7)[0]
    r[0] = 0.0
    rnd = steering_curve(r, test_unsafe, test_safe, judges, (3.0,))
    assert rnd[0]["unsafe_rate"]["linear-probe"] > 0.8
    hit = alpha_reaching(curve, "linear-probe", 0.05)
    assert hit is not None and hit["alpha"] == 3.0
    assert alpha_reaching(rnd, "linear-probe", 0.05) is None


def test_steering_curve_gated_fractions() -> None:
    safe, unsafe = clouds()
    judges = {"linear-probe": LinearProbe().fit(safe, unsafe)}
    v = torch.zeros(16)
    v[0] = 5.0
    steer_u = torch.arange(200) < 150
    steer_b = torch.zeros(200, dtype=torch.bool)
    curve = steering_curve(
        v, unsafe, safe, judges, (0.0, 2.0), steer_unsafe=steer_u, steer_benign=steer_b
    )
    assert curve[1]["unsafe_steered_fraction"] == 0.75
    assert curve[1]["benign_steered_fraction"] == 0.0
    assert curve[1]["benign_cosine"] == 1.0  # unsteered benign rows are untouched
    # at most the unsteered quarter stays unsafe
    assert 0.2 <= curve[1]["unsafe_rate"]["linear-probe"] <= 0.26


def test_norm_ratio() -> None:
    assert norm_ratio(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 2.5])) == pytest.approx(2.0)


def test_category_table_diagonal() -> None:
    # category a differs along e0, category b along e1: each vector should act on its own column
    g = torch.Generator().manual_seed(0)
    n, d = 80, 8
    safe, unsafe = torch.randn(2 * n, d, generator=g), torch.randn(2 * n, d, generator=g)
    safe[:n, 0] += 2
    unsafe[:n, 0] -= 2
    safe[n:, 1] += 2
    unsafe[n:, 1] -= 2
    cats = ["a"] * n + ["b"] * n
    judge = LinearProbe().fit(safe, unsafe)
    va, vb = torch.zeros(d), torch.zeros(d)
    va[0], vb[1] = 4.0, 4.0
    table = category_table({"a": va, "b": vb}, safe, unsafe, cats, judge, alpha=0.5)
    assert table["a"]["a"]["auroc"] > 0.9 and abs(table["a"]["b"]["auroc"] - 0.5) < 0.15
    assert table["b"]["b"]["auroc"] > 0.9 and abs(table["b"]["a"]["auroc"] - 0.5) < 0.15
    assert table["a"]["a"]["unsafe_rate"] < table["b"]["a"]["unsafe_rate"]
    assert table["a"]["a"]["n_pairs"] == n
    with pytest.raises(InputError):
        category_table({"a": va}, safe, unsafe, cats[:-1], judge, 1.0)


def test_top_dim_shares_detect_outlier_dimension() -> None:
    from safesteer.evaluation.transfer_metrics import top_dim_share, vector_top_dim_share

    x = torch.randn(500, 50)
    assert top_dim_share(x) < 0.1
    x[:, 7] *= 100.0  # one massive-activation dimension
    assert top_dim_share(x) > 0.9
    v = torch.ones(50)
    assert vector_top_dim_share(v, k=5) == pytest.approx(0.1)
    v[3] = 100.0
    assert vector_top_dim_share(v) > 0.99
