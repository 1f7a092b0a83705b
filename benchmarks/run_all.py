"""Run every ``benchmarks/bench_*.py`` and end with one summary table of their figures.

Each script prints its own details and one ``FIGURE {...}`` line per figure (ours, a baseline
measured in the same run, their ratio, the aim; :mod:`_figures`). This runner streams their
output, then prints one line per figure: ours, baseline, ratio, aim, met?

    python benchmarks/run_all.py            # default sizes (tens of minutes on 2 busy cores)
    python benchmarks/run_all.py --quick    # every script's --quick size
    python benchmarks/run_all.py --only maps pooling

``make bench`` runs it (``make bench BENCH_ARGS=--quick``). Exit status 1 if a script failed;
unmet aims are reported, not failures (timings depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _figures import PREFIX  # noqa: E402


def _fmt(value: Any, unit: str) -> str:
    if not isinstance(value, int | float) or value != value:  # None or NaN
        return "-"
    return f"{value:.3g} {unit}"


def table(figures: list[dict[str, Any]]) -> str:
    """The summary: one line per figure."""
    rows = [("figure", "ours", "baseline", "ratio", "aim", "met?")]
    for f in figures:
        met = {True: "yes", False: "NO", None: "-"}[f.get("met")]
        ratio = f.get("ratio")
        rows.append(
            (
                f["name"],
                _fmt(f.get("ours"), f.get("unit", "")),
                _fmt(f.get("baseline"), f.get("unit", "")),
                "-" if ratio is None or ratio != ratio else f"{ratio:.3f}",
                f.get("aim", "-"),
                met,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths[0] = min(widths[0], 96)
    lines = []
    for k, r in enumerate(rows):
        cells = [r[0][: widths[0]].ljust(widths[0])]
        cells += [r[i].rjust(widths[i]) for i in (1, 2, 3)]
        cells += [r[4].ljust(widths[4]), r[5]]
        lines.append("  ".join(cells))
        if k == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each script's --quick size")
    parser.add_argument("--only", nargs="+", help="names after bench_, e.g. maps pooling")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    figures: list[dict[str, Any]] = []
    failed = []
    t0 = time.perf_counter()
    for script in scripts:
        print(f"=== {script.name}{' --quick' if args.quick else ''}", flush=True)
        cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                if line.startswith(PREFIX):
                    figures.append({"script": script.stem, **json.loads(line[len(PREFIX) :])})
        if proc.returncode != 0:
            failed.append(script.name)
    print(f"\n=== summary ({len(figures)} figures, {time.perf_counter() - t0:.0f} s)")
    print("ratio = ours / baseline, both measured in the same run (lower is better)")
    print(table(figures))
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
