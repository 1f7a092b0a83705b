"""Compare two ``metrics.json`` files of the default job, ignoring only volatile fields.

Volatile: anything named ``seconds`` or ``environment``, ``config.out``, and strings holding run
paths. Everything else — every key (in order) and every value — must be identical. Exit status
0 when they are, 1 otherwise (the differences are printed).

Usage: ``python scripts/compare_metrics.py BASELINE/metrics.json NEW/metrics.json``

Note: ``source.pooling_check``'s outlier counts cover prompts read in that run, not cache hits,
so compare two cold runs (``SAFESTEER_CACHE`` pointed at an empty folder) or two warm ones.
"""

from __future__ import annotations

import json
import sys
from typing import Any

VOLATILE_KEYS = {"seconds", "environment"}


def _volatile(path: tuple[Any, ...]) -> bool:
    return (bool(path) and path[-1] in VOLATILE_KEYS) or path[:2] == ("config", "out")


def compare(a: Any, b: Any, path: tuple[Any, ...] = ()) -> tuple[list[str], int]:
    """(differences, number of volatile leaves skipped)."""
    if _volatile(path):
        return [], 1
    where = "/".join(map(str, path)) or "(root)"
    if isinstance(a, dict) and isinstance(b, dict):
        diffs: list[str] = []
        if list(a) != list(b):
            extra = sorted(set(a) ^ set(b))
            diffs.append(f"{where}: keys differ {extra}" if extra else f"{where}: key order")
        skipped = 0
        for key in a:
            if key in b:
                d, s = compare(a[key], b[key], (*path, key))
                diffs += d
                skipped += s
        return diffs, skipped
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"], 0
        diffs, skipped = [], 0
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d, s = compare(x, y, (*path, i))
            diffs += d
            skipped += s
        return diffs, skipped
    if type(a) is type(b) and a == b:
        return [], 0
    if isinstance(a, str) and isinstance(b, str) and ("/tmp/" in a or "/work/" in a):
        return [], 1  # a run folder or file location
    return [f"{where}: {a!r} vs {b!r}"[:300]], 0


def _leaves(x: Any) -> int:
    if isinstance(x, dict):
        return sum(_leaves(v) for v in x.values())
    if isinstance(x, list):
        return sum(_leaves(v) for v in x)
    return 1


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as f:
        a = json.load(f)
    with open(argv[1], encoding="utf-8") as f:
        b = json.load(f)
    diffs, skipped = compare(a, b)
    print(f"{_leaves(a)} leaves; {skipped} volatile skipped; {len(diffs)} differences")
    for line in diffs:
        print(f"  {line}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
