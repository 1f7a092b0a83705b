"""SafetyPack: exact round trip, atomic save, and every refusal on load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save
from safetensors.torch import save_file

from safesteer.errors import PackError
from safesteer.maths.gating import Gate
from safesteer.pack import FORMAT_VERSION, SafetyPack, content_sha256, source_spec

D = 16


def _pack(with_gate: bool = True) -> SafetyPack:
    g = torch.Generator().manual_seed(0)
    cats = {"violence": torch.randn(D, generator=g), "sexual": torch.randn(D, generator=g)}
    glob = torch.randn(D, generator=g)
    gate = None
    if with_gate:
        gate = Gate(0.05).fit(torch.randn(500, D, generator=g), {"global": glob, **cats})
    return SafetyPack(
        global_vector=glob,
        category_vectors=cats,
        target_id="tiny/random-sd",
        conditioning_space="sd/clip-l",
        calibration={"beta": 1.25, "source_norm": 3.5},
        gate=gate,
        provenance={"source": {"model": "smollm2", "layer": 12}, "map": "procrustes"},
    )


def _write_raw(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    path.write_bytes(st_save(tensors, metadata={"safesteer": json.dumps(meta)}))
    return path


def _rehash(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """What a hostile author does after an edit: a consistent hash, so the schema must refuse."""
    meta["sha256"] = content_sha256(tensors, meta)


def _saved_parts(tmp_path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    pack = _pack(with_gate=False)
    return dict(pack._tensors()), pack.metadata()


def test_round_trip_is_exact(tmp_path: Path) -> None:
    pack = _pack()
    path = pack.save(tmp_path / "p.safetensors")
    again = SafetyPack.load(path)
    assert torch.equal(again.global_vector, pack.global_vector)
    assert again.categories == ["violence", "sexual"]
    for c in pack.categories:
        assert torch.equal(again.category_vectors[c], pack.category_vectors[c])
    assert again.calibration == pack.calibration and again.target_id == pack.target_id
    assert again.provenance["source"] == {"model": "smollm2", "layer": 12}
    assert "safesteer_version" in again.provenance
    assert again.gate is not None and pack.gate is not None
    probe = torch.randn(50, D, generator=torch.Generator().manual_seed(1)) * 2
    a, b = pack.gate.decide(probe), again.gate.decide(probe)
    assert torch.equal(a.steer, b.steer) and a.active == b.active
    # saving the loaded pack writes the same bytes
    path2 = again.save(tmp_path / "q.safetensors")
    assert path.read_bytes() == path2.read_bytes()


def test_vector_selection(tmp_path: Path) -> None:
    pack = _pack()
    assert torch.equal(pack.vector(), pack.global_vector)
    assert torch.equal(pack.vector([]), pack.global_vector)
    both = (pack.category_vectors["violence"] + pack.category_vectors["sexual"]) / 2
    assert torch.allclose(pack.vector(["violence", "sexual"]), both)
    assert pack.gate is not None
    decision = pack.gate.decide(
        torch.stack([pack.gate.centre_, pack.gate.centre_ - 50 * pack.vector()])
    )
    rows = pack.vectors_for(decision)
    assert rows.shape == (2, D) and rows[0].abs().sum() == 0  # benign centre: not steered
    assert rows[1].abs().sum() > 0


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _pack().save(tmp_path / "p.safetensors")
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    other = _pack(with_gate=False)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.safetensors"]  # no temp left
    bad = _pack(with_gate=False)
    bad.provenance["weird"] = object()
    with pytest.raises(PackError, match="JSON"):
        bad.save(path)
    assert path.read_bytes() == before


def test_check_fits_names_what_fits() -> None:
    pack = _pack(with_gate=False)
    pack.check_fits(dim=D, conditioning_space="sd/clip-l")
    pack.check_fits(dim=D)
    with pytest.raises(PackError, match=r"built for sd/clip-l \(dim 16\).*flux/t5 \(dim 4096\)"):
        pack.check_fits(dim=4096, conditioning_space="flux/t5")
    with pytest.raises(PackError, match="safesteer build --target"):
        pack.check_fits(dim=D, conditioning_space="flux/t5")


def test_refuses_missing_not_safetensors_and_truncated(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="no safety pack"):
        SafetyPack.load(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a pack at all")
    with pytest.raises(PackError, match="not a safetensors file"):
        SafetyPack.load(junk)
    good = _pack().save(tmp_path / "p.safetensors").read_bytes()
    for cut in (4, 40, len(good) // 2, len(good) - 3):
        (tmp_path / "cut.safetensors").write_bytes(good[:cut])
        with pytest.raises(PackError, match="truncated"):
            SafetyPack.load(tmp_path / "cut.safetensors")


def test_refuses_a_safetensors_file_without_pack_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"global": torch.ones(D)}, str(path))
    with pytest.raises(PackError, match="not a safesteer pack"):
        SafetyPack.load(path)


def test_refuses_unknown_format_version(tmp_path: Path) -> None:
    tensors, meta = _saved_parts(tmp_path)
    meta["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(PackError, match=f"format_version {FORMAT_VERSION + 1}"):
        SafetyPack.load(_write_raw(tmp_path / "v2.safetensors", tensors, meta))


def test_refuses_nan_and_inf(tmp_path: Path) -> None:
    for bad in (float("nan"), float("inf")):
        tensors, meta = _saved_parts(tmp_path)
        tensors["category/sexual"] = tensors["category/sexual"].clone()
        tensors["category/sexual"][3] = bad
        _rehash(tensors, meta)  # a consistent file, just non-finite
        with pytest.raises(PackError, match="NaN or Inf"):
            SafetyPack.load(_write_raw(tmp_path / "nan.safetensors", tensors, meta))
    with pytest.raises(PackError, match="NaN or Inf"):
        SafetyPack(torch.full((D,), float("nan")), {}, "t", "s", {})


def test_refuses_hash_mismatch(tmp_path: Path) -> None:
    path = _pack(with_gate=False).save(tmp_path / "p.safetensors")
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # flip a bit in the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(PackError, match="do not match the sha256"):
        SafetyPack.load(path)


def test_refuses_inconsistent_dimensions(tmp_path: Path) -> None:
    tensors, meta = _saved_parts(tmp_path)
    meta["dim"] = D + 1
    _rehash(tensors, meta)
    with pytest.raises(PackError, match=f"metadata says dim {D + 1}"):
        SafetyPack.load(_write_raw(tmp_path / "dim.safetensors", tensors, meta))
    tensors, meta = _saved_parts(tmp_path)
    tensors["category/sexual"] = torch.ones(D + 3)
    _rehash(tensors, meta)
    with pytest.raises(PackError, match="'sexual' has shape"):
        SafetyPack.load(_write_raw(tmp_path / "cat.safetensors", tensors, meta))
    tensors, meta = _saved_parts(tmp_path)
    del tensors["category/sexual"]
    _rehash(tensors, meta)
    with pytest.raises(PackError, match="lacks"):
        SafetyPack.load(_write_raw(tmp_path / "lack.safetensors", tensors, meta))


class _Reader:
    """The attributes of a SourceReader that identify its pooled states."""

    def __init__(self, model_id: str = "src-model@1", outlier_ratio: float | None = 4.0) -> None:
        self.model_id = model_id
        self.num_layers = 6
        self.hidden_size = 12
        self.settings = {"pooling": "mean-real-tokens-v1", "outlier_ratio": outlier_ratio}


def _source_gated(seed: int = 2) -> SafetyPack:
    g = torch.Generator().manual_seed(seed)
    pack = _pack()
    src = {"global": torch.randn(12, generator=g), "violence": torch.randn(12, generator=g)}
    pack.source_gate = Gate(0.05).fit(torch.randn(400, 12, generator=g), src)
    pack.source_gate_spec = source_spec(_Reader(), 3)
    return pack


def test_source_gate_round_trip_is_exact(tmp_path: Path) -> None:
    pack = _source_gated()
    path = pack.save(tmp_path / "s.safetensors")
    again = SafetyPack.load(path)
    assert again.source_gate is not None and pack.source_gate is not None
    assert again.source_gate_spec == pack.source_gate_spec
    assert again.source_gate_spec["layer"] == 3 and again.source_gate_spec["dim"] == 12
    before, after = pack.source_gate.state(), again.source_gate.state()
    assert before[1] == after[1] and before[0].keys() == after[0].keys()
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    probe = torch.randn(40, 12, generator=torch.Generator().manual_seed(5)) * 3
    a, b = pack.source_gate.decide(probe), again.source_gate.decide(probe)
    assert torch.equal(a.steer, b.steer) and a.active == b.active
    assert again.gate is not None  # the target gate is still there, next to it
    assert again.save(tmp_path / "t.safetensors").read_bytes() == path.read_bytes()
    tensors, meta = dict(again._tensors()), again.metadata()
    assert any(k.startswith("source_gate/") for k in tensors)
    assert meta["source_gate"]["names"] == ["global", "violence"]


def test_pack_without_source_gate_loads(tmp_path: Path) -> None:
    # a pack without a source gate (native packs): the keys may be null or absent
    tensors, meta = _saved_parts(tmp_path)
    for key in ("source_gate", "source_gate_spec"):
        assert meta.pop(key) is None
    _rehash(tensors, meta)
    old = SafetyPack.load(_write_raw(tmp_path / "old.safetensors", tensors, meta))
    assert old.source_gate is None and old.source_gate_spec == {}
    with pytest.raises(PackError, match="no source gate") as err:
        old.check_source_reader(_Reader())
    assert "gate='target'" in str(err.value.hint)


def test_source_gate_needs_its_spec_and_consistent_dims(tmp_path: Path) -> None:
    pack = _source_gated()
    with pytest.raises(PackError, match="go together"):
        SafetyPack(
            pack.global_vector, pack.category_vectors, "t", "s", {}, source_gate=pack.source_gate
        )
    with pytest.raises(PackError, match="lacks"):
        SafetyPack(
            pack.global_vector,
            pack.category_vectors,
            "t",
            "s",
            {},
            source_gate=pack.source_gate,
            source_gate_spec={"model_id": "m"},
        )
    with pytest.raises(PackError, match="dim 12 but its spec says 7"):
        SafetyPack(
            pack.global_vector,
            pack.category_vectors,
            "t",
            "s",
            {},
            source_gate=pack.source_gate,
            source_gate_spec={**pack.source_gate_spec, "dim": 7},
        )
    tensors, meta = dict(pack._tensors()), pack.metadata()
    tensors["source_gate/centre"] = torch.ones(13)
    _rehash(tensors, meta)
    with pytest.raises(PackError, match="inconsistent dimensions"):
        SafetyPack.load(_write_raw(tmp_path / "bad.safetensors", tensors, meta))


def test_check_source_reader_names_the_mismatch() -> None:
    pack = _source_gated()
    assert pack.check_source_reader(_Reader()) == 3
    with pytest.raises(PackError, match="model_id 'other@2'") as err:
        pack.check_source_reader(_Reader(model_id="other@2"))
    assert "src-model@1" in str(err.value.hint)
    with pytest.raises(PackError, match="pooling"):
        pack.check_source_reader(_Reader(outlier_ratio=None))
    short = _Reader()
    short.num_layers = 2
    with pytest.raises(PackError, match="num_layers 2"):
        pack.check_source_reader(short)
    bound = _Reader()
    bound.layer = 5  # type: ignore[attr-defined]
    with pytest.raises(PackError, match="layer 5"):
        pack.check_source_reader(bound)
