"""Shared by the benchmarks: one printed line per figure, read back by ``run_all.py``.

Every figure is ours against a baseline measured **in the same run** (house rule), so a
figure line carries both, their ratio, the aim and whether it is met::

    FIGURE {"name": ..., "ours": 2.1, "baseline": 4.0, "unit": "s", "ratio": 0.525, ...}

``aim`` is a ratio bound (``"ratio <= 1.05"``) or an absolute one (``"ours < 10 s"``).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

PREFIX = "FIGURE "


def figure(
    name: str,
    ours: float,
    baseline: float,
    unit: str,
    *,
    max_ratio: float | None = None,
    max_ours: float | None = None,
    baseline_is: str = "",
    note: str = "",
) -> dict[str, Any]:
    """Print one figure line (and return it). ``met`` is None when no aim is given."""
    ratio = ours / baseline if baseline else float("nan")
    aims, met = [], []
    if max_ratio is not None:
        aims.append(f"ratio <= {max_ratio:g}")
        met.append(ratio <= max_ratio)
    if max_ours is not None:
        aims.append(f"ours < {max_ours:g} {unit}")
        met.append(ours < max_ours)
    record = {
        "name": name,
        "ours": round(ours, 4),
        "baseline": round(baseline, 4),
        "unit": unit,
        "ratio": round(ratio, 4),
        "baseline_is": baseline_is,
        "aim": " and ".join(aims) or "-",
        "met": all(met) if met else None,
        "note": note,
    }
    print(PREFIX + json.dumps(record), flush=True)
    return record


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Minimum wall seconds of ``repeats`` calls (the least-disturbed run on a shared box)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def alternate(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each function, interleaved ``repeats`` times in a rotating order (load
    drifts hit every function alike)."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for rep in range(repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            fn = fns[name]
            t = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)
