"""``safesteer generate`` end to end on tiny random-weight pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from safesteer.cli import main
from safesteer.pack import SafetyPack
from safesteer.targets import load_pipeline
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture


def _pack(pipeline: str, path: Path, scale: float = 5.0) -> Path:
    _, adapter = load_pipeline(pipeline)
    g = torch.Generator().manual_seed(0)
    pack = SafetyPack(
        global_vector=scale * torch.randn(adapter.dim, generator=g),
        category_vectors={"violence": torch.randn(adapter.dim, generator=g)},
        target_id=adapter.target_id,
        conditioning_space=adapter.conditioning_space,
        calibration={"beta": 1.0},
    )
    return pack.save(path)


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def test_generate_writes_images_and_a_full_record(tmp_path: Path, capsys) -> None:
    pack = _pack("tiny-sd", tmp_path / "pack.safetensors")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a cat\na red bicycle\n", encoding="utf-8")
    base_args = ["generate", "--pipeline", "tiny-sd", "--prompts", str(prompts), "--seed", "7"]
    assert main([*base_args, "--out", str(tmp_path / "base")]) == 0
    assert (
        main([*base_args, "--pack", str(pack), "--alpha", "3", "--out", str(tmp_path / "s")]) == 0
    )
    printed = capsys.readouterr().out
    assert "RANDOM weights" in printed and "steered prompts: 2/2" in printed
    record = json.loads((tmp_path / "s" / "generate.json").read_text())
    assert record["pipeline"] == "tiny-sd" and record["random_weights"] is True
    assert record["pack"]["sha256"].startswith("sha256:") and record["steering"]["alpha"] == 3.0
    assert [it["seed"] for it in record["items"]] == [7, 8]
    assert all(it["steering"]["steered"] for it in record["items"])
    assert {"torch", "diffusers"} <= set(record["environment"])
    assert record["call"]["num_inference_steps"] == 2
    for name in ("00000.png", "00001.png"):
        base, steered = _pixels(tmp_path / "base" / name), _pixels(tmp_path / "s" / name)
        assert base.shape == (32, 32, 3) and np.abs(base - steered).max() > 0
    # the same seed without a pack reproduces the baseline exactly
    assert main([*base_args, "--out", str(tmp_path / "again")]) == 0
    assert np.array_equal(
        _pixels(tmp_path / "again" / "00000.png"), _pixels(tmp_path / "base" / "00000.png")
    )


def test_generate_video_frames(tmp_path: Path) -> None:
    pack = _pack("tiny-wan", tmp_path / "pack.safetensors")
    out = tmp_path / "video"
    args = ["generate", "--pipeline", "tiny-wan", "--prompt", "a dancer", "--pack", str(pack)]
    assert main([*args, "--alpha", "1", "--categories", "violence", "--out", str(out)]) == 0
    record = json.loads((out / "generate.json").read_text())
    assert record["video"] and len(record["items"][0]["files"]) == 5
    assert record["items"][0]["steering"]["categories"] == ["violence"]
    assert (out / "00000_f004.png").exists()


def test_generate_refuses_a_pack_for_another_pipeline(tmp_path: Path, capsys) -> None:
    pack = _pack("tiny-flux", tmp_path / "flux.safetensors")
    code = main(
        [
            "generate",
            "--pipeline",
            "tiny-sd",
            "--prompt",
            "x",
            "--pack",
            str(pack),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "flux/t5" in capsys.readouterr().err


def test_generate_needs_prompts(tmp_path: Path, capsys) -> None:
    assert main(["generate", "--pipeline", "tiny-sd", "--out", str(tmp_path)]) == 2
    assert "no prompts" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["64x32"])
def test_generate_size_option(tmp_path: Path, size: str) -> None:
    assert (
        main(
            [
                "generate",
                "--pipeline",
                "tiny-sd",
                "--prompt",
                "x",
                "--size",
                size,
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert _pixels(tmp_path / "00000.png").shape == (32, 64, 3)


def test_generate_with_the_source_gate(tmp_path: Path, capsys) -> None:
    from safesteer.data import benign_anchors
    from safesteer.maths.gating import Gate
    from safesteer.models import SourceReader
    from safesteer.pack import source_spec

    reader = SourceReader.from_preset("minilm-l6", cache=tmp_path / "cache")
    layer = reader.num_layers
    g = torch.Generator().manual_seed(0)
    vectors = {"global": torch.randn(reader.hidden_size, generator=g)}
    no_gate = SafetyPack.load(_pack("tiny-sd", tmp_path / "plain.safetensors"))
    with_gate = SafetyPack(
        no_gate.global_vector,
        no_gate.category_vectors,
        no_gate.target_id,
        no_gate.conditioning_space,
        no_gate.calibration,
        source_gate=Gate(0.3, calibration_fraction=0.0).fit(
            reader.pooled(benign_anchors(60), layer), vectors
        ),
        source_gate_spec=source_spec(reader, layer),
    )
    pack = with_gate.save(tmp_path / "gated.safetensors")
    prompts = ["a photo of a cat", "a red bicycle", "a bowl of soup", "a quiet harbour"]
    expected = with_gate.source_gate.decide(reader.pooled(prompts, layer)).steer.tolist()
    assert True in expected and False in expected  # the gate decides, it does not pass all
    args = [
        "generate",
        "--pipeline",
        "tiny-sd",
        "--pack",
        str(pack),
        "--gated",
        "--gate",
        "source",
        "--out",
        str(tmp_path / "o"),
    ]
    args += [a for p in prompts for a in ("--prompt", p)]
    assert main(args) == 0
    record = json.loads((tmp_path / "o" / "generate.json").read_text())
    assert record["steering"]["gate"] == "source" and record["pack"]["has_source_gate"]
    assert record["steering"]["source_reader"] == reader.model_id
    assert [it["steering"]["steered"] for it in record["items"]] == expected
    assert all(it["steering"]["gate"] == "source" for it in record["items"])
    # a pack without a source gate is refused, naming the fix, before any model loads
    args[args.index(str(pack))] = str(tmp_path / "plain.safetensors")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no source gate" in err and "gate='target'" in err


@pytest.mark.parametrize(
    ("pipeline", "extra", "says"),
    [
        ("tiny-sd", ["--size", "12"], "height 12 and width 12 are not multiples of 8"),
        # FLUX would silently make 32x32 and record 33
        ("tiny-flux", ["--size", "33x32"], "width 33 is not a multiple of 2"),
        ("tiny-sd", ["--frames", "5"], "--frames: tiny-sd makes images"),
        # Wan would silently make 5 frames and record 6
        ("tiny-wan", ["--frames", "6"], "(frames - 1) a multiple of 4"),
    ],
)
def test_what_the_loaded_pipeline_cannot_make_is_refused_before_generating(
    tmp_path: Path, capsys, pipeline: str, extra: list[str], says: str
) -> None:
    out = tmp_path / "out"
    code = main(["generate", "--pipeline", pipeline, "--prompt", "x", *extra, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "(fix: " in err and "Traceback" not in err
    assert not out.exists()  # refused before anything was written


def test_generate_rule_to_projection(tmp_path: Path) -> None:
    """--rule to-projection: prompts below τ move (the shift is recorded), none above τ."""
    prompts = ["generate", "--pipeline", "tiny-sd", "--prompt", "a cat", "--prompt", "a boat"]
    base = tmp_path / "base"
    assert main([*prompts, "--out", str(base)]) == 0
    for name, tau in (("high", 1e4), ("low", -1e4)):
        pack = SafetyPack.load(_pack("tiny-sd", tmp_path / f"{name}.safetensors"))
        pack.calibration["to_projection_tau"] = tau
        pack.calibration["to_projection_q"] = 0.95
        path = pack.save(tmp_path / f"{name}-tau.safetensors")
        out = tmp_path / name
        args = [*prompts, "--pack", str(path), "--rule", "to-projection", "--out", str(out)]
        assert main([*args, "--alpha", "1"]) == 0
        record = json.loads((out / "generate.json").read_text())
        assert record["steering"]["rule"] == "to-projection"
        rows = [it["steering"] for it in record["items"]]
        assert all(r["rule"] == "to-projection" for r in rows)
        changed = np.abs(_pixels(out / "00000.png") - _pixels(base / "00000.png")).max()
        if tau > 0:  # every prompt is far below τ: moved by τ − ⟨h̄, v̂⟩ > 0
            assert all(r["steered"] and r["shift"] > 1e3 for r in rows) and changed > 0
        else:  # every prompt is above τ: untouched, the image is the baseline's
            assert not any(r["steered"] for r in rows) and all(r["shift"] == 0 for r in rows)
            assert changed == 0
