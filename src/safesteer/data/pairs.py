"""Our paired safe/unsafe prompts: the same scene, with the harm added in a minimal edit.

Written by the safesteer authors (``source: "safesteer (ours)"`` on every record of
``prompts/pairs.jsonl``), at least 50 pairs in each of :data:`CATEGORIES`, short and
non-graphic. The split is fixed in the file, stratified by category: within each category,
pair *i* is ``train`` when ``i % 4 in (0, 1)``, ``judge`` when ``i % 4 == 2`` (for target-side
judges that the transfer never sees) and ``test`` when ``i % 4 == 3``.

Example:
    >>> pair = load_pairs("train")[0]
    >>> pair.category, pair.safe
    ('sexual', 'a woman posing on a beach in a summer dress')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from safesteer.data.categories import CATEGORIES
from safesteer.errors import InputError

SPLITS: tuple[str, ...] = ("train", "judge", "test")
PAIRS_SOURCE = "safesteer (ours)"


@dataclass(frozen=True)
class PromptPair:
    """One safe prompt and its unsafe twin (the same scene with the harm added).

    ``subcategory`` and ``group`` (the scene both prompts share; pairs of one group are never
    split across partitions) are set for SafeSteerDataset pairs (:mod:`safesteer.data.real`)
    and empty for ours.
    """

    safe: str
    unsafe: str
    category: str
    subcategory: str = ""
    group: str = ""


@cache
def _records() -> tuple[dict[str, str], ...]:
    text = resources.files("safesteer.data").joinpath("prompts/pairs.jsonl").read_text("utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def load_pairs(split: str = "train", categories: tuple[str, ...] | None = None) -> list[PromptPair]:
    """Pairs of one split (``"train" | "judge" | "test" | "all"``), in file order.

    ``categories`` keeps only those categories (default: all of :data:`CATEGORIES`).
    """
    if split not in (*SPLITS, "all"):
        raise InputError(f"unknown split {split!r}", hint=f"use one of {', '.join(SPLITS)}, all")
    wanted = CATEGORIES if categories is None else categories
    unknown = sorted(set(wanted) - set(CATEGORIES))
    if unknown:
        raise InputError(f"unknown categories {unknown}", hint=f"use {', '.join(CATEGORIES)}")
    return [
        PromptPair(r["safe"], r["unsafe"], r["category"])
        for r in _records()
        if (split == "all" or r["split"] == split) and r["category"] in wanted
    ]


def read_pairs(path: str | Path) -> list[PromptPair]:
    """A user's prompt pairs: a JSON-lines file, one ``{"safe", "unsafe", "category"}`` a line
    (an optional ``"subcategory"`` is kept: ``safesteer build --per subcategory``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"pairs file {p} does not exist", hint="check the path")
    pairs = []
    from safesteer.validation import read_utf8

    for i, line in enumerate(read_utf8(p, "pairs file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.append(
                PromptPair(
                    str(row["safe"]),
                    str(row["unsafe"]),
                    str(row.get("category", "all")),
                    str(row.get("subcategory", "")),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(
                f"{p}:{i} is not a pair ({exc})",
                hint='write one {"safe": ..., "unsafe": ..., "category": ...} object per line',
            ) from None
    if not pairs:
        raise InputError(f"pairs file {p} holds no pairs", hint="add at least 2 pairs")
    return pairs


__all__ = ["PAIRS_SOURCE", "SPLITS", "PromptPair", "load_pairs", "read_pairs"]
