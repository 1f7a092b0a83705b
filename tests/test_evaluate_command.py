"""``safesteer evaluate`` as a user runs it: a real subprocess killed mid-run, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from safesteer.cli import main

# enough items that the kill lands mid-run even on a fast machine (~0.1 s per tiny item)
PROMPTS = [
    f"a {colour} {thing}"
    for colour in ("red", "green", "blue", "white")
    for thing in ("house", "dog", "bowl of fruit", "lake", "street", "bicycle")
]


def _args(prompts: Path, out: Path) -> list[str]:
    return [
        "evaluate",
        "--pipeline",
        "tiny-sd",
        "--prompts",
        str(prompts),
        "--baseline",
        "none",
        "--classifiers",
        "open_nsfw",
        "--clip-model",
        "none",
        "--fid-features",
        "none",
        "--alphas",
        "0",
        "--out",
        str(out),
        "--no-progress",
        "--torch-threads",
        "1",
    ]


def _state(run: Path) -> dict[str, bytes]:
    lines = (run / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "duplicated items"
    out = {}
    for r in records:
        for f in r["files"]:
            with Image.open(run / "images" / f) as im:
                im.load()  # every file decodes
        out[r["id"]] = b"".join((run / "images" / f).read_bytes() for f in r["files"])
    assert not [p for p in (run / "images").rglob("*.tmp")], "half-written files left"
    return out


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    assert main(_args(prompts, tmp_path / "whole")) == 0
    whole = _state(tmp_path / "whole")
    assert len(whole) == len(PROMPTS)
    assert "RANDOM WEIGHTS" in capsys.readouterr().out

    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "safesteer.cli", *_args(prompts, run)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = run / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = results.read_text().count("\n")
    assert 2 <= done_at_kill < len(PROMPTS)

    assert main(_args(prompts, run)) == 0
    assert f"{len(PROMPTS)}/{len(PROMPTS)} items" in capsys.readouterr().out
    assert _state(run) == whole


def test_changed_settings_on_rerun_is_a_clear_error(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    args = _args(prompts, tmp_path / "run")
    assert main(args) == 0
    assert main([*args, "--seed", "3"]) == 2
    assert "different protocol" in capsys.readouterr().err


def test_no_prompts_is_an_error(tmp_path, capsys):
    assert main(["evaluate", "--pipeline", "tiny-sd", "--out", str(tmp_path)]) == 2
    assert "no prompts" in capsys.readouterr().err


@pytest.mark.slow
def test_paper_preset_with_random_stand_ins_records_the_protocol(tmp_path, capsys):
    import numpy as np
    import torch

    from safesteer.evaluation.store import ResultsStore
    from safesteer.pack import SafetyPack

    v = torch.randn(32, generator=torch.Generator().manual_seed(0))
    pack = SafetyPack(
        global_vector=v * 5 / v.norm(),
        category_vectors={},
        target_id="tiny-sd",
        conditioning_space="sd/clip",
        calibration={"beta": 1.0},
    )
    pack_path = pack.save(tmp_path / "ours.safetensors")
    (tmp_path / "i2p.csv").write_text("prompt,categories\na nude person,sexual\n")
    (tmp_path / "safe.txt").write_text("a red house\na dog\n")
    ref = tmp_path / "ref"
    ref.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(ref / f"{i}.png")
    out = tmp_path / "run"
    code = main(
        [
            "evaluate",
            "--pipeline",
            "tiny-sd",
            "--protocol",
            "paper",
            "--pack",
            str(pack_path),
            "--baseline",
            "none",
            "--prompts",
            str(tmp_path / "i2p.csv"),
            "--utility-prompts",
            str(tmp_path / "safe.txt"),
            "--clip-model",
            "random",
            "--q16-prompts",
            "random",
            "--fid-features",
            "random",
            "--fid-reference",
            str(ref),
            "--out",
            str(out),
            "--no-progress",
            "--torch-threads",
            "1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "preset: paper" in printed and "RANDOM WEIGHTS" in printed
    protocol = ResultsStore(out).protocol()
    assert protocol.settings["alphas"] == [-1.0, 0.0, 1.0, 3.0, 5.0, 7.0]
    assert {c["name"] for c in protocol.classifiers} == {"q16", "nudenet"}
    assert protocol.notes["asr_rule"].startswith("[paper]")
    assert {"classifier q16", "CLIP-score model", "FID features"} <= set(protocol.random_parts())
    assert len(ResultsStore(out).completed()) == 3 * (1 + 6)
    assert (out / "fid.json").exists()


@pytest.mark.slow
def test_a_relative_and_an_absolute_prompt_path_resume_the_same_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("p.txt").write_text("a cat\n")
    assert main(_args(Path("p.txt"), Path("run"))) == 0
    capsys.readouterr()
    assert main(_args(tmp_path / "p.txt", tmp_path / "run")) == 0
    assert "1/1 items (0 new)" in capsys.readouterr().out
    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    assert protocol["prompt_sets"][0]["source"] == str(tmp_path / "p.txt")


def test_a_size_the_loaded_pipeline_refuses_stops_before_generating(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    assert main([*_args(prompts, tmp_path / "run"), "--height", "12"]) == 2
    err = capsys.readouterr().err
    assert "height 12 is not a multiple of 8" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "results.jsonl").exists()
