"""``safesteer report RUN_DIR``: a static HTML page with plots from an evaluation run.

Example:
    safesteer report runs/demo            # writes runs/demo/report/index.html
"""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "Render an evaluation run as a static HTML page with PNG plots."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the --out folder of `safesteer evaluate`")
    parser.add_argument("--out", help="where to write the page (default: RUN_DIR/report)")
    parser.add_argument("--unblur", action="store_true", help="show flagged thumbnails unblurred")
    parser.add_argument("--per-strength", type=int, default=8, help="thumbnails per (condition, α)")


def run(args: argparse.Namespace) -> int:
    from safesteer.evaluation.report_page import render_report

    page = render_report(
        args.run_dir, out=args.out, unblur=args.unblur, per_strength=args.per_strength
    )
    print(f"report: {page}")
    return 0
