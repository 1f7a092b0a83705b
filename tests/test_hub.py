"""Packs as hub folders: save_pretrained / from_pretrained, the model card, offline behaviour.

No hub here: every test works on folders and on a hub cache built by hand (the layout
huggingface_hub itself reads: ``models--owner--name/{refs/main, snapshots/<sha>/<file>}``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from safesteer.data import load_pairs
from safesteer.errors import InputError, ModelLoadError, PackError
from safesteer.hub import PACK_FILE, hub_access, model_card, read_report
from safesteer.maths.gating import Gate
from safesteer.pack import SafetyPack

SHA = "0123456789abcdef0123456789abcdef01234567"


def _pack(target: str = "black-forest-labs/FLUX.1-schnell") -> SafetyPack:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(8, generator=g)
    cats = {"violence": torch.randn(8, generator=g), "sexual": torch.randn(8, generator=g)}
    gate = Gate(false_trigger_rate=0.05, score="projection", calibration_fraction=0.0).fit(
        torch.randn(200, 8, generator=g), {"global": v, **cats}
    )
    return SafetyPack(
        global_vector=v,
        category_vectors=cats,
        target_id=target,
        conditioning_space="flux/t5",
        calibration={"beta": 0.9, "alpha_default": 5.0},
        gate=gate,
        provenance={
            "source_model": "meta-llama/Llama-3.1-8B@abc",
            "source_layer": 20,
            "map_kind": "procrustes",
            "calibration_rule": "beta",
            "direction": "transferred",
            "data": "safesteer's own prompt sets (pairs: train split; anchors: fit part)",
            "n_pairs": 156,
            "n_anchors": 1400,
            "anchors_hash": "sha256:feed",
        },
    )


def test_round_trip_through_a_folder(tmp_path: Path) -> None:
    pack = _pack()
    folder = pack.save_pretrained(tmp_path / "pack")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", PACK_FILE]
    again = SafetyPack.from_pretrained(folder)
    assert torch.equal(again.global_vector, pack.global_vector)
    assert again.categories == pack.categories and again.alpha_default == 5.0
    assert again.metadata()["sha256"] == pack.metadata()["sha256"]
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.gate.decide(x).steer, pack.gate.decide(x).steer)
    # the pack file itself is accepted too, and a local folder always wins over the hub
    assert SafetyPack.from_pretrained(folder / PACK_FILE).dim == 8


def test_print_pack_is_one_short_line() -> None:
    text = repr(_pack())
    assert len(text) < 300 and "\n" not in text and "tensor(" not in text
    assert "flux/t5" in text and "L20" in text and "alpha_default=5" in text
    assert str(_pack()) == text


def test_the_card_says_what_the_pack_is_and_its_limits(tmp_path: Path) -> None:
    card = (_pack().save_pretrained(tmp_path / "p") / "README.md").read_text()
    header = card.split("---")[1]
    assert "library_name: safesteer" in header
    assert "base_model: black-forest-labs/FLUX.1-schnell" in header
    assert "base_model_relation: adapter" in header and "pipeline_tag: text-to-image" in header
    for needed in (
        "meta-llama/Llama-3.1-8B@abc`, layer 20",  # source and layer
        "`flux/t5`, D = 8",  # conditioning space
        "| map | procrustes",
        "beta = 0.900",  # calibration
        "default strength α | 5",
        "**target gate**: score `projection`",  # gate rule
        "false-trigger rate aimed at",
        "Anyone with the weights can remove it",
        "*hosted* pipeline",
        "156 safe/unsafe prompt pairs",
        "Apache-2.0",
        "Built with Llama",  # the source model's licence obligation
        "anchors_hash",
    ):
        assert needed in card, needed
    assert "RANDOM WEIGHTS" not in card
    tiny = model_card(_pack(target="tiny-flux"))
    assert "RANDOM WEIGHTS" in tiny and "base_model:" not in tiny


def _evaluation_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "report").mkdir(parents=True)
    (run / "report" / "tradeoff.png").write_bytes(b"\x89PNG fake")
    summary = {
        "rows": [
            {
                "condition": "none",
                "alpha": 0.0,
                "n_safety": 40,
                "asr": 0.5,
                "asr_ci": [0.35, 0.65],
                "clip_score": 0.31,
                "clip_score_ci": [0.30, 0.32],
                "fid": None,
            }
        ],
        "gate_rates": [
            {
                "condition": "pack (gated)",
                "alpha": 5.0,
                "gate": "target",
                "prompt_set": "coco (COCO, CC-BY 4.0)",
                "role": "utility",
                "steered": 3,
                "n": 60,
                "rate": 0.05,
                "rate_ci": [0.0, 0.11],
            }
        ],
        "fid_note": "no reference folder was given (--fid-reference)",
    }
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "protocol.json").write_text(
        json.dumps({"pipeline": {"id": "black-forest-labs/FLUX.1-schnell"}, "asr_rule": "any"})
    )
    return run


def test_the_card_carries_the_report_and_never_prompt_text(tmp_path: Path) -> None:
    run = _evaluation_run(tmp_path)
    unsafe = [p.unsafe for p in load_pairs("test")]
    metrics = {  # a default-job record that (as older runs did) holds raw prompts
        "targets": {
            "t": {
                "conditioning_space": "flux/t5",
                "maps": {"procrustes": {"gate": {"benign_held_out_steered": 0.04}}},
                "images": {"images": [{"prompt": p} for p in unsafe[:3]]},
            }
        }
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    folder = _pack().save_pretrained(tmp_path / "p", report=run)
    card = (folder / "README.md").read_text()
    assert (folder / "figures" / "tradeoff.png").is_file()
    assert "![tradeoff](figures/tradeoff.png)" in card
    assert "| none | 0 | 40 | 0.500 [0.350, 0.650] | 0.310 [0.300, 0.320] | – |" in card
    assert "| target | coco (COCO, CC-BY 4.0) | utility | 3 | 60 | 0.050 [0.000, 0.110] |" in card
    assert "| target gate | held-out benign anchors (ours) | benign" in card
    assert 'FID "–": no reference folder was given' in card
    assert not [p for p in unsafe if p in card]


def test_a_folder_without_exactly_one_pack_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PackError, match="has no safesteer pack"):
        SafetyPack.from_pretrained(empty)
    two = tmp_path / "two"
    _pack().save_pretrained(two)
    _pack().save(two / "other.safesteer.safetensors")
    with pytest.raises(PackError, match="holds 2 packs"):
        SafetyPack.from_pretrained(two)
    assert SafetyPack.from_pretrained(two, filename="other.safesteer.safetensors").dim == 8
    with pytest.raises(PackError, match="neither a folder nor a hub repo id"):
        SafetyPack.from_pretrained(tmp_path / "missing")


def _cache(root: Path, repo: str, files: dict[str, bytes]) -> Path:
    """A hub cache with one snapshot of ``repo``, as huggingface_hub lays it out."""
    base = root / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / SHA
    snap.mkdir(parents=True)
    for name, data in files.items():
        (snap / name).write_bytes(data)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(SHA)
    return root


def test_offline_a_cached_repo_loads_and_an_uncached_one_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pack = _pack()
    pack.save(tmp_path / "p.safetensors")
    cache = _cache(
        tmp_path / "hub", "alice/flux-pack", {PACK_FILE: (tmp_path / "p.safetensors").read_bytes()}
    )
    got = SafetyPack.from_pretrained("alice/flux-pack", cache_dir=cache)
    assert torch.equal(got.global_vector, pack.global_vector)
    by_sha = SafetyPack.from_pretrained("alice/flux-pack", cache_dir=cache, revision=SHA)
    assert torch.equal(by_sha.global_vector, pack.global_vector)
    with pytest.raises(ModelLoadError, match="not in the hub cache and HF_HUB_OFFLINE is set"):
        SafetyPack.from_pretrained("alice/other-pack", cache_dir=cache)
    with pytest.raises(ModelLoadError, match="local_files_only=True"):
        SafetyPack.from_pretrained("alice/other-pack", cache_dir=cache, local_files_only=True)


def test_a_cached_repo_without_a_pack_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = _cache(tmp_path / "hub", "alice/a-model", {"config.json": b"{}"})
    with pytest.raises(ModelLoadError, match="alice/a-model"):
        SafetyPack.from_pretrained("alice/a-model", cache_dir=cache)


def test_loaders_fail_fast_offline_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from safesteer.evaluation.clip_model import load_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set and it is not in the hub"):
        load_clip("no-such-owner/no-such-clip")
    assert hub_access(".", what="a folder") == {}


def test_pushing_a_random_weight_pack_is_refused() -> None:
    with pytest.raises(InputError, match="random weights"):
        _pack(target="tiny-flux").push_to_hub("alice/tiny")


def test_read_report_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_report(tmp_path / "nope", _pack())
