"""``SafetyPack``: the portable artifact that carries calibrated target-space vectors.

One ``.safetensors`` file. Tensors: ``"global"``, ``"category/<name>"``, ``"gate/<key>"``.
Metadata: ``{"safesteer": <JSON>}`` with ``format_version`` (1), ``target_id``,
``conditioning_space``, ``dim``, ``categories``, ``calibration``, ``gate`` (its metadata, or
null), ``provenance`` (whatever the builder passes — source model and layer, map kind and fit
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

import contextlib
import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from safesteer._version import __version__
from safesteer.errors import PackError
from safesteer.maths.gating import Gate, GateDecision
from safesteer.maths.steering import combine_directions

__all__ = ["FORMAT_VERSION", "SafetyPack", "tensor_sha256"]

FORMAT_VERSION = 1
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
        gate: an optional fitted :class:`~safesteer.maths.gating.Gate`.
        provenance: JSON-serialisable record of sources, maps, data hashes and versions.
    """

    global_vector: Tensor
    category_vectors: dict[str, Tensor]
    target_id: str
    conditioning_space: str
    calibration: dict[str, float]
    gate: Gate | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._validate(source="SafetyPack")

    # ---- properties ----------------------------------------------------------------------
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

    # ---- validation ----------------------------------------------------------------------
    def _tensors(self) -> dict[str, Tensor]:
        tensors = {"global": self.global_vector}
        tensors.update({f"category/{n}": v for n, v in self.category_vectors.items()})
        if self.gate is not None:
            gate_tensors, _ = self.gate.state()
            tensors.update({f"gate/{k}": v for k, v in gate_tensors.items()})
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
            gate_tensors, _ = self.gate.state()
            for name, t in gate_tensors.items():
                if t.shape[-1] != self.dim:
                    raise PackError(
                        f"{source}: gate tensor {name!r} has dim {t.shape[-1]}, "
                        f"pack dim {self.dim}",
                        hint=_BUILD_HINT,
                    )
                if not bool(torch.isfinite(t).all()):
                    raise PackError(f"{source}: gate tensor {name!r} contains NaN or Inf")

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
        data = st_save(self._tensors(), metadata={_META_KEY: meta_json})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

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
            gate = None
            if meta.get("gate") is not None:
                gate_tensors = {k[5:]: v for k, v in tensors.items() if k.startswith("gate/")}
                gate = Gate.from_state(gate_tensors, meta["gate"])
            pack = cls(
                global_vector=tensors["global"],
                category_vectors={c: tensors[f"category/{c}"] for c in categories},
                target_id=str(meta["target_id"]),
                conditioning_space=str(meta["conditioning_space"]),
                calibration=dict(meta["calibration"]),
                gate=gate,
                provenance=dict(meta.get("provenance") or {}),
            )
        except KeyError as exc:
            raise PackError(f"{path}: the pack lacks {exc}", hint=_BUILD_HINT) from exc
        if pack.dim != meta.get("dim"):
            raise PackError(
                f"{path}: metadata says dim {meta.get('dim')} but the vectors have dim {pack.dim}",
                hint=_BUILD_HINT,
            )
        return pack
