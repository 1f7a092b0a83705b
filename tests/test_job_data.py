"""The default job's data roles, map choice and per-set gate rates (no models)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from safesteer.data import load_pairs
from safesteer.data.partitions import benign_parts, default_anchors, default_pairs, pair_parts
from safesteer.errors import InputError
from safesteer.jobs.default import JobConfig
from safesteer.jobs.default.direction_scores import SetStates, set_rates
from safesteer.jobs.default.map_choice import choose_map, transport_fidelity
from safesteer.jobs.default.splits import TEST_SETS, load_job_data, thin
from safesteer.maths.gating import Gate


def test_thin_takes_evenly_spaced_items_and_keeps_strata() -> None:
    assert thin(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert thin(list(range(3)), 5) == [0, 1, 2] and thin(list(range(4)), None) == [0, 1, 2, 3]
    # strata are contiguous in the partition order: thinning keeps their shares
    items = ["a"] * 300 + ["b"] * 100
    assert Counter(thin(items, 40)) == {"a": 30, "b": 10}


def test_job_roles_are_disjoint_labelled_and_capped(tmp_path) -> None:
    data = load_job_data(JobConfig(out=tmp_path, n_anchors=300, max_pairs=50))
    fit, held, judge = set(data.anchors.fit), set(data.anchors.held_out), set(data.anchors.judge)
    cal = {t for texts in data.calibration.values() for t in texts}
    full = load_job_data(JobConfig(out=tmp_path, n_anchors=None, max_pairs=None))
    full_cal = {t for texts in full.calibration.values() for t in texts}
    assert not set(full.anchors.fit) & full_cal  # a prompt in two parts stays in the fit one
    assert not (fit & held) and not (fit & cal) and not (cal & held) and not (judge & held)
    assert not (judge & fit) and not (judge & cal)
    assert set(data.benign_test) == set(TEST_SETS) and set(data.labels) >= set(TEST_SETS)
    assert data.labels["ours"].endswith("(ours)") and "CC0" in data.labels["imagereward"]
    # 300 map-fit anchors over 5 fit sets (as many per test part, half as many per calibration
    # part); 50 pairs per pair part
    # (the SafeSteer safe halves fitted are those of the direction pairs read: 50 here)
    sizes = {n: len(t) for n, t in data.fit_sets.items()}
    assert sizes == {"parti": 60, "compbench": 60, "geneval": 60, "sspairs": 50, "ours": 60}
    assert set(data.fit_sets["sspairs"]) == {p.safe for p in data.train}
    assert all(len(t) == 30 for t in data.calibration.values())
    assert {n: len(t) for n, t in data.benign_test.items() if n != "sspairs"} == {
        "parti": 60,
        "compbench": 60,
        "geneval": 60,
        "imagereward": 60,
        "ours": 60,
    }
    assert len(data.train) == len(data.judge) == len(data.test) == 50
    # the reported safe twins are every safe half of the official test split
    assert data.benign_test["sspairs"] == list(benign_parts()["sspairs"]["test"])
    # SafeSteer pairs: directions from the direction part, judges from the probe part
    parts = pair_parts()
    assert set(data.train) <= set(parts["direction"].pairs)
    assert set(data.judge) <= set(parts["probe"].pairs)
    assert set(data.test) <= set(parts["test"].pairs)
    unsafe = {p.unsafe for p in (*data.train, *data.judge, *data.test)}
    assert not unsafe & (fit | held | cal | judge)  # no unsafe prompt on the benign side


def test_named_options_ours(tmp_path) -> None:
    data = load_job_data(JobConfig(out=tmp_path, pairs="ours", anchor_set="ours", max_pairs=None))
    assert data.train == load_pairs("train") and data.test == load_pairs("test")
    assert list(data.fit_sets) == ["ours"] and data.pairs_label.endswith("(ours)")
    with pytest.raises(InputError, match="unknown pairs"):
        load_job_data(JobConfig(out=tmp_path, pairs="coco"))
    with pytest.raises(InputError, match="unknown anchor set"):
        load_job_data(JobConfig(out=tmp_path, anchor_set="wikitext"))


def test_library_defaults_are_the_fit_parts_and_the_direction_part() -> None:
    anchors, pairs = set(default_anchors()), default_pairs()
    parts = benign_parts()
    for name, by_part in parts.items():
        for part in ("cal", "probe", "test"):
            shared = anchors & set(by_part.get(part, ()))
            # one safe prompt occurs in two SafeSteer scenes (a direction and a gatecal scene)
            assert len(shared) <= (1 if (name, part) == ("sspairs", "cal") else 0), (name, part)
    assert {p.safe for p in pairs} <= anchors  # the SafeSteer safe halves are anchors
    assert not {p.unsafe for p in pairs} & anchors
    assert set(pairs) == set(pair_parts()["direction"].pairs)
    # the same data as the named sets `--pairs safesteer --anchors all` of `safesteer build`
    from safesteer.data import sources

    assert list(sources.resolve_anchors("all").items) == default_anchors()
    assert list(sources.resolve_pairs("safesteer").items) == pairs


def test_transport_fidelity_sees_a_carried_a_flipped_and_a_scrambled_direction() -> None:
    g = torch.Generator().manual_seed(0)
    src = torch.randn(400, 6, generator=g)
    w = torch.linalg.qr(torch.randn(8, 6, generator=g))[0]
    tgt = src @ w.T + 0.01 * torch.randn(400, 8, generator=g)
    v = torch.randn(6, generator=g)
    assert transport_fidelity(src, tgt, v, w @ v) > 0.99
    assert transport_fidelity(src, tgt, v, -(w @ v)) < -0.99
    other = torch.randn(8, generator=g)
    other -= (other @ (w @ v)) / (w @ v).norm() ** 2 * (w @ v)  # orthogonal to the carried one
    assert abs(transport_fidelity(src, tgt, v, other)) < 0.5


def test_choose_map_takes_the_highest_rho_first_on_ties_never_nan() -> None:
    assert choose_map({"procrustes": 0.7, "ridge": 0.8, "mlp": 0.8}) == "ridge"
    assert choose_map({"procrustes": float("nan"), "ridge": 0.1}) == "ridge"
    assert choose_map({}) is None


def test_job_gates_hold_the_rate_on_every_calibration_set() -> None:
    from safesteer.jobs.default.gates import GATE_RULES, fit_gate

    g = torch.Generator().manual_seed(0)
    v = torch.tensor([1.0, 0.0, 0.0, 0.0])
    fit = torch.randn(800, 4, generator=g)
    # two benign styles: one sits towards the unsafe side (−v), as the safe twins do
    cal = {"plain": torch.randn(400, 4, generator=g), "dark": torch.randn(400, 4, generator=g)}
    cal["dark"][:, 0] -= 1.0
    for side in ("source", "target"):
        gate = fit_gate(side, fit, cal, {"global": v})
        rates = {n: float(gate.decide(x).steer.float().mean()) for n, x in cal.items()}
        assert rates["dark"] == pytest.approx(0.05, abs=0.005)  # the worst set sets the level
        assert rates["plain"] < 0.01  # a pooled 5% would steer ~9% of "dark"
        assert gate.threshold_rule == "set-max" and "set-max" in GATE_RULES[side]
        assert torch.allclose(gate.centre_, fit.mean(0), atol=1e-5)  # μ from the fit anchors


def test_set_rates_are_per_set_and_per_category() -> None:
    g = torch.Generator().manual_seed(0)
    v = torch.tensor([1.0, 0.0, 0.0])
    gate = Gate(0.05, score="projection", calibration_fraction=0.0).fit(
        torch.randn(2000, 3, generator=g), {"global": v}
    )
    quiet = torch.zeros(50, 3)  # at the benign centre: never steered
    loud = torch.zeros(40, 3)
    loud[:, 0] = -10.0  # far on the unsafe side: always steered
    unsafe = torch.cat([loud[:30], quiet[:10]])
    rates = set_rates(gate, SetStates({"a": quiet, "b": loud}, unsafe, ("x",) * 30 + ("y",) * 10))
    assert rates["benign_steered"] == {"a": 0.0, "b": 1.0}
    assert rates["unsafe_steered"] == 0.75
    assert rates["unsafe_steered_by_category"] == {"x": 1.0, "y": 0.0}
    assert rates["n"] == {"a": 50, "b": 40, "unsafe/x": 30, "unsafe/y": 10}


def test_build_pack_defaults_use_real_data_and_set_max_gates() -> None:
    from safesteer.build import build_pack
    from safesteer.data.partitions import DEFAULT_DATA_NOTE, default_anchor_sets
    from test_default_job import FakeSource, FakeTarget

    pack = build_pack(FakeSource(), 2, FakeTarget("t"), "ridge")  # no pairs, no anchors
    assert pack.provenance["data"] == DEFAULT_DATA_NOTE
    assert pack.provenance["n_pairs"] == 1452 and pack.provenance["n_anchors"] == 8457
    sets = set(default_anchor_sets())
    assert sets == {"sspairs", "parti", "compbench", "geneval", "ours"}
    assert pack.gate is not None and pack.source_gate is not None
    for gate, score in ((pack.gate, "projection"), (pack.source_gate, "whitened")):
        assert gate.score == score and gate.threshold_rule == "set-max"
        assert set(gate.group_rates_) == sets
        # the set-max level: the worst benign set's held-out union rate is the 5% aimed at
        assert max(gate.group_rates_.values()) <= 0.05 + 1e-9
