"""Alignment maps source → target fitted on benign anchors only (method.md §2).

``make_map(kind, **kwargs)`` builds one by name; the kinds are the keys of :data:`MAPS`
(``"procrustes"``, ``"ridge"``, ``"mlp"``, ``"whiten-recolour"``).

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
from safesteer.maths.alignment.whiten_recolour import WhitenRecolourMap

__all__ = [
    "MAPS",
    "AlignmentMap",
    "FitReport",
    "MLPMap",
    "ProcrustesMap",
    "RidgeMap",
    "WhitenRecolourMap",
    "make_map",
]

MAPS: dict[str, type[AlignmentMap]] = {
    ProcrustesMap.kind: ProcrustesMap,
    RidgeMap.kind: RidgeMap,
    MLPMap.kind: MLPMap,
    WhitenRecolourMap.kind: WhitenRecolourMap,
}
#: other names ``make_map`` accepts for a kind
ALIASES = {"svd": "procrustes", "orthogonal": "procrustes", "wrc": "whiten-recolour"}


def make_map(kind: str, **kwargs: Any) -> AlignmentMap:
    """Build an unfitted map by kind (aliases: :data:`ALIASES`, e.g. ``"svd"`` → procrustes)."""
    key = ALIASES.get(kind.lower(), kind.lower())
    cls = MAPS.get(key)
    if cls is None:
        raise InputError(f"unknown map kind {kind!r}", hint=f"choose one of {sorted(MAPS)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"bad options for the {key} map: {exc}") from exc
