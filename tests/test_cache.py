"""Tests for safesteer.models.cache: safetensors shards keyed by model, settings, layer, text."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from safesteer.models.cache import StateCache, text_key


def test_round_trip_is_exact_and_survives_a_new_instance(tmp_path: Path) -> None:
    vectors = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    texts = ["a cat", "a dog", "a fox"]
    StateCache(tmp_path, "m", {"p": 1}).put(5, texts, vectors)
    fresh = StateCache(tmp_path, "m", {"p": 1})
    got = fresh.get(5, ["a fox", "a cat", "unknown", "a dog"])
    assert got[2] is None
    assert torch.equal(got[0], vectors[2])
    assert torch.equal(got[1], vectors[0])
    assert torch.equal(got[3], vectors[1])


def test_keys_separate_model_settings_and_layer(tmp_path: Path) -> None:
    StateCache(tmp_path, "m", {"p": 1}).put(5, ["a cat"], torch.ones(1, 2))
    assert StateCache(tmp_path, "other", {"p": 1}).get(5, ["a cat"]) == [None]
    assert StateCache(tmp_path, "m", {"p": 2}).get(5, ["a cat"]) == [None]
    assert StateCache(tmp_path, "m", {"p": 1}).get(6, ["a cat"]) == [None]


def test_files_are_safetensors_with_readable_metadata_and_no_temp_left(tmp_path: Path) -> None:
    cache = StateCache(tmp_path, "model-x", {"p": 1})
    cache.put(2, ["a", "b"], torch.zeros(2, 3))
    files = list(tmp_path.rglob("*"))
    shards = [f for f in files if f.suffix == ".safetensors"]
    assert len(shards) == 1
    assert not [f for f in files if f.suffix == ".tmp"]
    with safe_open(str(shards[0]), framework="pt") as f:
        meta = f.metadata()
    assert meta["model_id"] == "model-x" and text_key("a") in meta["keys"]


def test_a_damaged_shard_is_skipped(tmp_path: Path) -> None:
    cache = StateCache(tmp_path, "m", {})
    cache.put(1, ["ok"], torch.ones(1, 2))
    (cache.folder / "L1" / "broken.safetensors").write_bytes(b"not a safetensors file")
    got = StateCache(tmp_path, "m", {}).get(1, ["ok"])
    assert got[0] is not None and got[0].tolist() == [1.0, 1.0]


def test_text_key_depends_on_every_character() -> None:
    assert text_key("a cat") != text_key("a cat ")
    assert len(text_key("x")) == 32
