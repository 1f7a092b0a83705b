"""``SafetyPack``: the portable artifact that carries calibrated target-space vectors.

One ``.safetensors`` file. Tensors: ``"global"``, ``"category/<name>"``, ``"gate/<key>"`` and
``"source_gate/<key>"``. Metadata: ``{"safesteer": <JSON>}`` with ``format_version`` (1),
``target_id``, ``conditioning_space``, ``dim``, ``categories``, ``calibration``, ``gate`` (its
metadata, or null), ``source_gate`` and ``source_gate_spec`` (the source-side gate [ours] and
what identifies the source states it reads — :func:`source_spec`; null/absent in older packs),
``encoding`` (how the target states were encoded: ``max_sequence_length``, template, text
encoders — checked at attach; null/absent in older packs),
``provenance`` (whatever the builder passes — source model and layer, map kind and fit
metrics, anchor/pair hashes — plus ``safesteer_version`` added on save) and ``tensor_sha256``,
a hash of every tensor's name, dtype, shape and bytes. No pickle: only safetensors and JSON.

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
import struct
from collections.abc import Mapping, Sequence
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
from safesteer.maths.gating import Gate, GateDecision
from safesteer.maths.steering import combine_directions

__all__ = ["DEFAULT_ALPHA", "FORMAT_VERSION", "SafetyPack", "source_spec", "tensor_sha256"]

FORMAT_VERSION = 1
#: the strength :func:`safesteer.attach` uses when a pack carries no ``alpha_default`` (the
#: paper's α for FLUX and Qwen-Image); packs built by safesteer record it in ``calibration``
DEFAULT_ALPHA = 5.0
_META_KEY = "safesteer"
_BUILD_HINT = "rebuild it with `safesteer build --target ...`"


def tensor_sha256(tensors: Mapping[str, Tensor]) -> str:
    """``"sha256:<hex>"`` over each tensor's name, dtype, shape and raw bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
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
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad from exc
    if not isinstance(header, dict):
        raise bad
    return header


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

    def _validate(self, *, source: str) -> None:
        if self.global_vector.ndim != 1:
            raise PackError(
                f"{source}: the global vector must be 1-D [D]; "
                f"got {tuple(self.global_vector.shape)}"
            )
        for name, v in {"global": self.global_vector, **self.category_vectors}.items():
            if v.shape != (self.dim,):
                raise PackError(
                    f"{source}: vector {name!r} has shape {tuple(v.shape)} but the pack's "
                    f"dimension is {self.dim}",
                    hint=_BUILD_HINT,
                )
            if not bool(torch.isfinite(v).all()):
                raise PackError(f"{source}: vector {name!r} contains NaN or Inf", hint=_BUILD_HINT)
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

    @staticmethod
    def _validate_gate(gate: Gate, dim: int, what: str, source: str) -> None:
        gate_tensors, _ = gate.state()
        for name, t in gate_tensors.items():
            if t.shape[-1] != dim:
                raise PackError(
                    f"{source}: {what} tensor {name!r} has dim {t.shape[-1]}, expected {dim}",
                    hint=_BUILD_HINT,
                )
            if not bool(torch.isfinite(t).all()):
                raise PackError(f"{source}: {what} tensor {name!r} contains NaN or Inf")

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
        """The JSON metadata that :meth:`save` writes (with the tensor hash)."""
        tensors = self._tensors()
        return {
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
            "tensor_sha256": tensor_sha256(tensors),
        }

    def save(self, path: str | Path) -> Path:
        """Write one ``.safetensors`` file atomically and return its path.

        The bytes go to a temporary file in the same folder, are flushed to disk, then renamed
        over ``path`` (``os.replace``): a failure never leaves a half-written pack nor damages an
        existing one.
        """
        path = Path(path)
        self._validate(source=str(path))
        try:
            meta_json = json.dumps(self.metadata(), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PackError(
                f"cannot save {path}: provenance/calibration must be JSON numbers, strings, "
                f"lists and dicts without NaN ({exc})",
                hint="convert tensors and paths to plain values",
            ) from exc
        return write_bytes_atomic(path, st_save(self._tensors(), metadata={_META_KEY: meta_json}))

    @classmethod
    def load(cls, path: str | Path) -> SafetyPack:
        """Read and check a pack; :class:`PackError` names any problem and its fix."""
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
        raw = (header.get("__metadata__") or {}).get(_META_KEY)
        if raw is None:
            raise PackError(
                f"{path} is a safetensors file but not a safesteer pack (no 'safesteer' metadata)",
                hint=f"pass a pack written by SafetyPack.save, or {_BUILD_HINT}",
            )
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PackError(
                f"{path}: the pack metadata is not valid JSON", hint=_BUILD_HINT
            ) from exc
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise PackError(
                f"{path} has pack format_version {version!r}; this safesteer ({__version__}) "
                f"reads version {FORMAT_VERSION}",
                hint=f"upgrade safesteer, or {_BUILD_HINT}",
            )
        for name, t in tensors.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise PackError(f"{path}: tensor {name!r} contains NaN or Inf", hint=_BUILD_HINT)
        if tensor_sha256(tensors) != meta.get("tensor_sha256"):
            raise PackError(
                f"{path}: tensor bytes do not match the hash in its metadata (modified or corrupt)",
                hint=f"re-download or {_BUILD_HINT}",
            )
        try:
            categories = [str(c) for c in meta["categories"]]
            gate, source_gate = (_load_gate(tensors, meta, p) for p in ("gate", "source_gate"))
            pack = cls(
                global_vector=tensors["global"],
                category_vectors={c: tensors[f"category/{c}"] for c in categories},
                target_id=str(meta["target_id"]),
                conditioning_space=str(meta["conditioning_space"]),
                calibration=dict(meta["calibration"]),
                gate=gate,
                provenance=dict(meta.get("provenance") or {}),
                source_gate=source_gate,
                source_gate_spec=dict(meta.get("source_gate_spec") or {}),
                encoding=dict(meta.get("encoding") or {}),
            )
        except KeyError as exc:
            raise PackError(f"{path}: the pack lacks {exc}", hint=_BUILD_HINT) from exc
        if pack.dim != meta.get("dim"):
            raise PackError(
                f"{path}: metadata says dim {meta.get('dim')} but the vectors have dim {pack.dim}",
                hint=_BUILD_HINT,
            )
        return pack


def _load_gate(tensors: Mapping[str, Tensor], meta: Mapping[str, Any], prefix: str) -> Gate | None:
    """The gate stored under ``<prefix>/…`` tensors and ``meta[prefix]``; None when absent."""
    if meta.get(prefix) is None:
        return None
    start = f"{prefix}/"
    found = {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}
    return Gate.from_state(found, meta[prefix])
