"""Write ``docs/results.md`` from a default-job ``metrics.json`` (generated, never typed by hand).

Usage: ``python scripts/results_doc.py RUN/metrics.json docs/results.md`` (``make results-doc``
runs the default job first).
"""

from __future__ import annotations

from safesteer.jobs.default.results_doc import main

if __name__ == "__main__":
    raise SystemExit(main())
