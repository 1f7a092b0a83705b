"""Benchmark: wall time and peak memory of the default job, cold and warm, ours vs a baseline.

Runs ``safesteer demo`` in fresh subprocesses with ``SAFESTEER_CACHE`` pointed at a new
temporary folder: the cold run starts from nothing (dequantised model copies and pooled-state
caches are rebuilt), the warm run reuses them. Peak memory is the child's max RSS. The baseline
is the same job on the code of ``--baseline-ref`` (default ``2837ee6``, the commit before the
speed work), extracted with ``git archive`` and run the same way in the same run (its own
cold/warm cache), alternating with ours. The lines the job logs about where its time went
(models loaded, prompts pooled, targets reported) are printed for both.

Usage: ``python benchmarks/bench_default_job.py [--quick] [--baseline-ref REF|none]
[-- extra demo args...]`` (``--quick``: 600 anchors, MiniLM only — a smoke check).
Aims (issue 15, for the real-data job): cold < 120 s, warm < 15 s, peak < 4 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _figures import figure  # noqa: E402

# the child reports its own peak resident memory (ru_maxrss, KiB on Linux) after the job
_CHILD = (
    "import resource, sys; from safesteer.cli import main; rc = main(sys.argv[1:]); "
    "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
)
_TIMING_WORDS = ("loaded in", "pooled", " in ", "source layer")


def run_once(src: Path, cache: Path, out: Path, extra: list[str]) -> dict[str, object]:
    """One ``safesteer demo`` in a subprocess on the code in ``src``; wall s, peak RSS (MiB)."""
    env = {**os.environ, "SAFESTEER_CACHE": str(cache), "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-c", _CHILD, "demo", "--out", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"demo failed with status {proc.returncode}")
    lines = proc.stdout.splitlines()
    peak_kib = int(next(line for line in lines if line.startswith("PEAK_RSS_KIB")).split()[1])
    log = [line for line in lines if any(w in line for w in _TIMING_WORDS)][:12]
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(peak_kib / 1024, 1), "log": log}


def baseline_src(ref: str, into: Path) -> Path:
    """``src/`` of ``ref`` (git archive), so the baseline runs the code of that commit."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", ref, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 anchors, MiniLM only")
    parser.add_argument("--baseline-ref", default="2837ee6", help="git ref, or none")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    if args.quick:
        extra = ["--target", "minilm-l6", "--anchors", "600", *extra]
    ours_src = HERE.parent / "src"
    with tempfile.TemporaryDirectory(prefix="safesteer-bench-") as tmp:
        root = Path(tmp)
        sources = {"ours": ours_src}
        if args.baseline_ref.lower() != "none":
            sources["baseline"] = baseline_src(args.baseline_ref, root / "baseline")
        results: dict[str, dict[str, dict[str, object]]] = {k: {} for k in sources}
        for phase in ("cold", "warm"):
            order = list(sources) if phase == "cold" else list(sources)[::-1]
            for name in order:
                r = run_once(
                    sources[name], root / f"cache-{name}", root / f"out-{name}-{phase}", extra
                )
                results[name][phase] = r
                print(
                    f"  {name:8s} {phase}: {r['wall_s']:7.1f} s wall, peak RSS "
                    f"{r['peak_rss_mib']:7.1f} MiB",
                    flush=True,
                )
                for line in r["log"]:  # type: ignore[union-attr]
                    print(f"      {line}")
    print(
        f"bench_default_job: safesteer demo {' '.join(extra) or '(defaults)'}; {os.cpu_count()} "
        f"CPUs shared with other processes; cold = empty SAFESTEER_CACHE (includes converting "
        f"the GGUF models); baseline = the code of {args.baseline_ref}"
    )
    ours, base = results["ours"], results.get("baseline", {})
    for phase, aim in (("cold", 120.0), ("warm", 15.0)):
        figure(
            f"default job {phase} wall ({'quick' if args.quick else 'defaults'})",
            float(ours[phase]["wall_s"]),  # type: ignore[arg-type]
            float(base[phase]["wall_s"]) if base else float("nan"),  # type: ignore[arg-type]
            "s",
            max_ours=aim,
            baseline_is=f"the job on {args.baseline_ref}",
            note="aim is for the real-data job (issue 15)",
        )
    peak = max(float(ours[p]["peak_rss_mib"]) for p in ours) / 1024  # type: ignore[arg-type]
    base_peak = max(float(base[p]["peak_rss_mib"]) for p in base) / 1024 if base else float("nan")  # type: ignore[arg-type]
    figure(
        f"default job peak RSS ({'quick' if args.quick else 'defaults'})",
        peak,
        base_peak,
        "GB",
        max_ours=4.0,
        baseline_is=f"the job on {args.baseline_ref}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
