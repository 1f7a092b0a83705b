"""Gating: thresholds from benign data only, benign trigger rate, signs, categories, state."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError, PackError
from safesteer.maths import gating
from safesteer.maths.gating import Gate, ledoit_wolf_shrinkage

D = 24


def _benign(n: int, seed: int) -> torch.Tensor:
    """Correlated Gaussian 'benign pooled states' with an offset (fixed mixing, any seed)."""
    mix = torch.randn(D, D, generator=torch.Generator().manual_seed(123)) / D**0.5
    mix[1] *= 6.0  # a high-variance nuisance axis
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g) @ mix + 5.0


def _unit(i: int) -> torch.Tensor:
    v = torch.zeros(D)
    v[i] = 1.0
    return v


@pytest.mark.parametrize("score", ["whitened", "projection"])
@pytest.mark.parametrize("rate", [0.05, 0.1])
def test_benign_trigger_rate_on_fit_and_held_out(score: str, rate: float) -> None:
    vectors = {"global": _unit(0) + _unit(2), "a": _unit(3), "b": _unit(4) - _unit(5)}
    gate = Gate(false_trigger_rate=rate, score=score).fit(_benign(10000, 0), vectors)
    assert gate.benign_rate_ == pytest.approx(rate, abs=0.002)
    held_out = gate.decide(_benign(20000, 1)).steer.double().mean()
    # thresholds are quantiles of n_calibration_ held-out anchors: 3 binomial s.d. + MC noise
    tol = 3 * (rate * (1 - rate) / gate.n_calibration_) ** 0.5 + 0.005
    assert float(held_out) == pytest.approx(rate, abs=tol)
    assert gate.quantile_ > 1 - rate  # several names share the budget


def test_sign_convention_unsafe_is_low_projection() -> None:
    v = _unit(0) + _unit(1)  # points to the SAFE side
    benign = _benign(3000, 2)
    # all anchors fit μ and σ here, so the by-hand formula below uses the same ones
    gate = Gate(0.05, score="projection", calibration_fraction=0.0).fit(benign, {"global": v})
    shift = 4.0 * float((benign @ v / v.norm()).std()) * v / v.norm()
    unsafe, safer = benign[:500] - shift, benign[:500] + shift
    s_unsafe = gate.scores(unsafe)["global"]
    s_benign = gate.scores(benign[:500])["global"]
    assert bool((s_unsafe > s_benign).all())  # higher score = more unsafe
    assert float(gate.decide(unsafe).steer.double().mean()) > 0.95
    assert float(gate.decide(safer).steer.double().mean()) < 0.01
    # by hand: score = −⟨h − μ, v̂⟩ / σ
    mu = benign.double().mean(0)
    proj = (benign[:5].double() - mu) @ (v.double() / v.double().norm())
    sigma = float(((benign.double() - mu) @ (v.double() / v.double().norm())).std())
    assert torch.allclose(s_benign[:5].double(), -proj / sigma, atol=1e-4)


def test_whitened_beats_projection_against_a_noisy_axis() -> None:
    v = _unit(0) + _unit(1)  # shares the high-variance nuisance axis 1
    benign = _benign(4000, 3)
    unsafe = _benign(2000, 4) - 0.8 * _unit(0)  # unsafe prompts move along axis 0 only
    rates = {}
    for score in ("projection", "whitened"):
        gate = Gate(0.05, score=score).fit(benign, {"global": v})
        rates[score] = float(gate.decide(unsafe).steer.double().mean())
    assert rates["whitened"] > rates["projection"] + 0.2
    assert rates["whitened"] > 0.6


@pytest.mark.parametrize("score", ["whitened", "projection"])
def test_categories_active_per_prompt(score: str) -> None:
    # axis-aligned benign spread, so category axes stay separate after whitening
    scales = torch.linspace(0.5, 3.0, D)
    benign = torch.randn(4000, D, generator=torch.Generator().manual_seed(5)) * scales
    vectors = {"global": _unit(2) + _unit(3), "violence": _unit(2), "sexual": _unit(3)}
    gate = Gate(0.05, score=score).fit(benign, vectors)
    fresh = torch.randn(300, D, generator=torch.Generator().manual_seed(6)) * scales
    violent = fresh - 6 * float(scales[2]) * _unit(2)
    decision = gate.decide(violent)
    assert float(decision.steer.double().mean()) > 0.95
    with_violence = sum("violence" in a for a in decision.active) / len(decision.active)
    with_sexual = sum("sexual" in a for a in decision.active) / len(decision.active)
    assert with_violence > 0.9 and with_sexual < 0.1
    assert all("global" not in a for a in decision.active)
    assert set(decision.scores) == set(vectors)


def test_state_round_trip_gives_same_decisions() -> None:
    benign = _benign(2000, 7)
    gate = Gate(0.1).fit(benign, {"global": _unit(0), "x": _unit(1)})
    tensors, meta = gate.state()
    again = Gate.from_state(tensors, meta)
    probe = _benign(500, 8) - 0.5 * _unit(0)
    a, b = gate.decide(probe), again.decide(probe)
    assert torch.equal(a.steer, b.steer) and a.active == b.active
    assert again.thresholds_ == gate.thresholds_ and again.score == "whitened"
    with pytest.raises(PackError, match="incomplete"):
        Gate.from_state(tensors, {k: v for k, v in meta.items() if k != "thresholds"})


def test_ledoit_wolf_matches_the_formula_and_both_branches() -> None:
    g = torch.Generator().manual_seed(9)
    for n, d in ((40, 10), (8, 30)):  # covariance branch and Gram branch
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
        x = x - x.mean(0)
        s = x.T @ x / n
        mu = float(torch.trace(s)) / d
        d2 = float(((s - mu * torch.eye(d, dtype=torch.float64)) ** 2).sum())
        b2 = sum(float(((x[k, :, None] * x[k] - s) ** 2).sum()) for k in range(n)) / n**2
        assert ledoit_wolf_shrinkage(x) == pytest.approx(min(b2, d2) / d2, rel=1e-9)
    wide = torch.randn(10, 200, generator=g)
    tall = torch.randn(5000, 5, generator=g) @ torch.diag(torch.tensor([1.0, 2, 3, 4, 5]))
    assert ledoit_wolf_shrinkage(wide - wide.mean(0)) > ledoit_wolf_shrinkage(tall - tall.mean(0))


def test_woodbury_solve_equals_direct_solve() -> None:
    g = torch.Generator().manual_seed(10)
    for n, d in ((6, 20), (50, 20)):
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
        v = torch.randn(d, generator=g, dtype=torch.float64)
        gamma = 0.3
        mu = float((x * x).sum()) / (n * d)
        sigma = (1 - gamma) * x.T @ x / n + gamma * mu * torch.eye(d, dtype=torch.float64)
        assert torch.allclose(gating._shrunk_solve(x, v, gamma), torch.linalg.solve(sigma, v))
        vs = torch.randn(d, 3, generator=g, dtype=torch.float64)  # several names at once
        assert torch.allclose(gating._shrunk_solve(x, vs, gamma), torch.linalg.solve(sigma, vs))


def test_refusals() -> None:
    with pytest.raises(InputError):
        Gate(false_trigger_rate=0.0)
    with pytest.raises(InputError, match="score"):
        Gate(score="magic")
    with pytest.raises(InputError, match="not fitted"):
        Gate().decide(torch.zeros(2, D))
    gate = Gate().fit(_benign(100, 0), {"global": _unit(0)})
    with pytest.raises(PackError, match=str(D)):
        gate.decide(torch.zeros(2, D + 1))
    with pytest.raises(PackError):
        Gate().fit(_benign(100, 0), {"global": torch.ones(D + 1)})


def test_cross_fitted_thresholds_hold_the_rate_where_in_sample_ones_overfit() -> None:
    # few anchors in many dimensions: the in-sample whitened spread is too small
    d, n = 640, 1400  # MiniLM/Gemma-sized states, as many anchors as the default job
    g = torch.Generator().manual_seed(7)
    scales = torch.linspace(0.2, 3.0, d)
    benign = torch.randn(n, d, generator=g) * scales
    held_out = torch.randn(20000, d, generator=g) * scales
    v = torch.randn(d, generator=g)
    naive = Gate(0.05, calibration_fraction=0.0).fit(benign, {"global": v})
    crossed = Gate(0.05).fit(benign, {"global": v})
    naive_rate = float(naive.decide(held_out).steer.double().mean())
    crossed_rate = float(crossed.decide(held_out).steer.double().mean())
    assert naive_rate > 0.09  # the optimistic variant overshoots the 5% target
    assert crossed_rate == pytest.approx(0.05, abs=0.02)
    assert crossed.n_calibration_ == 420


def test_too_few_anchors_to_hold_out_is_refused() -> None:
    with pytest.raises(InputError, match="too few"):
        Gate(0.05).fit(_benign(30, 0), {"global": _unit(0)})  # 9 held out < 10


# ---- threshold rules: named benign sets (issue 10) -------------------------------------------
def _styles(n: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """Two benign 'styles': b sits 1.5 s.d. towards the unsafe side of axis 0 (like the safe
    halves of pairs: benign, but near the unsafe prompts)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, D, generator=g)
    b = torch.randn(n // 2, D, generator=g) - 1.5 * _unit(0)
    return torch.cat([a, b]), ["a"] * n + ["b"] * (n // 2)


def _rate(gate: Gate, x: torch.Tensor) -> float:
    return float(gate.decide(x).steer.double().mean())


def test_set_max_holds_the_rate_on_every_style_where_pooled_does_not() -> None:
    benign, groups = _styles(6000, 0)
    fresh, fresh_groups = _styles(20000, 1)
    b_rows = torch.tensor([g == "b" for g in fresh_groups])
    vectors = {"global": _unit(0)}
    pooled = Gate(0.05, score="projection").fit(benign, vectors, groups=groups)
    set_max = Gate(0.05, score="projection", threshold_rule="set-max").fit(
        benign, vectors, groups=groups
    )
    assert pooled.benign_rate_ == pytest.approx(0.05, abs=0.002)
    assert pooled.group_rates_["b"] > 0.1 and pooled.group_rates_["a"] < 0.05  # b pays for a
    assert max(set_max.group_rates_.values()) == pytest.approx(0.05, abs=0.002)
    assert set_max.group_rates_["a"] < 0.01
    # held out: each style keeps its calibration rate (3 binomial s.d. of the b calibration)
    tol = 3 * (0.05 * 0.95 / set_max.group_counts_["b"]) ** 0.5
    assert _rate(set_max, fresh[b_rows]) == pytest.approx(0.05, abs=tol)
    assert _rate(pooled, fresh[b_rows]) > 0.1
    assert _rate(set_max, fresh[~b_rows]) < 0.01


def test_set_max_with_one_name_is_the_max_of_the_groups_quantiles() -> None:
    benign, groups = _styles(3000, 2)
    extra, _ = _styles(3000, 3)
    gate = Gate(0.05, threshold_rule="set-max").fit(
        benign, {"global": _unit(0) + _unit(1)}, groups=groups, covariance_from=extra
    )
    scores = gate.scores(benign)["global"].double()  # every row calibrated (covariance elsewhere)
    labels = torch.tensor([g == "b" for g in groups])
    want = max(float(torch.quantile(scores[m], 0.95)) for m in (labels, ~labels))
    assert gate.quantile_ == pytest.approx(0.95)
    assert gate.thresholds_["global"] == pytest.approx(want, rel=1e-6)


def test_set_max_with_several_names_bisects_to_the_worst_group() -> None:
    benign, groups = _styles(4000, 4)
    vectors = {"global": _unit(0), "x": _unit(1), "y": _unit(2) - _unit(3)}
    gate = Gate(0.05, threshold_rule="set-max").fit(benign, vectors, groups=groups)
    worst = max(gate.group_rates_.values())
    # bisection on a finite sample: within one row of the target on the binding group
    assert 0.05 - 1.0 / min(gate.group_counts_.values()) <= worst <= 0.05
    assert gate.quantile_ > 0.95  # three names share the budget
    assert gate.group_rates_["a"] < worst


def test_the_split_is_stratified_by_group() -> None:
    benign, groups = _styles(1000, 5)
    gate = Gate(0.05, calibration_fraction=0.3).fit(benign, {"global": _unit(0)}, groups=groups)
    assert gate.group_counts_ == {"a": 300, "b": 150}
    assert gate.n_calibration_ == 450 and gate.n_covariance_ == 1050 and gate.n_benign_ == 1500
    # without groups nothing changes: the old split, no group records
    plain = Gate(0.05).fit(benign, {"global": _unit(0)})
    assert plain.group_rates_ == {} and plain.n_calibration_ == 450


def test_pooled_with_groups_and_no_split_equals_no_groups() -> None:
    benign, groups = _styles(2000, 6)
    vectors = {"global": _unit(0), "x": _unit(1)}
    a = Gate(0.05, calibration_fraction=0.0).fit(benign, vectors)
    b = Gate(0.05, calibration_fraction=0.0).fit(benign, vectors, groups=groups)
    assert a.thresholds_ == b.thresholds_ and a.quantile_ == b.quantile_
    assert set(b.group_rates_) == {"a", "b"} and a.group_rates_ == {}


def test_covariance_from_fits_centre_and_directions_elsewhere() -> None:
    calibration, groups = _styles(600, 7)
    wide = _benign(5000, 8)
    v = _unit(0) + _unit(1)
    gate = Gate(0.05, threshold_rule="set-max").fit(
        calibration, {"global": v}, groups=groups, covariance_from=wide
    )
    assert torch.allclose(gate.centre_, wide.double().mean(0).float(), atol=1e-5)
    xc = wide.double() - wide.double().mean(0)
    want, _ = gating.whitened_directions(xc, v.double()[:, None], None)
    u = want[:, 0] / want[:, 0].norm()
    assert torch.allclose(gate.directions_["global"].double(), u, atol=1e-5)
    assert gate.n_calibration_ == 900 and gate.n_covariance_ == 5000 and gate.n_benign_ == 5900
    assert sum(gate.group_counts_.values()) == 900  # every calibration row, no split
    with pytest.raises(InputError, match="covariance_from"):
        Gate().fit(calibration, {"global": v}, covariance_from=torch.zeros(10, D + 1))


def test_threshold_rule_state_round_trip_and_refusals() -> None:
    benign, groups = _styles(1000, 9)
    gate = Gate(0.1, threshold_rule="set-max").fit(benign, {"global": _unit(0)}, groups=groups)
    tensors, meta = gate.state()
    assert meta["threshold_rule"] == "set-max" and set(meta["group_rates"]) == {"a", "b"}
    again = Gate.from_state(tensors, meta)
    assert again.threshold_rule == "set-max" and again.group_rates_ == gate.group_rates_
    assert again.group_counts_ == gate.group_counts_ and again.n_covariance_ == gate.n_covariance_
    assert torch.equal(again.decide(benign).steer, gate.decide(benign).steer)
    assert gating.THRESHOLD_RULES == ("pooled", "set-max")
    with pytest.raises(InputError, match="threshold rule"):
        Gate(threshold_rule="max")
    with pytest.raises(InputError, match="group names for"):
        Gate().fit(benign, {"global": _unit(0)}, groups=groups[:-1])
    with pytest.raises(InputError, match=r"\['tiny'\]"):
        Gate().fit(benign[:1001], {"global": _unit(0)}, groups=["a"] * 1000 + ["tiny"])
