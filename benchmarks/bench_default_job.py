"""Benchmark: wall time and peak memory of the default job, cold (empty caches) and warm.

Runs ``safesteer demo`` twice in fresh subprocesses with ``SAFESTEER_CACHE`` pointed at a new
temporary folder: the first run starts from nothing (dequantised model copies and pooled-state
caches are rebuilt), the second reuses them. Peak memory is the child's max RSS.

Usage: ``python benchmarks/bench_default_job.py [--quick] [extra demo args...]``
(``--quick``: 600 anchors, MiniLM only — a smoke check, not the figure to report).
Aims (issue 6): cold < 5 min, warm < 90 s on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the child reports its own peak resident memory (ru_maxrss, KiB on Linux) after the job
_CHILD = (
    "import resource, sys; from safesteer.cli import main; rc = main(sys.argv[1:]); "
    "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
)


def run_once(cache: Path, out: Path, extra: list[str]) -> dict[str, object]:
    """One ``safesteer demo`` in a subprocess; returns wall seconds and peak RSS (MiB)."""
    env = {**os.environ, "SAFESTEER_CACHE": str(cache)}
    cmd = [sys.executable, "-c", _CHILD, "demo", "--out", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"demo failed with status {proc.returncode}")
    lines = proc.stdout.splitlines()
    peak_kib = int(next(line for line in lines if line.startswith("PEAK_RSS_KIB")).split()[1])
    summary = [line for line in lines if line.startswith(("[", "safesteer"))]
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(peak_kib / 1024, 1), "summary": summary}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    extra = [a for a in argv if a != "--quick"]
    if quick:
        extra = ["--target", "minilm-l6", "--anchors", "600", *extra]
    with tempfile.TemporaryDirectory(prefix="safesteer-bench-") as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "out"
        cold = run_once(cache, out / "cold", extra)
        warm = run_once(cache, out / "warm", extra)
    result = {
        "what": "safesteer demo wall time and peak RSS (subprocess), cold = empty SAFESTEER_CACHE",
        "cpus": os.cpu_count(),
        "args": extra,
        "cold": cold,
        "warm": warm,
        "aims": {"cold_s": 300, "warm_s": 90},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
