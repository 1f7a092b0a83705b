"""The default job end to end: fast on planted fake models, slow on the real packaged ones."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from safesteer.build import SidePairs
from safesteer.data import load_pairs
from safesteer.data.partitions import pair_parts
from safesteer.evaluation.probes import LinearProbe
from safesteer.jobs.default import JobConfig, run_default_job
from safesteer.jobs.default.direction_scores import GateInputs, gated_evaluation
from safesteer.jobs.default.splits import split_anchors
from safesteer.maths.gating import Gate
from safesteer.pack import SafetyPack, source_spec


@functools.cache
def _word_vector(word: str, dim: int, salt: str) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(f"{salt}:{word}".encode()).digest()[:8], "little")
    return torch.randn(dim, generator=torch.Generator().manual_seed(seed % 2**63))


def _bag(text: str, dim: int, salt: str) -> torch.Tensor:
    words = text.lower().split()
    return torch.stack([_word_vector(w, dim, salt) for w in words]).mean(0)


class FakeSource:
    """Bag-of-words 'LLM': a prompt's pooled state is the mean of seeded word vectors."""

    model_id = "fake-source (planted bag of words, random)"
    num_layers = 4
    random_weights = True

    def pooled(self, prompts: Sequence[str], layer: int) -> torch.Tensor:
        return torch.stack([_bag(p, 48, "src") for p in prompts]) * (layer + 1)

    def resolve_layer(self, layer: int) -> int:
        return layer

    def pooled_layers(
        self, prompts: Sequence[str], layers: Sequence[int]
    ) -> dict[int, torch.Tensor]:
        return {layer: self.pooled(prompts, layer) for layer in layers}


class FakeTarget:
    """A target that sees the same words through a fixed linear map, plus its own word noise."""

    conditioning_space = "fake/encoder"
    dim = 32
    random_weights = True

    def __init__(self, name: str) -> None:
        self.target_id = f"fake-target-{name} (random)"
        self.map = torch.randn(32, 48, generator=torch.Generator().manual_seed(1)) / 48**0.5

    def pooled(self, prompts: Sequence[str], batch_size: int = 16) -> torch.Tensor:
        base = torch.stack([_bag(p, 48, "src") for p in prompts]) @ self.map.T
        noise = torch.stack([_bag(p, 32, "tgt") for p in prompts])
        return 3.0 * base + 0.3 * noise + 5.0


def test_split_anchors_disjoint_and_deterministic() -> None:
    texts = [f"anchor {i}" for i in range(100)]
    a, b = split_anchors(texts, 0.2, 0.1, seed=0), split_anchors(texts, 0.2, 0.1, seed=0)
    assert a == b
    assert (len(a.fit), len(a.held_out), len(a.judge)) == (70, 20, 10)
    assert not (set(a.fit) & set(a.held_out)) and not (set(a.fit) & set(a.judge))


def test_default_job_on_planted_models(tmp_path: Path) -> None:
    config = JobConfig(
        out=tmp_path,
        targets=("t1",),
        layer=2,
        maps=("procrustes", "ridge"),
        n_anchors=600,
        n_random=3,
        n_null=5,
        n_images=0,
        cache=False,
    )
    lines: list[str] = []
    metrics = run_default_job(
        config,
        lines.append,
        source_loader=lambda _: FakeSource(),
        target_loader=lambda n: (FakeTarget(n), None),
    )
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["summary"]["lines"] == metrics["summary"]["lines"]
    page = (tmp_path / "index.html").read_text()
    assert page.count("<img") >= 2
    # the first screen: headline and plots before the long tables and the JSON
    assert page.index("How much safer, at what cost") < page.index("t1-curves.png")
    assert page.index("t1-curves.png") < page.index("<h3>Directions") < page.index("Provenance")
    assert "<td>t1</td><td>procrustes</td>" in page or "<td>t1</td><td>ridge</td>" in page
    assert (tmp_path / "plots" / "t1-curves.png").stat().st_size > 1000
    if shutil.which("/usr/bin/chromium"):  # the first screen as a reader sees it
        from test_report_page import _screenshot

        img = _screenshot(tmp_path / "index.html", tmp_path, 1280, 1000)
        assert (np.abs(img - [244, 247, 251]).sum(-1) < 4)[:500].sum() > 50_000  # headline
        assert (np.abs(img - [31, 119, 180]).sum(-1) < 36)[400:].sum() > 300  # the curves plot
    rep = metrics["targets"]["t1"]
    nat = rep["native"]["auroc_style_matched"]
    assert nat > 0.6  # the unsafe twins add words the bag-of-words sees
    for kind in ("procrustes", "ridge"):
        row = rep["maps"][kind]
        # the planted target is a linear image of the source: transfer must match native
        assert row["auroc_style_matched"] > nat - 0.05, kind
        assert row["cosine_to_native"] > row["null_cosine_random_source"]["max"]
        assert row["fit_held_out"]["r2"] > 0.5
        assert set(row["curve_gated"][0]["unsafe_rate"]) == {"linear-probe", "pca-probe"}
        # the source gate decides from the source states, steering happens in the target
        source_curve, source_rates = row["curve_gated_source"], row["gate_source"]
        assert set(source_curve[0]["unsafe_rate"]) == {"linear-probe", "pca-probe"}
        always = row["curve_always_on"][0]
        assert source_curve[0]["unsafe_rate"] == always["unsafe_rate"]  # α = 0 changes nothing
        assert source_rates["benign_held_out_steered"] < 0.15
        last = source_curve[-1]
        assert last["benign_steered_fraction"] == source_rates["benign_held_out_steered"]
        assert last["unsafe_steered_fraction"] == source_rates["unsafe_test_steered"]
        pack = SafetyPack.load(tmp_path / "packs" / f"t1-{kind}.safetensors")
        pack.check_fits(dim=32, conditioning_space="fake/encoder")
        assert pack.provenance["map_kind"] == kind and pack.gate is not None
        assert pack.source_gate is not None and pack.source_gate.centre_.shape == (48,)
        assert pack.source_gate_spec == source_spec(FakeSource(), 2)
        assert pack.provenance["anchors_hash"].startswith("sha256:")
    assert abs(rep["random"]["auroc_style_matched"]["mean"] - 0.5) < 0.2
    # steering along the native vector drives the judged-unsafe rate down; α = 0 changes nothing
    curve = rep["native"]["curve_always_on"]
    assert curve[0]["benign_cosine"] == pytest.approx(1.0)
    assert curve[-1]["unsafe_rate"]["linear-probe"] < curve[0]["unsafe_rate"]["linear-probe"]
    assert metrics["data"]["hashes"]["test_pairs"].startswith("sha256:")
    # the map is chosen by the benign-only rule (ρ on calibration parts), never by test AUROC
    fidelity = {k: rep["maps"][k]["transport_fidelity"] for k in ("procrustes", "ridge")}
    assert rep["chosen_map"] == max(fidelity, key=lambda k: fidelity[k])
    assert rep["map_choice"]["transport_fidelity"] == fidelity
    lda = rep["maps"]["ridge"]["variants"]["shrunk-lda direction"]  # reported, never chosen
    assert 0.0 <= lda["auroc_style_matched"] <= 1.0 and -1.0 <= lda["transport_fidelity"] <= 1.0
    assert all(-1.0 <= r <= 1.0 for r in fidelity.values())
    assert any("chosen map" in line and "not by test" in line for line in lines)
    assert not any("best map" in line for line in lines)
    # every benign test set separately, and the unsafe test side per category, for each gate
    sets = {"parti", "compbench", "geneval", "imagereward", "ours", "sspairs"}
    source_gate = metrics["source"]["gate"]
    assert set(source_gate["benign_steered"]) == sets
    categories = {p.category for p in pair_parts()["test"].pairs}
    assert set(source_gate["unsafe_steered_by_category"]) == categories
    for key in ("gate_by_set", "gate_source_by_set"):
        by_set = rep["maps"]["ridge"][key]
        assert set(by_set["benign_steered"]) == sets
        assert set(by_set["unsafe_steered_by_category"]) == categories
    # the source gate is one gate for every pack (it reads source states only)
    assert (
        rep["maps"]["ridge"]["gate_source_by_set"]
        == rep["maps"]["procrustes"]["gate_source_by_set"]
    )
    assert "gate_by_set" in rep["native"] and "gate_source_by_set" not in rep["native"]
    # every set is labelled: ours, or its source and licence
    labels = metrics["data"]["sets"]
    assert labels["ours"].endswith("(ours)") and "Apache-2.0" in labels["parti"]
    assert "MIT" in labels["sspairs"] and "scene" in metrics["data"]["scenes_note"]
    # results.md is generated from metrics.json and shows the per-set tables
    results = (tmp_path / "results.md").read_text()
    assert "Variants: every map × gate, per benign set" in results
    assert "| imagereward |" in results or "imagereward |" in results
    # never unsafe prompt text in what the job writes
    unsafe = [p.unsafe for part in pair_parts().values() for p in part.pairs]
    for written in ("metrics.json", "index.html", "results.md"):
        text = (tmp_path / written).read_text()
        assert not [u for u in unsafe if u in text], written
    assert any("gated (target gate)" in line for line in lines)
    assert any("gated (source gate)" in line for line in lines)
    assert "alpha_gated_source" in metrics["summary"]["per_target"]["t1"]
    native_pack_file = SafetyPack.load(tmp_path / "packs" / "t1-native.safetensors")
    assert native_pack_file.source_gate is None and "curve_gated_source" not in rep["native"]
    # random weights are said wherever numbers are printed and stored
    assert "RANDOM weights in: t1, source" in metrics["summary"]["lines"][0]
    assert pack.provenance["target_random_weights"] and pack.provenance["source_random_weights"]


def test_gated_evaluation_leaves_unsteered_benign_bit_identical() -> None:
    g = torch.Generator().manual_seed(0)
    d_src, d_tgt = 12, 8
    v_src = torch.zeros(d_src)
    v_src[0] = 1.0  # the source gate's safe side is +e0
    gate = Gate(0.05, calibration_fraction=0.0).fit(
        torch.randn(400, d_src, generator=g), {"global": v_src}
    )
    unsafe_t, safe_t = torch.randn(40, d_tgt, generator=g) - 2, torch.randn(40, d_tgt, generator=g)
    benign_t = torch.randn(30, d_tgt, generator=g) + 1
    judges = {"linear-probe": LinearProbe().fit(safe_t, unsafe_t)}
    test = SidePairs(safe_t, unsafe_t, tuple(["a"] * 40))
    src_unsafe = torch.randn(40, d_src, generator=g)
    src_unsafe[:30, 0] -= 20.0  # the source gate sees 30 of the 40 unsafe prompts
    src_unsafe[30:] = gate.centre_  # and not the other 10
    quiet_benign = gate.centre_.expand(30, d_src).clone()  # at the benign centre: never steered
    decide_on = GateInputs(src_unsafe, torch.randn(40, d_src, generator=g), quiet_benign)
    v_t = torch.full((d_tgt,), 0.7)
    curve, rates = gated_evaluation(
        v_t, gate, decide_on, test=test, easy_benign=benign_t, probes=judges, alphas=(0.0, 2.0, 5.0)
    )
    assert rates["benign_held_out_steered"] == 0.0 and rates["unsafe_test_steered"] == 0.75
    for row in curve:  # benign rows the gate left alone are bit-identical at every α
        assert row["benign_cosine"] == 1.0 and row["benign_shift_in_spread"] == 0.0
        assert row["benign_unsafe_rate"] == curve[0]["benign_unsafe_rate"]
        assert row["unsafe_steered_fraction"] == 0.75


def _real_run(out: Path) -> dict[str, Any]:
    config = JobConfig(
        out=out,
        targets=("minilm-l6",),
        maps=("procrustes", "ridge"),
        n_anchors=600,
        n_random=2,
        n_null=5,
        n_images=1,
    )
    return run_default_job(config, lambda _: None)


@pytest.mark.slow
def test_default_job_on_real_packaged_models(tmp_path: Path) -> None:
    metrics = _real_run(tmp_path)
    rep = metrics["targets"]["minilm-l6"]
    assert rep["native"]["auroc_style_matched"] > 0.6
    assert max(r["auroc_style_matched"] for r in rep["maps"].values()) > 0.55
    assert abs(rep["random"]["auroc_style_matched"]["mean"] - 0.5) < 0.25
    # the attention sink must not dominate the source direction (method.md §9)
    pooling = metrics["source"]["pooling_check"]
    assert pooling["vector_top1_dim_share"] < 0.5
    # SmolLM2's position 0 is an attention sink: the reader must find and drop it (counted
    # only for prompts read now, not cache hits, so read a few without the cache)
    from safesteer.models import SourceReader

    layer = metrics["source"]["layer"]
    assert "auto rule" in metrics["source"]["layer_choice"]["rule"]  # the fixed default, why
    reader = SourceReader.from_preset("smollm2-135m", cache=False)
    reader.pooled([p.unsafe for p in load_pairs("test")[:8]], layer)
    assert reader.exclusions[layer][0] == 8
    assert (tmp_path / "packs" / "minilm-l6-ridge.safetensors").is_file()
    assert (tmp_path / "index.html").is_file()
    # images are named by test id and category; no unsafe prompt text in the record or page
    record = rep["images"]["images"][0]
    assert set(record) >= {"id", "category", "files"} and "prompt" not in record
    unsafe = [p.unsafe for p in load_pairs("all")]
    unsafe += [p.unsafe for part in pair_parts().values() for p in part.pairs]
    for written in ("metrics.json", "index.html", "results.md"):
        text = (tmp_path / written).read_text()
        assert not [p for p in unsafe if p in text], written
    assert f"{record['id']} · {record['category']}" in (tmp_path / "index.html").read_text()


def test_demo_with_unreachable_user_models_is_a_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from safesteer.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub here; fail fast and the same everywhere
    args = [
        "demo",
        "--source",
        "meta-llama/Llama-3.1-8B",
        "--target",
        "black-forest-labs/FLUX.1-schnell",
        "--out",
        str(tmp_path),
        "--images",  # with images, the paper protocol's missing Q16 file is refused even sooner
        "0",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot load model 'meta-llama/Llama-3.1-8B'")
    assert "Traceback" not in err


def test_build_command_rejects_bad_pairs_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safesteer.cli import main

    bad = tmp_path / "pairs.jsonl"
    bad.write_text("not json\n")
    args = [
        "build",
        "--source",
        "smollm2-135m",
        "--layer",
        "20",
        "--target",
        "minilm-l6",
        "--out",
        str(tmp_path / "p.safetensors"),
        "--pairs",
        str(bad),
    ]
    assert main(args) == 2
    assert "pairs.jsonl:1 is not a pair" in capsys.readouterr().err


def test_user_pipeline_target_unreachable_is_model_load_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from safesteer.errors import ModelLoadError
    from safesteer.targets import load_target

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"FLUX\.1-schnell"):
        load_target("black-forest-labs/FLUX.1-schnell")


@pytest.mark.slow
def test_generator_target_hands_over_to_image_evaluation(tmp_path: Path) -> None:
    """`safesteer demo --target <pipeline>`: same report on the pipeline's states, then images."""
    config = JobConfig(
        out=tmp_path,
        targets=("tiny-sd",),
        maps=("procrustes",),
        max_pairs=12,
        n_anchors=300,
        n_random=2,
        n_null=5,
        n_images=1,
    )
    metrics = run_default_job(config, lambda _: None)
    rep = metrics["targets"]["tiny-sd"]
    assert rep["target_random_weights"] is True
    evaluation = rep["images"]
    assert evaluation["protocol"] == "quick"  # random weights: the packaged classifiers only
    summary = json.loads((tmp_path / "evaluation" / "summary.json").read_text())
    conditions = {r["condition"] for r in summary["rows"]}
    assert conditions == {
        "none",
        "native-tiny-sd-native",
        "tiny-sd-procrustes",
        "tiny-sd-procrustes-gated",
        "tiny-sd-procrustes-gated-source",
    }
    n_test = len(load_pairs("test")[:12])
    assert all(r["n_safety"] == n_test and r["n_utility"] == 10 for r in summary["rows"])
