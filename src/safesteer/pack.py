"""``SafetyPack``: the portable artifact that carries calibrated target-space vectors.

One ``.safetensors`` file. Tensors (float32): ``"global"``, ``"category/<name>"``,
``"gate/<key>"`` and ``"source_gate/<key>"``. Metadata: ``{"safesteer": <JSON>}`` with
``format_version`` (2), ``target_id``, ``conditioning_space``, ``dim``, ``categories``,
``calibration``, ``gate`` (its metadata, or null), ``source_gate`` and ``source_gate_spec`` (the
source-side gate [ours] and what identifies the source states it reads — :func:`source_spec`),
``encoding`` (how the target states were encoded: ``max_sequence_length``, template, text
encoders — checked at attach; null/absent in older packs),
``provenance`` (whatever the builder passes — source model and layer, map kind and fit
metrics, anchor/pair hashes, software versions — plus ``safesteer_version`` added on save) and
``sha256``. No pickle: only safetensors and JSON.

Integrity: ``sha256`` (:func:`content_sha256`) covers **every byte that changes behaviour**:
each tensor's name, dtype, shape and bytes, and the whole ``safesteer`` metadata (gate
thresholds, scales and names, calibration, categories, source gate spec, provenance) in
canonical JSON. A pack holds no volatile field (no timings, no host name or kernel version), so
the same inputs and software give the same bytes. On load, :meth:`SafetyPack.load` checks the
hash, then the schema (:class:`PackError` names the field): vectors floating point (float16 /
bfloat16 / float64 are converted to float32), finite, non-zero and of sane length (at most
:data:`MAX_VECTOR_NORM`, and the recorded ``calibration["target_norm"]`` when there is one);
gate scales finite and positive, thresholds finite (at most :data:`MAX_GATE_THRESHOLD` benign
standard deviations), score directions of unit length, gate names the pack's categories.

Format 1 packs (safesteer before this check) are refused with a :class:`PackError` that says how
to rebuild them: their hash covered the tensors only, so their gate thresholds and scales could
have been edited unseen. ``safesteer build`` with the same inputs makes the same pack again.

Example:
    >>> import torch, tempfile, pathlib
    >>> pack = SafetyPack(torch.ones(4), {"violence": torch.ones(4)}, "tiny/sd", "sd/clip-l",
    ...                   calibration={"beta": 1.0, "alpha_default": 5.0})
    >>> path = pack.save(pathlib.Path(tempfile.mkdtemp()) / "tiny.safesteer.safetensors")
    >>> SafetyPack.load(path).dim
    4
    >>> SafetyPack.load(path).check_fits(dim=8)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safesteer.errors.PackError: ...
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from safesteer._version import __version__
from safesteer.atomic import write_bytes_atomic
from safesteer.errors import PackError
from safesteer.maths.gating import GATE_SCORES, GLOBAL, THRESHOLD_RULES, Gate, GateDecision
from safesteer.maths.steering import combine_directions

__all__ = [
    "DEFAULT_ALPHA",
    "FORMAT_VERSION",
    "MAX_GATE_THRESHOLD",
    "MAX_VECTOR_NORM",
    "SafetyPack",
    "content_sha256",
    "source_spec",
    "tensor_sha256",
]

FORMAT_VERSION = 2
#: the strength :func:`safesteer.attach` uses when a pack carries no ``alpha_default`` (the
#: paper's α for FLUX and Qwen-Image); packs built by safesteer record it in ``calibration``
DEFAULT_ALPHA = 5.0
_META_KEY = "safesteer"
_HASH_KEY = "sha256"
_BUILD_HINT = "rebuild it with `safesteer build --target ...`"
#: longest steering vector accepted (states of real encoders have norms far below this)
MAX_VECTOR_NORM = 1e6
#: largest |gate threshold| accepted, in benign standard deviations (real ones are a few units)
MAX_GATE_THRESHOLD = 1e3
#: vectors shorter than this steer nothing; such a pack is refused (it would be "steered")
MIN_VECTOR_NORM = 1e-12
_FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


# ---- integrity ------------------------------------------------------------------------------
def _canonical(meta: Mapping[str, Any]) -> bytes:
    return json.dumps(
        meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def tensor_sha256(tensors: Mapping[str, Tensor]) -> str:
    """``"sha256:<hex>"`` over each tensor's name, dtype, shape and raw bytes, in name order."""
    h = hashlib.sha256()
    _hash_tensors(h, tensors)
    return f"sha256:{h.hexdigest()}"


def _hash_tensors(h: Any, tensors: Mapping[str, Tensor]) -> None:
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def content_sha256(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` over the tensors (as :func:`tensor_sha256`) **and** the metadata.

    The metadata enters as canonical JSON (sorted keys, no spaces) without its own ``sha256``
    entry, so re-serialising the same metadata keeps the hash and any edited value breaks it.
    """
    h = hashlib.sha256(b"safesteer pack v2\0")
    _hash_tensors(h, tensors)
    h.update(b"\0metadata\0")
    h.update(_canonical({k: v for k, v in meta.items() if k != _HASH_KEY}))
    return f"sha256:{h.hexdigest()}"


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples → lists, paths → strings), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def source_spec(reader: Any, layer: int) -> dict[str, Any]:
    """What identifies a source reader's pooled states ``h_s(x)`` at ``layer``.

    ``{"model_id", "layer", "pooling", "dim"}``: the reader's ``model_id`` (it names the exact
    weights), the absolute layer, its pooling ``settings`` (e.g.
    :attr:`safesteer.models.SourceReader.settings`: pooling rule, excluded tokens, outlier ratio,
    chat template, max length; ``{}`` for a reader without them) and its ``hidden_size``. Two
    readers with equal specs give the same pooled states, so a gate fitted on one's states can
    decide on the other's.
    """
    hidden = getattr(reader, "hidden_size", None)
    return _plain(
        {
            "model_id": str(reader.model_id),
            "layer": int(layer),
            "pooling": dict(getattr(reader, "settings", None) or {}),
            "dim": None if hidden is None else int(hidden),
        }
    )


def _read_header(path: Path, data: bytes) -> dict[str, Any]:
    """Parse the safetensors header (8-byte little-endian length + JSON)."""
    bad = PackError(
        f"{path} is not a safetensors file, or it is truncated",
        hint=f"re-download or {_BUILD_HINT}",
    )
    if len(data) < 8:
        raise bad
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise bad
    try:
        header = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad from exc
    if not isinstance(header, dict):
        raise bad
    return header


# ---- metadata schema ------------------------------------------------------------------------
def _field_error(where: str, name: str, value: Any, want: str) -> PackError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return PackError(f"{where}: {name} is {shown}, expected {want}", hint=_BUILD_HINT)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _unit(x: Any) -> bool:
    return _is_number(x) and 0 <= x <= 1


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _need(
    where: str, meta: Mapping[str, Any], key: str, ok: Callable[[Any], bool], want: str
) -> Any:
    if key not in meta:
        raise PackError(f"{where}: the metadata lacks {key!r}", hint=_BUILD_HINT)
    if not ok(meta[key]):
        raise _field_error(where, key, meta[key], want)
    return meta[key]


def _names(x: Any) -> bool:
    return (
        isinstance(x, list) and all(isinstance(n, str) and n for n in x) and len(set(x)) == len(x)
    )


def _check_gate_meta(where: str, meta: Any, prefix: str) -> None:
    """The JSON half of a stored gate: types, ranges and one scale/threshold per name."""
    if not isinstance(meta, dict):
        raise _field_error(where, prefix, meta, "an object (or null)")
    w = f"{where}: {prefix}"
    _need(w, meta, "score", lambda x: x in GATE_SCORES, f"one of {tuple(GATE_SCORES)}")
    _need(w, meta, "false_trigger_rate", lambda x: _is_number(x) and 0 < x < 1, "a rate in (0, 1)")
    _need(
        w,
        meta,
        "shrinkage",
        lambda x: x is None or (_is_number(x) and 0 <= x <= 1),
        "null or [0, 1]",
    )
    _need(w, meta, "shrinkage_used", lambda x: _is_number(x) and 0 <= x <= 1, "a number in [0, 1]")
    names = _need(w, meta, "names", lambda x: _names(x) and bool(x), "a list of distinct names")
    for key, ok, want in (
        ("scales", lambda x: _is_number(x) and x > 0, "finite and > 0"),
        (
            "thresholds",
            lambda x: _is_number(x) and abs(x) <= MAX_GATE_THRESHOLD,
            f"finite, within ±{MAX_GATE_THRESHOLD:g} benign standard deviations",
        ),
    ):
        table = _need(w, meta, key, lambda x: isinstance(x, dict), "an object")
        if sorted(table) != sorted(names):
            raise _field_error(w, f"{key} names", sorted(table), f"the gate's names {names}")
        for n, value in table.items():
            if not ok(value):
                raise _field_error(w, f"{key}[{n!r}]", value, want)
    _need(w, meta, "quantile", lambda x: _is_number(x) and 0 <= x <= 1, "a number in [0, 1]")
    _need(w, meta, "benign_rate", lambda x: _is_number(x) and 0 <= x <= 1, "a number in [0, 1]")
    n_benign = _need(w, meta, "n_benign", lambda x: _is_int(x) and x >= 1, "an integer >= 1")
    _need(
        w,
        meta,
        "calibration_fraction",
        lambda x: _is_number(x) and 0 <= x < 1,
        "a number in [0, 1)",
    )
    _need(w, meta, "n_calibration", lambda x: _is_int(x) and 1 <= x <= n_benign, f"1..{n_benign}")
    _need(w, meta, "seed", lambda x: _is_int(x) and x >= 0, "an integer >= 0")
    _check_threshold_rule_meta(w, meta, n_benign)


def _check_threshold_rule_meta(w: str, meta: Mapping[str, Any], n_benign: int) -> None:
    """Fields added with the gate's threshold rules; optional (format-2 packs written before
    them have none and load as ``"pooled"``), checked when present."""
    if "threshold_rule" in meta:
        _need(
            w, meta, "threshold_rule", lambda x: x in THRESHOLD_RULES, f"one of {THRESHOLD_RULES}"
        )
    rates = meta.get("group_rates", {})
    counts = meta.get("group_counts", {})
    for key, table in (("group_rates", rates), ("group_counts", counts)):
        if not isinstance(table, dict) or not all(isinstance(g, str) and g for g in table):
            raise _field_error(w, key, table, "an object keyed by benign set names")
    if sorted(rates) != sorted(counts):
        raise _field_error(w, "group_counts names", sorted(counts), f"the names {sorted(rates)}")
    for g, r in rates.items():
        if not _unit(r):
            raise _field_error(w, f"group_rates[{g!r}]", r, "a rate in [0, 1]")
    for g, c in counts.items():
        if not (_is_int(c) and 1 <= c <= n_benign):
            raise _field_error(w, f"group_counts[{g!r}]", c, f"an integer in 1..{n_benign}")
    if meta.get("n_covariance") is not None:
        _need(w, meta, "n_covariance", lambda x: _is_int(x) and x >= 1, "an integer >= 1")


def _check_spec(where: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise _field_error(where, "source_gate_spec", spec, "an object (or null)")
    w = f"{where}: source_gate_spec"
    _need(w, spec, "model_id", lambda x: isinstance(x, str) and bool(x), "a model id")
    _need(w, spec, "layer", _is_int, "an integer")
    _need(w, spec, "pooling", lambda x: x is None or isinstance(x, dict), "an object or null")
    if "dim" in spec and not (spec["dim"] is None or (_is_int(spec["dim"]) and spec["dim"] > 0)):
        raise _field_error(w, "dim", spec["dim"], "a positive integer or null")


def _check_meta(where: str, meta: Any) -> None:
    """The schema of the ``safesteer`` metadata (format 2); :class:`PackError` names the field."""
    if not isinstance(meta, dict):
        raise PackError(
            f"{where}: the pack metadata is a JSON {type(meta).__name__}, not an object",
            hint=_BUILD_HINT,
        )
    _need(where, meta, "target_id", lambda x: isinstance(x, str) and bool(x), "a non-empty string")
    _need(
        where,
        meta,
        "conditioning_space",
        lambda x: isinstance(x, str) and bool(x),
        "a non-empty string",
    )
    _need(where, meta, "dim", lambda x: _is_int(x) and x >= 1, "a positive integer")
    cats = _need(where, meta, "categories", _names, "a list of distinct, non-empty names")
    if GLOBAL in cats:
        raise _field_error(where, "categories", cats, f"names other than {GLOBAL!r}")
    calibration = _need(where, meta, "calibration", lambda x: isinstance(x, dict), "an object")
    for key, value in calibration.items():
        if not _is_number(value):
            raise _field_error(where, f"calibration[{key!r}]", value, "a finite number")
    for prefix in ("gate", "source_gate"):
        if meta.get(prefix) is not None:
            _check_gate_meta(where, meta[prefix], prefix)
    if meta.get("source_gate_spec") is not None:
        _check_spec(where, meta["source_gate_spec"])
    encoding = meta.get("encoding")
    if encoding is not None:
        if not isinstance(encoding, dict):
            raise _field_error(where, "encoding", encoding, "an object or null")
        length = encoding.get("max_sequence_length")
        if length is not None and not (_is_int(length) and length >= 1):
            raise _field_error(
                where, "encoding['max_sequence_length']", length, "a positive integer or null"
            )
    _need(where, meta, "provenance", lambda x: isinstance(x, dict), "an object")


@dataclass
class SafetyPack:
    """Calibrated steering vectors for one target's conditioning space, plus how they were made.

    Attributes:
        global_vector: ``[D]``, points to the safe side, calibrated (α = 1 adds it once).
        category_vectors: category → ``[D]``.
        target_id: the generator / encoder the pack was built for (e.g. a model id).
        conditioning_space: which states it applies to (e.g. ``"flux/t5"``).
        calibration: numbers such as ``{"beta": ..., "rule": ...}`` (floats only).
        gate: an optional fitted :class:`~safesteer.maths.gating.Gate` on pooled target states.
        provenance: JSON-serialisable record of sources, maps, data hashes and versions.
        source_gate: an optional :class:`~safesteer.maths.gating.Gate` fitted on the benign
            anchors' pooled *source* states with the source directions [ours]; it decides from
            a :class:`~safesteer.models.SourceReader`'s states of the prompt.
        source_gate_spec: :func:`source_spec` of the reader and layer ``source_gate`` was
            fitted on (required with ``source_gate``, empty without it).
        encoding: the target's encoding spec (``max_sequence_length``, template, text
            encoders; :func:`safesteer.targets.encoding.encoding_spec`), checked at attach;
            empty in packs written before it was recorded (they load and are not checked).
    """

    global_vector: Tensor
    category_vectors: dict[str, Tensor]
    target_id: str
    conditioning_space: str
    calibration: dict[str, float]
    gate: Gate | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    source_gate: Gate | None = None
    source_gate_spec: dict[str, Any] = field(default_factory=dict)
    #: how the target states were encoded (:mod:`safesteer.targets.encoding`); {} = not recorded
    encoding: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._validate(source="SafetyPack")

    def __repr__(self) -> str:
        """One line: space, D, target, source, categories, α default, gates (no tensors)."""
        gates = [n for n, g in (("target", self.gate), ("source", self.source_gate)) if g]
        src = self.provenance.get("source_model")
        where = f", source={src!r} L{self.provenance.get('source_layer')}" if src else ""
        return (
            f"SafetyPack({self.conditioning_space!r}, dim={self.dim}, "
            f"target={self.target_id!r}{where}, categories={self.categories}, "
            f"alpha_default={self.alpha_default:g}, gates={gates or 'none'})"
        )

    # ---- properties ----------------------------------------------------------------------
    @property
    def alpha_default(self) -> float:
        """The calibrated default strength (``calibration["alpha_default"]``, else 5)."""
        return float(self.calibration.get("alpha_default", DEFAULT_ALPHA))

    @property
    def dim(self) -> int:
        """Dimension D of the conditioning space."""
        return int(self.global_vector.shape[-1])

    @property
    def categories(self) -> list[str]:
        """Category names, in stored order."""
        return list(self.category_vectors)

    def vector(self, categories: Sequence[str] | None = None) -> Tensor:
        """The global vector (``None`` or empty), or the uniform mean of the named categories.

        ``Σ_{c∈A} v_c / |A|`` (see :func:`~safesteer.maths.steering.combine_directions`).
        """
        if not categories:
            return self.global_vector
        return combine_directions(self.category_vectors, list(categories))

    def vectors_for(self, decision: GateDecision) -> Tensor:
        """Per-prompt vectors ``[B, D]`` for a gate decision: zero where the gate says no,
        the combined active categories where some are active, otherwise the global vector."""
        rows = [
            self.vector(active) if bool(steer) else torch.zeros_like(self.global_vector)
            for steer, active in zip(decision.steer, decision.active, strict=True)
        ]
        return torch.stack(rows) if rows else self.global_vector.new_zeros(0, self.dim)

    def check_fits(self, *, dim: int, conditioning_space: str | None = None) -> None:
        """Refuse, with :class:`PackError`, a pipeline whose states this pack does not fit."""
        space_ok = conditioning_space is None or conditioning_space == self.conditioning_space
        if dim != self.dim or not space_ok:
            wanted = conditioning_space or "this pipeline's conditioning space"
            raise PackError(
                f"this pack is built for {self.conditioning_space} (dim {self.dim}); "
                f"this pipeline needs {wanted} (dim {dim})",
                hint="build a pack for that target with `safesteer build --target ...`",
            )

    def require_source_gate(self) -> Gate:
        """The source gate, or :class:`PackError` saying this pack has none and what to do."""
        if self.source_gate is None:
            raise PackError(
                "this pack has no source gate (packs built before safesteer added it, and "
                "native packs, have none)",
                hint="rebuild the pack with `safesteer build ...`, or use gate='target'",
            )
        return self.source_gate

    def check_source_reader(self, reader: Any) -> int:
        """Refuse, with :class:`PackError`, a reader whose states the source gate cannot read.

        The reader must have the same :func:`source_spec` as the one the gate was fitted on
        (model id, pooling settings, hidden size) and reach the gate's layer. Returns that layer.
        """
        self.require_source_gate()
        want = self.source_gate_spec
        layer = int(want["layer"])
        got = source_spec(reader, layer)
        wrong = [
            f"{k} {got.get(k)!r} (the gate needs {want.get(k)!r})"
            for k in ("model_id", "pooling", "dim")
            if got.get(k) != want.get(k)
        ]
        num_layers = getattr(reader, "num_layers", None)
        if isinstance(num_layers, int) and not 0 <= layer <= num_layers:
            wrong.append(f"num_layers {num_layers} (the gate reads layer {layer})")
        fixed = getattr(reader, "layer", None)  # a reader bound to one layer
        if isinstance(fixed, int) and fixed != layer:
            wrong.append(f"layer {fixed} (the gate reads layer {layer})")
        if wrong:
            raise PackError(
                "this source reader does not give the states the pack's source gate was fitted "
                "on: " + "; ".join(wrong),
                hint=f"load the reader of {want.get('model_id')!r} with the pooling settings "
                f"above (SourceReader.from_preset / from_pretrained, or "
                f"SourceReader.from_spec(pack.source_gate_spec)), or use gate='target'",
            )
        return layer

    # ---- validation ----------------------------------------------------------------------
    def _gates(self) -> dict[str, Gate]:
        """Stored gates by tensor prefix (``"gate"``, ``"source_gate"``)."""
        gates = {"gate": self.gate, "source_gate": self.source_gate}
        return {prefix: g for prefix, g in gates.items() if g is not None}

    def _tensors(self) -> dict[str, Tensor]:
        tensors = {"global": self.global_vector}
        tensors.update({f"category/{n}": v for n, v in self.category_vectors.items()})
        for prefix, gate in self._gates().items():
            gate_tensors, _ = gate.state()
            tensors.update({f"{prefix}/{k}": v for k, v in gate_tensors.items()})
        return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    @staticmethod
    def _as_float32(v: Tensor, name: str, source: str) -> Tensor:
        """A floating vector as float32 (float16 / bfloat16 exactly); ints and bools refused."""
        if not isinstance(v, Tensor) or v.dtype not in _FLOATS:
            dtype = getattr(v, "dtype", type(v).__name__)
            raise PackError(
                f"{source}: vector {name!r} is {dtype}, not floating point",
                hint=f"store float32 vectors, or {_BUILD_HINT}",
            )
        return v if v.dtype == torch.float32 else v.float()

    def _validate(self, *, source: str) -> None:
        self.global_vector = self._as_float32(self.global_vector, "global", source)
        self.category_vectors = {
            c: self._as_float32(v, c, source) for c, v in self.category_vectors.items()
        }
        if self.global_vector.ndim != 1:
            raise PackError(
                f"{source}: the global vector must be 1-D [D]; "
                f"got {tuple(self.global_vector.shape)}"
            )
        if GLOBAL in self.category_vectors or any(
            not isinstance(c, str) or not c for c in self.category_vectors
        ):
            raise PackError(
                f"{source}: category names must be non-empty and not {GLOBAL!r}; "
                f"got {list(self.category_vectors)}",
                hint=_BUILD_HINT,
            )
        for name, value in self.calibration.items():
            if not _is_number(value):
                raise _field_error(source, f"calibration[{name!r}]", value, "a finite number")
        norms = {}
        for name, v in {"global": self.global_vector, **self.category_vectors}.items():
            if v.shape != (self.dim,):
                raise PackError(
                    f"{source}: vector {name!r} has shape {tuple(v.shape)} but the pack's "
                    f"dimension is {self.dim}",
                    hint=_BUILD_HINT,
                )
            if not bool(torch.isfinite(v).all()):
                raise PackError(f"{source}: vector {name!r} contains NaN or Inf", hint=_BUILD_HINT)
            norm = float(v.double().norm())
            if norm < MIN_VECTOR_NORM:
                raise PackError(
                    f"{source}: vector {name!r} is zero (norm {norm:.3g}): steering with it "
                    "changes nothing",
                    hint=_BUILD_HINT,
                )
            if norm > MAX_VECTOR_NORM:
                raise PackError(
                    f"{source}: vector {name!r} has norm {norm:.3g}, beyond {MAX_VECTOR_NORM:g}",
                    hint=_BUILD_HINT,
                )
            norms[name] = norm
        recorded = self.calibration.get("target_norm")
        if recorded is not None and not math.isclose(norms["global"], recorded, rel_tol=1e-3):
            raise PackError(
                f"{source}: the global vector's norm {norms['global']:.6g} is not the "
                f"calibrated norm {recorded:.6g} recorded in calibration['target_norm']",
                hint=_BUILD_HINT,
            )
        if self.gate is not None:
            self._validate_gate(self.gate, self.dim, "gate", source)
        if (self.source_gate is None) != (not self.source_gate_spec):
            raise PackError(
                f"{source}: a source gate and its source_gate_spec go together "
                f"(gate {'given' if self.source_gate is not None else 'missing'}, "
                f"spec {'given' if self.source_gate_spec else 'missing'})",
                hint="pass both (source_spec(reader, layer) gives the spec) or neither",
            )
        if self.source_gate is not None:
            spec = self.source_gate_spec
            missing = [k for k in ("model_id", "layer", "pooling") if k not in spec]
            if missing:
                raise PackError(
                    f"{source}: source_gate_spec lacks {missing}",
                    hint="make it with safesteer.pack.source_spec(reader, layer)",
                )
            dim = self.source_gate.centre_.shape[-1]
            spec_dim = self.source_gate_spec.get("dim")
            if spec_dim is not None and spec_dim != dim:
                raise PackError(
                    f"{source}: source gate has dim {dim} but its spec says {spec_dim}",
                    hint=_BUILD_HINT,
                )
            self._validate_gate(self.source_gate, int(dim), "source gate", source)

    def _validate_gate(self, gate: Gate, dim: int, what: str, source: str) -> None:
        """Tensors finite of the right dim, unit directions, names = categories (or global),
        positive finite scales, finite thresholds (in memory as on load)."""
        gate_tensors, meta = gate.state()
        for name, t in gate_tensors.items():
            if not isinstance(t, Tensor) or t.dtype not in _FLOATS:
                raise PackError(f"{source}: {what} tensor {name!r} is not floating point")
            if t.ndim != 1 or t.shape[-1] != dim:
                raise PackError(
                    f"{source}: {what} tensor {name!r} has shape {tuple(t.shape)}, expected "
                    f"({dim},)",
                    hint=_BUILD_HINT,
                )
            if not bool(torch.isfinite(t).all()):
                raise PackError(f"{source}: {what} tensor {name!r} contains NaN or Inf")
            # unit length (1e-2: a bfloat16 copy is exact to about 0.4%)
            if name.startswith("u/") and abs(float(t.double().norm()) - 1.0) > 1e-2:
                raise PackError(
                    f"{source}: {what} direction {name!r} has norm {float(t.norm()):.6g}, not 1",
                    hint=_BUILD_HINT,
                )
        unknown = [n for n in meta["names"] if n != GLOBAL and n not in self.category_vectors]
        if unknown:
            raise PackError(
                f"{source}: {what} names {unknown}, which are not categories of the pack "
                f"({self.categories})",
                hint=_BUILD_HINT,
            )
        _check_gate_meta(source, _plain(meta), what.replace(" ", "_"))

    # ---- the hub (safesteer.hub) ---------------------------------------------------------
    def save_pretrained(self, folder: str | Path, *, report: str | Path | None = None) -> Path:
        """Write a hub-style folder: this pack, its model card (+ a report's figures)."""
        from safesteer.hub import save_pack_folder

        return save_pack_folder(self, folder, report=report)

    @classmethod
    def from_pretrained(cls, repo_or_folder: str | Path, **kwargs: Any) -> SafetyPack:
        """Load from a local folder / pack file (always wins) or a hub repo id (cached,
        offline-aware); ``kwargs``: ``revision``, ``cache_dir``, ``local_files_only``,
        ``force_download``, ``token``, ``filename`` (:func:`safesteer.hub.resolve_pack_file`)."""
        from safesteer.hub import resolve_pack_file

        return cls.load(resolve_pack_file(repo_or_folder, **kwargs))

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload this pack and its card to ``repo_id`` (:func:`safesteer.hub.push_pack`)."""
        from safesteer.hub import push_pack

        return push_pack(self, repo_id, **kwargs)

    # ---- save / load ---------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The JSON metadata that :meth:`save` writes, with its ``sha256``."""
        raw = {
            "format_version": FORMAT_VERSION,
            "target_id": self.target_id,
            "conditioning_space": self.conditioning_space,
            "dim": self.dim,
            "categories": self.categories,
            "calibration": dict(self.calibration),
            "gate": None if self.gate is None else self.gate.state()[1],
            "source_gate": None if self.source_gate is None else self.source_gate.state()[1],
            "source_gate_spec": dict(self.source_gate_spec) or None,
            "encoding": dict(self.encoding) or None,
            "provenance": {**self.provenance, "safesteer_version": __version__},
        }
        try:  # as JSON gives it back: what load() hashes
            meta: dict[str, Any] = json.loads(json.dumps(raw, sort_keys=True, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise PackError(
                f"cannot save the pack: provenance/calibration must be JSON numbers, strings, "
                f"lists and dicts without NaN ({exc})",
                hint="convert tensors and paths to plain values",
            ) from exc
        meta[_HASH_KEY] = content_sha256(self._tensors(), meta)
        return meta

    def save(self, path: str | Path) -> Path:
        """Write one ``.safetensors`` file atomically and return its path.

        The bytes go to a temporary file in the same folder, are flushed to disk, then renamed
        over ``path`` (``os.replace``): a failure never leaves a half-written pack nor damages an
        existing one. The same pack always gives the same bytes.
        """
        path = Path(path)
        self._validate(source=str(path))
        meta_json = json.dumps(self.metadata(), sort_keys=True, allow_nan=False)
        return write_bytes_atomic(path, st_save(self._tensors(), metadata={_META_KEY: meta_json}))

    @classmethod
    def load(cls, path: str | Path) -> SafetyPack:
        """Read and check a pack; :class:`PackError` names any problem and its fix.

        Order: the file is a safetensors pack → its format version → its ``sha256`` over
        tensors and metadata → the metadata schema → the tensors it names (floating point,
        finite, non-zero, sane norms, gates consistent).
        """
        path = Path(path)
        if not path.is_file():
            raise PackError(f"no safety pack at {path}", hint=f"check the path, or {_BUILD_HINT}")
        data = path.read_bytes()
        header = _read_header(path, data)
        try:
            tensors = st_load(data)
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise PackError(
                f"{path} is not a safetensors file, or it is truncated ({exc})",
                hint=f"re-download or {_BUILD_HINT}",
            ) from exc
        extra = header.get("__metadata__")
        raw = extra.get(_META_KEY) if isinstance(extra, dict) else None
        if not isinstance(raw, str):
            raise PackError(
                f"{path} is a safetensors file but not a safesteer pack (no 'safesteer' metadata)",
                hint=f"pass a pack written by SafetyPack.save, or {_BUILD_HINT}",
            )
        try:
            meta = json.loads(raw)
        except (ValueError, RecursionError):
            raise PackError(
                f"{path}: the pack metadata is not valid JSON (or nested too deep)",
                hint=_BUILD_HINT,
            ) from None
        if not isinstance(meta, dict):
            raise PackError(
                f"{path}: the pack metadata is a JSON {type(meta).__name__}, not an object",
                hint=_BUILD_HINT,
            )
        _check_version(path, meta)
        try:
            expected = content_sha256(tensors, meta)
        except (TypeError, ValueError, RecursionError):  # NaN or odd values: not our writer's
            expected = None
        if meta.get(_HASH_KEY) != expected:
            raise PackError(
                f"{path}: its bytes do not match the sha256 in its metadata (tensors or "
                "metadata modified, or corrupt)",
                hint=f"re-download or {_BUILD_HINT}",
            )
        _check_meta(str(path), meta)
        categories = list(meta["categories"])
        expected_names = {"global", *(f"category/{c}" for c in categories)}
        for prefix in ("gate", "source_gate"):
            if meta.get(prefix) is not None:
                expected_names |= {f"{prefix}/centre"}
                expected_names |= {f"{prefix}/u/{n}" for n in meta[prefix]["names"]}
        missing = sorted(expected_names - set(tensors))
        unknown = sorted(set(tensors) - expected_names)
        if missing or unknown:
            raise PackError(
                f"{path}: the pack "
                + (f"lacks the tensors {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"holds tensors its metadata does not name: {unknown}" if unknown else ""),
                hint=_BUILD_HINT,
            )
        for name, t in tensors.items():
            if t.dtype not in _FLOATS:
                raise PackError(
                    f"{path}: tensor {name!r} is {t.dtype}, not floating point", hint=_BUILD_HINT
                )
            if not bool(torch.isfinite(t).all()):
                raise PackError(f"{path}: tensor {name!r} contains NaN or Inf", hint=_BUILD_HINT)
        tensors = {k: v.float() for k, v in tensors.items()}  # float16/bfloat16: exact
        if tensors["global"].ndim != 1 or tensors["global"].shape[0] != meta["dim"]:
            raise PackError(
                f"{path}: metadata says dim {meta['dim']} but the global vector has shape "
                f"{tuple(tensors['global'].shape)}",
                hint=_BUILD_HINT,
            )
        gate, source_gate = (_load_gate(path, tensors, meta, p) for p in ("gate", "source_gate"))
        try:
            return cls(
                global_vector=tensors["global"],
                category_vectors={c: tensors[f"category/{c}"] for c in categories},
                target_id=meta["target_id"],
                conditioning_space=meta["conditioning_space"],
                calibration=dict(meta["calibration"]),
                gate=gate,
                provenance=dict(meta["provenance"]),
                source_gate=source_gate,
                source_gate_spec=dict(meta.get("source_gate_spec") or {}),
                encoding=dict(meta.get("encoding") or {}),
            )
        except PackError as exc:  # the checks every pack passes, named for this file
            message = exc.message.removeprefix("SafetyPack: ")
            raise PackError(f"{path}: {message}", hint=exc.hint or _BUILD_HINT) from None


def _check_version(path: Path, meta: Mapping[str, Any]) -> None:
    version = meta.get("format_version")
    if version == FORMAT_VERSION:
        return
    if version == 1:
        found = meta.get("provenance")
        prov: dict[str, Any] = found if isinstance(found, dict) else {}
        made = ", ".join(
            f"{k} {prov[k]}"
            for k in ("source_model", "source_layer", "target_model", "map_kind")
            if isinstance(prov.get(k), str | int)
        )
        raise PackError(
            f"{path} is a format 1 pack (safesteer before format {FORMAT_VERSION}): its hash "
            "covers the tensors only, so its gate thresholds and scales cannot be checked",
            hint="rebuild it with `safesteer build --source ... --layer ... --target ... --map "
            "...` (the same inputs give the same pack)"
            + (f"; it was made from {made}" if made else ""),
        )
    raise PackError(
        f"{path} has pack format_version {version!r}; this safesteer ({__version__}) "
        f"reads version {FORMAT_VERSION}",
        hint=f"upgrade safesteer, or {_BUILD_HINT}",
    )


def _load_gate(
    path: Path, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], prefix: str
) -> Gate | None:
    """The gate stored under ``<prefix>/…`` tensors and ``meta[prefix]``; None when absent."""
    if meta.get(prefix) is None:
        return None
    start = f"{prefix}/"
    found = {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}
    try:
        return Gate.from_state(found, meta[prefix])
    except PackError as exc:
        raise PackError(f"{path}: {prefix}: {exc.message}", hint=exc.hint or _BUILD_HINT) from None
