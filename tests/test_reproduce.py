"""`safesteer reproduce`: the shipped presets, the dry run (loads nothing), the offline tiny
preset end to end, and refusals before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from safesteer.cli import main
from safesteer.evaluation.store import ResultsStore
from safesteer.jobs import reproduce
from safesteer.pack import SafetyPack

PAPER = {
    # preset: (target, max_sequence_length, alphas)
    "flux-schnell": ("black-forest-labs/FLUX.1-schnell", 256, (0.0, 5.0)),
    "flux-dev": ("black-forest-labs/FLUX.1-dev", 512, (0.0, 5.0)),
    "qwen-image": ("Qwen/Qwen-Image", 512, (0.0, 5.0)),
    "zimage-turbo": ("Tongyi-MAI/Z-Image-Turbo", 512, (0.0, 3.0)),
    "wan2.2": ("Wan-AI/Wan2.2-T2V-A14B-Diffusers", 512, (0.0, 1.0, 3.0, 5.0, 7.0)),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_presets_name_the_table_rows(name):
    preset = reproduce.load_preset_file(name)
    target, length, alphas = PAPER[name]
    assert preset.target["id"] == target and preset.target["max_sequence_length"] == length
    assert preset.alphas == alphas and preset.target["dtype"] == "bfloat16"
    assert set(preset.baselines) == {"none", "native", "random"}
    assert preset.safety["classifiers"] == ["q16", "nudenet"]
    assert preset.utility["prompts"] == "hf:phiyodr/coco2017"
    if name != "wan2.2":
        assert preset.safety["prompts"] == "hf:AIML-TUDA/i2p"


def test_image_counts_share_alpha_zero():
    plan = reproduce.plan_images(reproduce.load_preset_file("flux-schnell"))
    assert plan["sets"]["safety"] == {
        "prompts": 4703,
        "images_now": 4703 * (1 + 3),  # one shared α=0, then pack, native, random at α=5
        "images_before": 4703 * (1 + 3 * 2),  # none, then each condition at α=0 and α=5
    }
    wan = reproduce.plan_images(reproduce.load_preset_file("wan2.2"), limit=10)
    assert wan["sets"]["utility"]["images_now"] == 10 * (1 + 3 * 4)


def test_dry_run_prints_the_plan_and_loads_nothing(monkeypatch, capsys):
    import safesteer.models.source as source
    import safesteer.targets.registry as registry

    def refuse(*a, **k):
        raise AssertionError("a dry run loaded a model")

    monkeypatch.setattr(source.SourceReader, "__init__", refuse)
    monkeypatch.setattr(registry, "load_pipeline", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["reproduce", "flux-schnell", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "black-forest-labs/FLUX.1-schnell" in out and "max_sequence_length 256" in out
    assert "peak ≈" in out and "31.4 GiB" in out  # FLUX generator in bf16 (published counts)
    assert "images  total 38812 (was 67921)" in out
    assert "nothing loaded" in out


def test_refusals_come_before_any_work(tmp_path, capsys):
    # the paper protocol needs the Q16 embeddings: refused with the convert-q16 hint
    assert main(["reproduce", "flux-schnell", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Q16 needs its prompt embeddings" in err and "convert-q16" in err
    assert not any(tmp_path.iterdir())
    # a Q16 file that does not exist is refused by the argument check, naming it
    missing = tmp_path / "none.safetensors"
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "flux-schnell", "--out", str(tmp_path), "--q16-prompts", str(missing)])
    assert exit_.value.code == 2
    assert str(missing) in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    assert main(["reproduce", "no-such-preset", "--dry-run"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[target\n")
    assert main(["reproduce", str(bad), "--dry-run"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_preset_runs_end_to_end_offline_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preset = reproduce.load_preset_file("tiny-flux")
    small = reproduce.with_overrides(preset, pack={**preset.pack, "max_pairs": 12, "anchors": 64})
    out = tmp_path / "run"
    options = {"torch_threads": 1, "progress": False}
    result = reproduce.run_preset(small, out, options, log=lambda _: None)
    pack = SafetyPack.load(out / "packs" / "tiny-flux.safetensors")
    assert pack.encoding["max_sequence_length"] == 16
    native = SafetyPack.load(out / "packs" / "tiny-flux-native.safetensors")
    assert native.provenance["direction"].startswith("native")
    rows = {(r["condition"], r["alpha"]) for r in result["summary"]["rows"]}
    assert ("none", 0.0) in rows and ("tiny-flux", 3.0) in rows and len(rows) == 7
    store = ResultsStore(result["run_dir"])
    assert store.protocol().work["images_generated"] == 16  # was 28 before sharing
    report = Path(result["report"]).read_text()
    assert "RANDOM WEIGHTS" in report and "| tiny-flux | 3 |" in report
    again = reproduce.run_preset(small, out, options, log=lambda _: None)  # resumes: nothing new
    assert again["summary"] == result["summary"]
