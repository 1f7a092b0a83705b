"""Same inputs, same pack: byte for byte on one state cache, tensor for tensor across caches.

A pack holds no volatile field (no timing, no host name): the bytes are a function of the
inputs and the software versions. The real packaged models are used (SmolLM2-135M source,
MiniLM-L6 target), on a small set of our pairs and anchors.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from safesteer.build import build_pack
from safesteer.data import benign_anchors, load_pairs
from safesteer.errors import SafeSteerWarning
from safesteer.jobs.planted import run_planted
from safesteer.pack import SafetyPack

LAYER = 3
PAIRS = load_pairs("train")[:24]
ANCHORS = benign_anchors(100)


def _build(cache: Path) -> SafetyPack:
    from safesteer.models import SourceReader
    from safesteer.targets import EncoderTarget

    reader = SourceReader.from_preset("smollm2-135m", cache=cache)
    target = EncoderTarget.from_preset("minilm-l6")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SafeSteerWarning)  # 100 anchors: on purpose, fast
        return build_pack(reader, LAYER, target, "procrustes", pairs=PAIRS, anchors=ANCHORS)


def _tensors(pack: SafetyPack) -> dict[str, torch.Tensor]:
    return pack._tensors()


@pytest.mark.slow
def test_build_twice_on_one_state_cache_gives_the_same_bytes(tmp_path: Path) -> None:
    first = _build(tmp_path / "cache").save(tmp_path / "a.safetensors")  # computes, caches
    second = _build(tmp_path / "cache").save(tmp_path / "b.safetensors")  # reads the cache
    assert first.read_bytes() == second.read_bytes()
    meta = SafetyPack.load(first).provenance
    assert "environment" not in meta and "platform" not in meta["software"]


@pytest.mark.slow
def test_build_on_a_fresh_and_a_warm_cache_gives_identical_tensors(tmp_path: Path) -> None:
    from safesteer.models import SourceReader

    fresh = _build(tmp_path / "fresh")
    warm = tmp_path / "warm"
    # another history: some of the same texts read earlier, in other batches, in another order
    reader = SourceReader.from_preset("smollm2-135m", cache=warm)
    reader.pooled([*ANCHORS[::-3], *(p.unsafe for p in PAIRS[::2])], LAYER)
    again = _build(warm)
    a, b = _tensors(fresh), _tensors(again)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"


def test_planted_pack_bytes_do_not_depend_on_timing(tmp_path: Path) -> None:
    """The planted run times its map fits; the timings go to its summary, not its pack."""
    kw = {"ds": 8, "dt": 12, "n_anchors": 300, "quiet": True}
    run_planted(tmp_path / "a", **kw)
    run_planted(tmp_path / "b", **kw)
    pack_a = (tmp_path / "a" / "planted.safetensors").read_bytes()
    assert pack_a == (tmp_path / "b" / "planted.safetensors").read_bytes()
    assert b"fit_seconds" not in pack_a and b"platform" not in pack_a
