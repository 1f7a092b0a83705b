"""``results.md``: the default job's per-set results as markdown, generated from ``metrics.json``.

The job writes ``<out>/results.md``; ``docs/results.md`` is the same file from the reference run
(``make results-doc``, or ``python scripts/results_doc.py <out>/metrics.json docs/results.md``).
Nothing in it is typed by hand.

Example:
    >>> render({"what": "w", "summary": {"lines": ["a line"]}}).splitlines()[0]
    '# safesteer default job: results'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from safesteer.atomic import write_text_atomic


def render(metrics: dict[str, Any]) -> str:
    """Markdown of a ``metrics.json`` (its summary lines, then every per-set table)."""
    lines = [
        "# safesteer default job: results",
        "",
        "Generated from `metrics.json` by `safesteer.jobs.default.results_doc` — do not edit "
        "by hand. " + str(metrics.get("what", "")) + ".",
        "",
        "## Summary (as printed by the job)",
        "",
        *(f"- {line}" for line in metrics.get("summary", {}).get("lines", [])),
    ]
    seconds = metrics.get("seconds")
    if isinstance(seconds, float):
        env = metrics.get("environment", {})
        software = ", ".join(f"{k} {v}" for k, v in env.items() if k != "platform")
        lines += ["", f"Run time: {seconds:.0f} s ({software})."]
    if "targets" in metrics:
        from safesteer.jobs.default.tables import all_tables

        for table in all_tables(metrics):
            lines += ["", table.markdown(level=2)]
    return "\n".join(lines) + "\n"


def write_results(metrics: dict[str, Any], path: Path) -> Path:
    """Write :func:`render` of ``metrics`` to ``path`` (atomically)."""
    write_text_atomic(path, render(metrics))
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m safesteer.jobs.default.results_doc METRICS_JSON OUT_MD``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m safesteer.jobs.default.results_doc METRICS_JSON OUT_MD")
        return 2
    write_results(json.loads(Path(args[0]).read_text()), Path(args[1]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
