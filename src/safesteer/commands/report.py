"""``safesteer report RUN_DIR``: a static HTML page with plots from an evaluation run.

Example:
    safesteer report runs/demo            # writes runs/demo/report/index.html
"""

from __future__ import annotations

import argparse

from safesteer import validation as v

NAME = "report"
HELP = "Render an evaluation run as a static HTML page with PNG plots."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", type=v.input_dir, help="the --out folder of `safesteer evaluate`"
    )
    parser.add_argument(
        "--out", type=v.output_dir, help="where to write the page (default: RUN_DIR/report)"
    )
    parser.add_argument("--unblur", action="store_true", help="show flagged thumbnails unblurred")
    parser.add_argument(
        "--per-strength",
        type=v.non_negative_int,
        default=8,
        help="thumbnails per (condition, α); 0: none",
    )


def run(args: argparse.Namespace) -> int:
    from safesteer.evaluation.report_page import render_report

    if args.out is None:  # the default folder inside the run: checked like a given one
        v.check_output_dir(args.run_dir / "report", "report folder")

    page = render_report(
        args.run_dir, out=args.out, unblur=args.unblur, per_strength=args.per_strength
    )
    print(f"report: {page}")
    return 0
