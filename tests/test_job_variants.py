"""Issue 11's variants in the default job: each row family produced from the right inputs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from safesteer.build import SidePairs, SourceSide, assemble_multi_source_pack
from safesteer.jobs.default import JobConfig, run_default_job
from safesteer.jobs.default import variants as vt
from safesteer.jobs.default.results_doc import render
from safesteer.jobs.default.splits import load_job_data
from safesteer.maths.directions import average_transported
from safesteer.maths.steering import projection_target
from test_default_job import FakeSource, FakeTarget


class SignJudge:
    """A planted judge: a prompt is unsafe when its first coordinate is below zero."""

    def is_unsafe(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled[:, 0] < 0


def test_to_projection_leaves_rows_at_or_above_tau_untouched() -> None:
    g = torch.Generator().manual_seed(0)
    states = torch.randn(50, 6, generator=g)
    vector = torch.randn(6, generator=g)
    tau = projection_target(states, vector, 0.5)
    out = vt.steer_pooled("to-projection", states, vector, tau=tau)
    unit = vector.double() / vector.double().norm()
    above = states.double() @ unit >= tau
    assert 0 < int(above.sum()) < 50
    assert torch.equal(out[above], states[above])  # bit for bit
    # rows below τ land on τ exactly (up to float32 rounding), moved along v̂ only
    landed = out[~above].double() @ unit
    assert torch.allclose(landed, torch.full_like(landed, tau), atol=1e-5)
    rest = (out[~above] - states[~above]).double()
    assert torch.allclose(rest - (rest @ unit)[:, None] * unit, torch.zeros_like(rest), atol=1e-6)


def test_drift_at_goal_is_the_smallest_setting_reaching_two_percent() -> None:
    unsafe = torch.tensor([[-1.0, 0.0], [-2.0, 1.0], [-2.9, 0.0]])
    benign = {"a": torch.tensor([[1.0, 1.0], [-0.1, 2.0]]), "b": torch.tensor([[3.0, 0.0]])}
    judge = SignJudge()
    goal = vt.drift_at_goal("additive", torch.tensor([1.0, 0.0]), unsafe, benign, judge, unsafe)
    assert goal["reached"] and goal["value"] == 3.0  # -2.9 + 2.75 < 0, -2.9 + 3.0 ≥ 0
    assert goal["unsafe_rate"] == 0.0
    # set a: one prompt judged unsafe before (x0 = -0.1) is safe after: one flip, none to unsafe
    assert goal["benign_label_flip"] == {"a": 0.5, "b": 0.0}
    assert goal["benign_flip_to_unsafe"] == {"a": 0.0, "b": 0.0}
    moved = benign["b"] + torch.tensor([3.0, 0.0])
    assert abs(goal["benign_cosine"]["b"] - 1.0) < 1e-6  # moving along itself keeps the direction
    assert torch.equal(moved, torch.tensor([[6.0, 0.0]]))
    never = vt.drift_at_goal("additive", torch.tensor([-1.0, 0.0]), unsafe, benign, judge, unsafe)
    assert not never["reached"] and never["min_unsafe_rate"] == 1.0
    # to-projection: τ = q-quantile of the anchors' projections; the unsafe rows move up to τ
    anchors = torch.tensor([[float(x), 0.0] for x in range(-5, 6)])
    proj = vt.drift_at_goal(
        "to-projection", torch.tensor([1.0, 0.0]), unsafe, benign, judge, anchors
    )
    assert proj["reached"] and proj["setting"] == "q"
    assert proj["tau"] >= 0.0  # the first grid q whose τ clears every unsafe row
    assert proj["value"] == min(
        q for q in vt.QUANTILE_GRID if projection_target(anchors, torch.tensor([1.0, 0.0]), q) >= 0
    )
    assert proj["benign_cosine"]["b"] == 1.0  # above τ: untouched


def test_anchor_kinds_fit_and_held_out_parts_are_disjoint(tmp_path: Path) -> None:
    data = load_job_data(JobConfig(out=tmp_path, n_anchors=120, max_pairs=20))
    held = vt.held_out_parts(data.calibration, data.benign_test)
    for kind, sets in vt.ANCHOR_KINDS.items():
        fit = {t for s in sets for t in data.fit_sets.get(s, [])}
        held_out = {t for s in sets for t in held.get(s, [])}
        assert fit and held_out, kind
        assert not fit & held_out, kind
    assert set(vt.ANCHOR_KINDS["all"]) == set(data.fit_sets)


def _planted_inputs(second: bool = False) -> tuple[vt.VariantInputs, list[str]]:
    src, tgt = FakeSource(), FakeTarget("t")
    g = torch.Generator().manual_seed(3)
    words = [f"w{i}" for i in range(60)]
    texts = [
        " ".join(words[j] for j in torch.randint(0, 60, (5,), generator=g)) for _ in range(400)
    ]
    safe = [f"{t} calm" for t in texts[:40]]
    unsafe = [f"{t} blood" for t in texts[:40]]
    every = [*texts, *safe, *unsafe]
    layer = 3 if second else 2  # a second "source": the same words at another layer's scale
    s_states = dict(zip(every, src.pooled(every, layer), strict=True))
    t_states = dict(zip(every, tgt.pooled(every), strict=True))

    def pairs(states: dict[str, torch.Tensor]) -> SidePairs:
        return SidePairs(
            torch.stack([states[t] for t in safe]),
            torch.stack([states[t] for t in unsafe]),
            ("x",) * 40,
        )

    fit = texts[:300]
    inp = vt.VariantInputs(
        source_pairs=pairs(s_states),
        target_test=pairs(t_states),
        source_states=s_states,
        target_states=t_states,
        fit_sets={"ours": fit},
        held_sets={"ours": texts[300:]},
        benign_test={"ours": torch.stack([t_states[t] for t in texts[300:]])},
        tau_anchors=torch.stack([t_states[t] for t in fit]),
        judge=SignJudge(),
        native=pairs(t_states).safe.mean(0) - pairs(t_states).unsafe.mean(0),
        n_null=3,
    )
    return inp, fit


def test_two_source_vector_is_average_transported_of_single_sources() -> None:
    first, fit = _planted_inputs()
    second = _planted_inputs(second=True)[0]
    one, two, both = vt.two_source_vectors(first, second, fit, "procrustes")
    assert torch.allclose(both, average_transported([one, two]))
    # and it is what the library's multi-source pack carries
    rows = lambda states: torch.stack([states[t] for t in fit])  # noqa: E731
    built = assemble_multi_source_pack(
        sources=[
            SourceSide(first.source_pairs, rows(first.source_states)),
            SourceSide(second.source_pairs, rows(second.source_states)),
        ],
        target_anchors=rows(first.target_states),
        map_kind="procrustes",
        target_id="fake",
        conditioning_space="fake/encoder",
        provenance={},
    )
    assert torch.allclose(built.pack.global_vector, both, atol=1e-5)
    out = vt.two_source_rows(
        first, ("a", "b"), second.source_pairs, second.source_states, fit, ["procrustes"]
    )
    assert [r.name for r in out] == [
        "procrustes, a alone",
        "procrustes, b alone",
        "procrustes, two sources",
    ]
    assert (
        out[2].auroc_style_matched == vt.vector_row("x", "x", "x", both, first).auroc_style_matched
    )


def test_job_reports_every_variant_family_and_results_md_renders_them(tmp_path: Path) -> None:
    config = JobConfig(
        out=tmp_path,
        targets=("t1", "t2"),
        layer=2,
        maps=("procrustes", "ridge", "mlp"),
        n_anchors=600,
        n_random=2,
        n_null=3,
        n_images=0,
        cache=False,
    )
    metrics = run_default_job(
        config,
        lambda _: None,
        source_loader=lambda _: FakeSource(),
        target_loader=lambda n: (FakeTarget(n), None),
    )
    families = {"steering rule", "calibration", "anchors", "mlp transport", "ridge λ", "sources"}
    for name in ("t1", "t2"):
        rep = metrics["targets"][name]
        found = rep["variants"]
        assert {r["family"] for r in found} == families, name
        names = {r["name"] for r in found}
        assert {"mlp, direct", "mlp, difference", "mlp, jacobian"} <= names
        assert {"ridge, λ by holdout", "ridge, λ by kfold"} <= names
        other = "t2" if name == "t1" else "t1"
        assert f"procrustes, {other} alone" in names and "procrustes, two sources" in names
        anchors = [r for r in found if r["family"] == "anchors"]
        assert {r["name"].split("anchors ")[1] for r in anchors} >= {"ours", "t2i", "all"}
        for r in anchors:
            assert set(r["fit_by_kind"]) >= {"ours", "t2i", "all"}
        by_name = {r["name"]: r for r in found}
        chosen = rep["chosen_map"]
        # the default pack's vector: the same AUROC / cosine as its map row (computed once)
        default = by_name[f"{chosen}, additive"]
        assert default["auroc_style_matched"] == rep["maps"][chosen]["auroc_style_matched"]
        assert abs(default["cosine_to_native"] - rep["maps"][chosen]["cosine_to_native"]) < 1e-6
        assert by_name["native, additive"]["cosine_to_native"] > 0.999
        assert by_name[f"{chosen}, z-score"]["norm_ratio_to_native"] != pytest_approx(
            by_name[f"{chosen}, β"]["norm_ratio_to_native"]
        )
        assert by_name["random, additive"]["goal"]["draws"] == 2
    md = render(json.loads((tmp_path / "metrics.json").read_text()))
    assert "Issue 11 variants" in md and "Issue 11 anchors" in md and "drift at the goal" in md
    for fam in families:
        assert f"| {fam} |" in md
    assert "band mean" in md  # the layers note
    assert md == (tmp_path / "results.md").read_text()


def pytest_approx(x: float) -> object:
    import pytest

    return pytest.approx(x, abs=1e-9)
