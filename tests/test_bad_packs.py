"""Damaged and hostile pack files: each is refused with a PackError, or loads and behaves the same.

Three tables, easy to extend (add a row):

* ``BYTES``: the file's bytes damaged (truncated, flipped, not safetensors…);
* ``EDITS``: tensors or metadata edited in place, the hash left as it was (an edit by hand or
  a corruption): refused because the sha256 covers tensors *and* metadata;
* ``HOSTILE``: the same kind of edits with a freshly computed hash (a file made to deceive):
  refused by the schema and the tensor checks, naming the field;
* ``HARMLESS``: edits that change nothing that matters: the pack loads and behaves identically.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from safetensors.torch import save as st_save

from safesteer.errors import PackError
from safesteer.maths.gating import Gate
from safesteer.pack import SafetyPack, content_sha256, source_spec

D, DS = 16, 12
Tensors = dict[str, torch.Tensor]
Edit = Callable[[Tensors, dict[str, Any]], None]


class _Reader:
    model_id = "src-model@1"
    num_layers = 6
    hidden_size = DS
    settings: ClassVar[dict[str, str]] = {"pooling": "mean-real-tokens-v1"}


def _pack() -> SafetyPack:
    """A pack with both gates, as `safesteer build` writes one (calibrated target norm)."""
    g = torch.Generator().manual_seed(0)
    cats = {"violence": torch.randn(D, generator=g), "sexual": torch.randn(D, generator=g)}
    glob = torch.randn(D, generator=g)
    gate = Gate(0.05).fit(torch.randn(500, D, generator=g), {"global": glob, **cats})
    src = {n: torch.randn(DS, generator=g) for n in ("global", "violence", "sexual")}
    return SafetyPack(
        global_vector=glob,
        category_vectors=cats,
        target_id="tiny-sd",
        conditioning_space="sd/clip",
        calibration={"beta": 1.25, "target_norm": float(glob.norm())},
        gate=gate,
        provenance={"source_model": "src-model@1", "map_kind": "procrustes"},
        source_gate=Gate(0.05).fit(torch.randn(400, DS, generator=g), src),
        source_gate_spec=source_spec(_Reader(), 3),
    )


def _file(tensors: Tensors, meta: Any, extra: dict[str, str] | None = None) -> bytes:
    raw = meta if isinstance(meta, str) else json.dumps(meta)
    return st_save(tensors, metadata={"safesteer": raw, **(extra or {})})


def _set(path: str, value: Any) -> Edit:
    """An edit setting ``meta[a][b]…`` (path ``"a.b"``) to ``value``."""
    keys = path.split(".")

    def edit(tensors: Tensors, meta: dict[str, Any]) -> None:
        node = meta
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


def _tensor(name: str, make: Callable[[torch.Tensor], torch.Tensor]) -> Edit:
    def edit(tensors: Tensors, meta: dict[str, Any]) -> None:
        tensors[name] = make(tensors[name]).contiguous()

    return edit


def _drop_tensor(name: str) -> Edit:
    def edit(tensors: Tensors, meta: dict[str, Any]) -> None:
        del tensors[name]

    return edit


def _add_tensor(name: str) -> Edit:
    return lambda tensors, meta: tensors.update({name: torch.ones(D)})


def _scale(factor: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: t * factor


# ---- the file's bytes damaged ----------------------------------------------------------------
def _flip(at: Callable[[bytes], int]) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        b = bytearray(data)
        b[at(data)] ^= 0x01
        return bytes(b)

    return damage


def _header_len(data: bytes) -> int:
    return int(struct.unpack("<Q", data[:8])[0])


def _in_metadata(key: str) -> Callable[[bytes], int]:
    """The offset of the first digit after ``key`` in the header (a threshold, a scale…)."""

    def find(data: bytes) -> int:
        i = data.index(key.encode(), 8)
        while not chr(data[i]).isdigit():
            i += 1
        return i

    return find


BYTES: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("empty", lambda d: b"", "not a safetensors file"),
    ("4 bytes", lambda d: d[:4], "not a safetensors file"),
    ("header cut", lambda d: d[:40], "truncated"),
    ("half", lambda d: d[: len(d) // 2], "truncated"),
    ("last bytes cut", lambda d: d[:-3], "truncated"),
    ("garbage", lambda d: b"\x00\xff" * 300, "not a safetensors file"),
    ("header length huge", lambda d: struct.pack("<Q", 2**60) + d[8:], "truncated"),
    ("header a list", lambda d: struct.pack("<Q", 2) + b"[]", "not a safetensors file"),
    ("header not JSON", lambda d: d[:8] + b"{" * _header_len(d) + d[8 + _header_len(d) :], "not"),
    ("bit flip in a tensor", _flip(lambda d: len(d) - 2), "do not match the sha256"),
    ("bit flip in the first tensor", _flip(lambda d: 8 + _header_len(d)), "do not match"),
    ("digit flip in a threshold", _flip(_in_metadata('\\"thresholds\\"')), "do not match"),
    ("digit flip in a scale", _flip(_in_metadata('\\"scales\\"')), "do not match"),
    ("digit flip in calibration", _flip(_in_metadata('\\"beta\\"')), "do not match"),
]

# ---- edits, the hash left as it was -------------------------------------------------------------
_META_EDITS: list[tuple[str, Edit]] = [
    ("thresholds → Infinity", _set("gate.thresholds.global", float("inf"))),
    ("thresholds → 1e9", _set("gate.thresholds.global", 1e9)),
    ("thresholds → 0", _set("gate.thresholds.sexual", 0.0)),
    ("scales → -1", _set("gate.scales.global", -1.0)),
    ("scales → 0", _set("gate.scales.violence", 0.0)),
    ("source gate thresholds → Infinity", _set("source_gate.thresholds.global", float("inf"))),
    ("source gate scales → -1", _set("source_gate.scales.global", -1.0)),
    ("gate names reordered", _set("gate.names", ["violence", "global", "sexual"])),
    ("gate score changed", _set("gate.score", "projection")),
    ("calibration beta changed", _set("calibration.beta", 9.0)),
    ("categories reordered", _set("categories", ["sexual", "violence"])),
    ("target id changed", _set("target_id", "tiny-flux")),
    ("conditioning space changed", _set("conditioning_space", "flux/t5")),
    ("source gate model changed", _set("source_gate_spec.model_id", "other@2")),
    ("source gate layer changed", _set("source_gate_spec.layer", 5)),
    ("provenance changed", _set("provenance.map_kind", "ridge")),
    ("gate removed", _set("gate", None)),
]
_TENSOR_EDITS: list[tuple[str, Edit]] = [
    ("global ×1e30", _tensor("global", _scale(1e30))),
    ("global ×2", _tensor("global", _scale(2.0))),
    ("global negated", _tensor("global", _scale(-1.0))),
    ("category zeroed", _tensor("category/violence", torch.zeros_like)),
    ("gate direction negated", _tensor("gate/u/global", _scale(-1.0))),
    ("gate centre moved", _tensor("gate/centre", lambda t: t + 1)),
    ("source gate centre moved", _tensor("source_gate/centre", lambda t: t + 1)),
    ("category removed", _drop_tensor("category/sexual")),
    ("tensor added", _add_tensor("category/extra")),
]
EDITS = _META_EDITS + _TENSOR_EDITS


def _deep(n: int) -> str:
    return "[" * n + "]" * n


# ---- hostile: edits with a fresh hash --------------------------------------------------------
HOSTILE: list[tuple[str, Edit, str]] = [
    ("thresholds → Infinity", _set("gate.thresholds.global", float("inf")), "do not match"),
    ("thresholds → NaN", _set("gate.thresholds.global", float("nan")), "do not match"),
    (
        "thresholds → 1e9",
        _set("gate.thresholds.global", 1e9),
        "thresholds['global'] is 1000000000.0",
    ),
    ("thresholds → string", _set("gate.thresholds.global", "2.5"), "thresholds['global']"),
    ("thresholds missing a name", _set("gate.thresholds", {"global": 1.0}), "thresholds names"),
    ("scales → -1", _set("gate.scales.global", -1.0), "scales['global'] is -1.0"),
    ("scales → 0", _set("gate.scales.violence", 0.0), "scales['violence'] is 0.0"),
    ("scales → true", _set("gate.scales.violence", True), "scales['violence'] is True"),
    ("source gate scales → -1", _set("source_gate.scales.global", -1.0), "source_gate: scales"),
    ("source thresholds 1e9", _set("source_gate.thresholds.sexual", 1e9), "source_gate: thresh"),
    ("gate score unknown", _set("gate.score", "banana"), "score is 'banana'"),
    ("false trigger rate 2", _set("gate.false_trigger_rate", 2.0), "false_trigger_rate is 2.0"),
    ("quantile -1", _set("gate.quantile", -1.0), "quantile is -1.0"),
    ("n_calibration > n_benign", _set("gate.n_calibration", 10**6), "n_calibration is 1000000"),
    ("threshold rule unknown", _set("gate.threshold_rule", "median"), "threshold_rule is"),
    (
        "group rate 2",
        lambda t, m: m["gate"].update(group_rates={"parti": 2.0}, group_counts={"parti": 5}),
        "group_rates['parti'] is 2.0",
    ),
    (
        "group count beyond the rows",
        lambda t, m: m["gate"].update(group_rates={"parti": 0.1}, group_counts={"parti": 10**6}),
        "group_counts['parti'] is 1000000",
    ),
    ("group rates without counts", _set("gate.group_rates", {"parti": 0.1}), "group_counts names"),
    ("group rates a list", _set("gate.group_rates", [0.1]), "group_rates is [0.1]"),
    ("n_covariance 0", _set("gate.n_covariance", 0), "n_covariance is 0"),
    ("gate names a list of numbers", _set("gate.names", [1, 2]), "names is [1, 2]"),
    ("gate names not categories", _set("gate.names", ["global", "violence", "hate"]), "names"),
    ("gate a list", _set("gate", [1, 2]), "gate is [1, 2], expected an object"),
    ("gate missing its seed", lambda t, m: m["gate"].pop("seed") and None, "lacks 'seed'"),
    ("calibration a list", _set("calibration", [1.25]), "calibration is [1.25]"),
    ("calibration a string", _set("calibration", "beta=1"), "calibration is 'beta=1'"),
    ("calibration value a string", _set("calibration.beta", "1.25"), "calibration['beta']"),
    ("calibration missing", lambda t, m: m.pop("calibration") and None, "lacks 'calibration'"),
    ("categories a string", _set("categories", "violence"), "categories is 'violence'"),
    ("categories duplicated", _set("categories", ["violence", "violence"]), "categories is"),
    ("category named global", _set("categories", ["global", "sexual"]), "names other than"),
    ("dim a string", _set("dim", "16"), "dim is '16'"),
    ("dim wrong", _set("dim", D + 1), f"metadata says dim {D + 1}"),
    ("target id empty", _set("target_id", ""), "target_id is ''"),
    ("conditioning space a number", _set("conditioning_space", 7), "conditioning_space is 7"),
    ("provenance a list", _set("provenance", ["x"]), "provenance is ['x']"),
    ("source gate spec a list", _set("source_gate_spec", ["m"]), "source_gate_spec is ['m']"),
    ("source gate spec no model", _set("source_gate_spec.model_id", ""), "model_id is ''"),
    ("source gate spec dim wrong", _set("source_gate_spec.dim", 7), "its spec says 7"),
    ("source gate spec removed", _set("source_gate_spec", None), "go together"),
    ("format_version 1", _set("format_version", 1), "format 1 pack"),
    ("format_version 3", _set("format_version", 3), "format_version 3"),
    ("format_version missing", lambda t, m: m.pop("format_version") and None, "None"),
    ("global ×1e30", _tensor("global", _scale(1e30)), "beyond 1e+06"),
    ("global ×1e3 (calibrated norm)", _tensor("global", _scale(1e3)), "calibrated norm"),
    ("global zero", _tensor("global", torch.zeros_like), "vector 'global' is zero"),
    ("category zero", _tensor("category/violence", torch.zeros_like), "'violence' is zero"),
    ("global int", _tensor("global", lambda t: t.round().long()), "not floating point"),
    ("global bool", _tensor("global", lambda t: t > 0), "not floating point"),
    ("category NaN", _tensor("category/sexual", lambda t: t.clone().fill_(float("nan"))), "NaN"),
    ("global Inf", _tensor("global", lambda t: t.clone().fill_(float("inf"))), "NaN or Inf"),
    ("global 2-D", _tensor("global", lambda t: t[None, :]), "global vector has shape"),
    ("category short", _tensor("category/sexual", lambda t: t[:-1]), "'sexual' has shape"),
    ("gate centre short", _tensor("gate/centre", lambda t: t[:-1]), "gate"),
    ("gate direction not unit", _tensor("gate/u/global", _scale(3.0)), "not 1"),
    ("gate direction int", _tensor("gate/u/global", lambda t: t.long()), "not floating point"),
    ("category removed", _drop_tensor("category/sexual"), "lacks the tensors"),
    ("gate direction removed", _drop_tensor("gate/u/violence"), "lacks the tensors"),
    ("tensor added", _add_tensor("category/extra"), "does not name"),
    ("code-looking tensor name added", _add_tensor("__reduce__"), "does not name"),
]

# ---- harmless edits: load and behave identically ----------------------------------------------
HARMLESS: list[tuple[str, Callable[[Tensors, dict[str, Any]], bytes]]] = [
    ("metadata re-indented", lambda t, m: _file(t, json.dumps(m, indent=4))),
    ("metadata keys reordered", lambda t, m: _file(t, json.dumps(dict(reversed(m.items()))))),
    ("metadata non-ASCII escaped", lambda t, m: _file(t, json.dumps(m, ensure_ascii=True))),
    ("another metadata entry", lambda t, m: _file(t, m, {"format": "pt", "note": "mine"})),
]


@pytest.fixture(scope="module")
def good() -> tuple[SafetyPack, Tensors, dict[str, Any], bytes]:
    pack = _pack()
    tensors, meta = dict(pack._tensors()), pack.metadata()
    return pack, tensors, meta, _file(tensors, meta)


def _fresh(good: Any) -> tuple[Tensors, dict[str, Any]]:
    _, tensors, meta, _ = good
    return {k: v.clone() for k, v in tensors.items()}, json.loads(json.dumps(meta))


def _refused(path: Path, data: bytes, expect: str) -> None:
    path.write_bytes(data)
    with pytest.raises(PackError) as err:
        SafetyPack.load(path)
    assert expect in str(err.value), str(err.value)
    assert "(fix: " in str(err.value)


def test_the_untouched_pack_loads(good: Any, tmp_path: Path) -> None:
    pack, _, _, data = good
    (tmp_path / "p.safetensors").write_bytes(data)
    again = SafetyPack.load(tmp_path / "p.safetensors")
    assert torch.equal(again.global_vector, pack.global_vector)


@pytest.mark.parametrize(("name", "damage", "expect"), BYTES, ids=[r[0] for r in BYTES])
def test_damaged_bytes_are_refused(
    name: str, damage: Callable[[bytes], bytes], expect: str, good: Any, tmp_path: Path
) -> None:
    _refused(tmp_path / "p.safetensors", damage(good[3]), expect)


@pytest.mark.parametrize(("name", "edit"), EDITS, ids=[r[0] for r in EDITS])
def test_an_edit_without_a_new_hash_is_refused(
    name: str, edit: Edit, good: Any, tmp_path: Path
) -> None:
    tensors, meta = _fresh(good)
    edit(tensors, meta)
    _refused(tmp_path / "p.safetensors", _file(tensors, meta), "do not match the sha256")


@pytest.mark.parametrize(("name", "edit", "expect"), HOSTILE, ids=[r[0] for r in HOSTILE])
def test_a_hostile_pack_with_a_fresh_hash_is_refused(
    name: str, edit: Edit, expect: str, good: Any, tmp_path: Path
) -> None:
    tensors, meta = _fresh(good)
    edit(tensors, meta)
    try:
        meta["sha256"] = content_sha256(tensors, meta)
    except ValueError:  # NaN / Infinity have no canonical JSON: the hash cannot match
        meta["sha256"] = "sha256:" + "0" * 64
    _refused(tmp_path / "p.safetensors", _file(tensors, meta), expect)


@pytest.mark.parametrize(
    "raw",
    [
        "[]",
        '"a pack"',
        "42",
        _deep(100_000),
        '{"format_version": 2, "x": ' + _deep(100_000) + "}",
        "{not json",
    ],
    ids=["a list", "a string", "a number", "nested 100000 deep", "nested in a field", "not json"],
)
def test_malformed_metadata_is_a_pack_error(raw: str, good: Any, tmp_path: Path) -> None:
    tensors, _ = _fresh(good)
    _refused(tmp_path / "p.safetensors", _file(tensors, raw), "metadata")


def _behaviour(pack: SafetyPack) -> tuple[Any, ...]:
    g = torch.Generator().manual_seed(9)
    assert pack.gate is not None and pack.source_gate is not None
    probe = pack.gate.centre_ + 3 * torch.randn(64, D, generator=g)
    src = pack.source_gate.centre_ + 3 * torch.randn(64, DS, generator=g)
    target, source = pack.gate.decide(probe), pack.source_gate.decide(src)
    return (
        pack.metadata(),
        {k: v.tolist() for k, v in pack._tensors().items()},
        target.steer.tolist(),
        target.active,
        source.steer.tolist(),
        source.active,
        pack.vectors_for(target).tolist(),
    )


@pytest.mark.parametrize(("name", "make"), HARMLESS, ids=[r[0] for r in HARMLESS])
def test_a_harmless_edit_loads_and_behaves_identically(
    name: str, make: Callable[[Tensors, dict[str, Any]], bytes], good: Any, tmp_path: Path
) -> None:
    pack, *_ = good
    tensors, meta = _fresh(good)
    path = tmp_path / "renamed-copy.safetensors"
    path.write_bytes(make(tensors, meta))
    assert _behaviour(SafetyPack.load(path)) == _behaviour(pack)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_vectors_are_upcast_exactly_and_gate_calls_work(
    dtype: torch.dtype, good: Any, tmp_path: Path
) -> None:
    """Decision: float16 / bfloat16 tensors load, converted to float32 (exact); the hash is
    over the stored half-precision bytes. Gated calls then run in float32 (they crashed)."""
    tensors, meta = _fresh(good)
    half = {k: v.to(dtype) for k, v in tensors.items()}
    meta["calibration"]["target_norm"] = float(half["global"].float().norm())
    meta["sha256"] = content_sha256(half, meta)
    path = tmp_path / "half.safetensors"
    path.write_bytes(_file(half, meta))
    pack = SafetyPack.load(path)
    assert all(t.dtype == torch.float32 for t in pack._tensors().values())
    assert torch.equal(pack.global_vector, half["global"].float())
    assert pack.gate is not None
    decision = pack.gate.decide(pack.gate.centre_[None] - 50 * pack.global_vector[None])
    assert decision.steer.tolist() == [True]
    assert pack.vectors_for(decision).dtype == torch.float32


def test_a_zero_or_integer_vector_cannot_even_be_built() -> None:
    with pytest.raises(PackError, match="is zero"):
        SafetyPack(torch.zeros(D), {}, "t", "s", {})
    with pytest.raises(PackError, match="not floating point"):
        SafetyPack(torch.ones(D, dtype=torch.long), {}, "t", "s", {})
    with pytest.raises(PackError, match="beyond"):
        SafetyPack(torch.full((D,), 1e30), {}, "t", "s", {})


def test_same_pack_same_bytes(good: Any, tmp_path: Path) -> None:
    pack, *_ = good
    a = pack.save(tmp_path / "a.safetensors").read_bytes()
    b = SafetyPack.load(tmp_path / "a.safetensors").save(tmp_path / "b.safetensors").read_bytes()
    assert a == b


def test_a_format_2_pack_from_before_the_threshold_rules_loads_as_pooled(
    good: Any, tmp_path: Path
) -> None:
    """Packs written before ``threshold_rule`` / ``group_rates`` / ``group_counts`` /
    ``n_covariance`` existed load (their hash covers the metadata they had) and decide alike."""
    pack, *_ = good
    tensors, meta = _fresh(good)
    new_fields = ("threshold_rule", "group_rates", "group_counts", "n_covariance")
    for prefix in ("gate", "source_gate"):
        assert all(k in meta[prefix] for k in new_fields)
        for k in new_fields:
            del meta[prefix][k]
    meta["sha256"] = content_sha256(tensors, meta)
    path = tmp_path / "old.safetensors"
    path.write_bytes(_file(tensors, meta))
    old = SafetyPack.load(path)
    assert old.gate is not None and old.gate.threshold_rule == "pooled"
    assert old.gate.group_rates_ == {} and old.gate.n_covariance_ == 350
    assert _behaviour(old)[2:] == _behaviour(pack)[2:]  # same decisions and vectors
