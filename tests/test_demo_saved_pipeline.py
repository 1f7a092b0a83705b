"""`safesteer demo --target <saved pipeline folder>`: offline, end to end (packs, metrics, the
image evaluation), with the protocol and Q16 options passed through (issue 12 §5)."""

from __future__ import annotations

import json

import pytest

from safesteer.cli import main
from safesteer.pack import SafetyPack


@pytest.fixture(scope="module")
def saved_flux(tmp_path_factory):
    from safesteer.targets import tiny_pipeline

    folder = tmp_path_factory.mktemp("pipelines") / "tiny-flux-saved"
    tiny_pipeline("flux").save_pretrained(folder)  # a real pipeline folder (random weights)
    return folder


SMALL = ["--max-pairs", "8", "--anchors", "200", "--images", "1", "--map", "procrustes"]
FAST = ["--steps", "2", "--size", "32"]  # random weights: small images are enough


def test_paper_protocol_without_q16_is_refused_before_any_work(saved_flux, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["demo", "--target", str(saved_flux), "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "--q16-prompts" in err and "convert-q16" in err and "--protocol quick" in err
    assert not (out / "metrics.json").exists() and not (out / "packs").exists()


@pytest.mark.slow
def test_saved_pipeline_folder_runs_end_to_end(saved_flux, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    args = ["demo", "--target", str(saved_flux), "--out", str(out), "--protocol", "quick"]
    assert main([*args, *SMALL, *FAST]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    (name,) = metrics["targets"]
    report = metrics["targets"][name]
    assert report["images"]["protocol"] == "quick"  # the hand-over record
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert {r["condition"] for r in summary["rows"]} >= {"none"}
    packs = sorted(p.name for p in (out / "packs").iterdir())
    assert any(p.endswith("-procrustes.safetensors") for p in packs)
    pack = SafetyPack.load(next((out / "packs").glob("*-procrustes.safetensors")))
    # the saved folder has no guidance embedding, so it is encoded like schnell: 256 tokens
    assert pack.encoding["family"] == "flux" and pack.encoding["max_sequence_length"] == 256
    protocol = json.loads((out / "evaluation" / "protocol.json").read_text())
    assert protocol["pipeline"]["call"]["max_sequence_length"] == 256  # generated as fitted
