"""Alignment maps source → target fitted on benign anchors only (method.md §2).

``make_map("procrustes" | "ridge" | "mlp", **kwargs)`` builds one by name.

Example:
    >>> make_map("ridge", seed=3).kind
    'ridge'
"""

from __future__ import annotations

from typing import Any

from safesteer.errors import InputError
from safesteer.maths.alignment.base import AlignmentMap, FitReport
from safesteer.maths.alignment.mlp import MLPMap
from safesteer.maths.alignment.procrustes import ProcrustesMap
from safesteer.maths.alignment.ridge import RidgeMap

__all__ = ["MAPS", "AlignmentMap", "FitReport", "MLPMap", "ProcrustesMap", "RidgeMap", "make_map"]

MAPS: dict[str, type[AlignmentMap]] = {
    ProcrustesMap.kind: ProcrustesMap,
    RidgeMap.kind: RidgeMap,
    MLPMap.kind: MLPMap,
}


def make_map(kind: str, **kwargs: Any) -> AlignmentMap:
    """Build an unfitted map by kind (aliases: ``"svd"`` → procrustes)."""
    key = {"svd": "procrustes", "orthogonal": "procrustes"}.get(kind.lower(), kind.lower())
    cls = MAPS.get(key)
    if cls is None:
        raise InputError(f"unknown map kind {kind!r}", hint=f"choose one of {sorted(MAPS)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"bad options for the {key} map: {exc}") from exc
