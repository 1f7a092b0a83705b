"""The scripts in examples/ run as documented: on the packaged source model and tiny pipelines."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from safesteer.pack import SafetyPack
from safesteer.targets import load_pipeline
from safesteer.targets.tiny import tiny_call_defaults

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _main(script: str) -> Any:
    """The ``main(argv)`` of an example script, loaded without running it."""
    return runpy.run_path(str(EXAMPLES / script), run_name="example")["main"]


def test_every_example_is_tested() -> None:
    tested = {"build_a_pack.py", "steer_a_pipeline.py", "evaluate_two_packs.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.slow
def test_examples_build_steer_and_evaluate(tmp_path: Path) -> None:
    build = _main("build_a_pack.py")
    first = build(["--anchors", "200", "--out", str(tmp_path / "procrustes.safetensors")])
    second = build(
        ["--anchors", "200", "--map", "ridge", "--out", str(tmp_path / "ridge.safetensors")]
    )
    pack = SafetyPack.load(first)
    assert pack.conditioning_space == "sd/clip" and pack.source_gate is not None
    assert pack.provenance["map_kind"] == "procrustes" and pack.provenance["n_anchors"] == 200
    assert SafetyPack.load(second).provenance["map_kind"] == "ridge"

    steer = _main("steer_a_pipeline.py")
    out = tmp_path / "steered"
    change = steer(["--pack", str(first), "--alpha", "3", "--out", str(out)])
    assert change["mean_abs_change"] > 0  # the steered states reach the denoiser
    # α = 0 inside the attached pipeline is exactly the pipeline without any pack
    pipe, _ = load_pipeline("tiny-sd")
    call = {"num_inference_steps": 2, "output_type": "np", **tiny_call_defaults("tiny-sd")}
    plain = pipe("a photo of a cat on a sofa", generator=torch.Generator().manual_seed(0), **call)
    assert np.array_equal(np.load(out / "unsteered.npy"), plain.images[0])

    evaluate = _main("evaluate_two_packs.py")
    summary = evaluate(
        ["--pack", str(first), "--pack", str(second), "--prompts", "2", "--out", str(tmp_path)]
    )
    rows = {(r["condition"], r["alpha"]): r for r in summary["rows"]}
    assert set(rows) == {
        ("none", 0.0),
        *((k, a) for k in ("procrustes", "ridge") for a in (0.0, 3.0)),
    }
    assert all(r["n_safety"] == 2 and r["n_utility"] == 2 for r in rows.values())
    assert (tmp_path / "run" / "protocol.json").is_file()
