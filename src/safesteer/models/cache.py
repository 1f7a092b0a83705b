"""On-disk cache of pooled states, as safetensors (never pickle).

Key of one cached vector: ``(model id, reader settings, layer, text)``. Layout::

    <cache>/states/<sha256(model id + settings)[:16]>/L<layer>/<shard>.safetensors

Each shard holds a ``pooled`` tensor ``[n, D]`` and, in its metadata, the JSON list of the
``sha256(text)[:32]`` of its rows (plus the readable model id and settings). A run writes one
new shard with what it computed; a lookup reads every shard of the layer once per process.
Writes are atomic (temporary file + rename), so an interrupted run leaves no broken shard.

Example:
    >>> import torch, tempfile
    >>> c = StateCache(tempfile.mkdtemp(), "toy-model", {"pool": "mean"})
    >>> c.put(3, ["a cat"], torch.ones(1, 4))
    >>> c.get(3, ["a cat", "a dog"])[0].tolist(), c.get(3, ["a dog"])[0] is None
    ([1.0, 1.0, 1.0, 1.0], True)
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save
from torch import Tensor

from safesteer.atomic import write_bytes_atomic


def text_key(text: str) -> str:
    """``sha256(text)`` truncated to 32 hex digits (128 bits: no collisions in practice)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class StateCache:
    """Pooled states of one model under one set of reader settings, per layer and text."""

    def __init__(self, root: str | Path, model_id: str, settings: Mapping[str, object]) -> None:
        self.model_id = model_id
        self.settings = json.dumps(dict(settings), sort_keys=True, default=str)
        digest = hashlib.sha256(f"{model_id}\n{self.settings}".encode()).hexdigest()[:16]
        self.folder = Path(root) / "states" / digest
        self._loaded: dict[int, dict[str, Tensor]] = {}

    def _layer_dir(self, layer: int) -> Path:
        return self.folder / f"L{layer}"

    def _index(self, layer: int) -> dict[str, Tensor]:
        if layer not in self._loaded:
            index: dict[str, Tensor] = {}
            folder = self._layer_dir(layer)
            for shard in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
                try:
                    with safe_open(str(shard), framework="pt") as f:
                        keys = json.loads((f.metadata() or {}).get("keys", "[]"))
                        pooled = f.get_tensor("pooled")
                except Exception:  # a foreign or damaged file is skipped, not fatal
                    continue
                index.update(zip(keys, pooled, strict=False))
            self._loaded[layer] = index
        return self._loaded[layer]

    def get(self, layer: int, texts: Sequence[str]) -> list[Tensor | None]:
        """The cached vector of each text at ``layer``, or None where there is none."""
        index = self._index(layer)
        return [index.get(text_key(t)) for t in texts]

    def put(self, layer: int, texts: Sequence[str], pooled: Tensor) -> None:
        """Store ``pooled[i]`` as the vector of ``texts[i]`` at ``layer`` (one new shard)."""
        if len(texts) != pooled.shape[0]:
            raise ValueError(f"{len(texts)} texts but {pooled.shape[0]} rows")
        if not texts:
            return
        keys = [text_key(t) for t in texts]
        folder = self._layer_dir(layer)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "keys": json.dumps(keys),
            "model_id": self.model_id,
            "settings": self.settings,
            "layer": str(layer),
        }
        data = st_save(
            {"pooled": pooled.detach().to("cpu", torch.float32).contiguous()}, metadata=meta
        )
        write_bytes_atomic(folder / f"{uuid.uuid4().hex}.safetensors", data)
        index = self._index(layer)
        index.update(zip(keys, pooled.detach().to("cpu", torch.float32).clone(), strict=True))


__all__ = ["StateCache", "text_key"]
