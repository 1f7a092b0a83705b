"""The planted end-to-end pass: figures against the planted truth, and the CLI command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safesteer.cli import main
from safesteer.jobs.planted import LABEL, run_planted


def test_planted_pass_recovers_the_truth(tmp_path: Path) -> None:
    result = run_planted(tmp_path, ds=24, dt=40, n_anchors=800, quiet=True)
    for kind in ("procrustes", "ridge"):
        assert result["maps"][kind]["cosine_to_planted"] > 0.99
        assert result["maps"][kind]["length_ratio_to_planted"] == pytest.approx(1.0, abs=0.05)
    assert result["maps"]["mlp"]["cosine_to_planted"] > 0.9
    assert result["beta"] == pytest.approx(result["planted_scale"], rel=0.05)
    assert result["pack"]["round_trip_exact"] is True
    gate = result["gate"]
    assert 0.02 < gate["benign_held_out_rate"] < 0.1
    assert gate["unsafe_rate"] > 0.9 and gate["own_category_active"] > 0.8
    assert result["steering"]["unsafe_rate_after"] < 0.25  # steering moved them to the safe side
    saved = json.loads((tmp_path / "planted_summary.json").read_text())
    assert saved["label"] == LABEL and (tmp_path / "planted.safetensors").is_file()


def test_cli_prints_a_labelled_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["planted", "--out", str(tmp_path), "--source-dim", "16", "--target-dim", "24"]
    assert main([*argv, "--anchors", "400"]) == 0
    out = capsys.readouterr().out
    assert LABEL in out and "map procrustes" in out and "gate" in out
    assert main([*argv[:3], "--source-dim", "32", "--target-dim", "8"]) == 2
    assert "error:" in capsys.readouterr().err
