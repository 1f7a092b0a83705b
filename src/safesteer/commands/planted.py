"""``safesteer planted``: the method's maths end to end on planted synthetic data (no model)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "planted"
HELP = "Run the maths end to end on planted synthetic data and print what it did (no model)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer planted``."""
    parser.add_argument("--out", type=Path, default=Path("runs/planted"), help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source-dim", type=int, default=96)
    parser.add_argument("--target-dim", type=int, default=128)
    parser.add_argument("--anchors", type=int, default=2000, help="number of benign anchors")
    parser.add_argument("--alpha", type=float, default=1.0, help="steering strength")
    parser.add_argument("--false-trigger-rate", type=float, default=0.05)


def run(args: argparse.Namespace) -> int:
    """Run :func:`safesteer.jobs.planted.run_planted`."""
    from safesteer.errors import InputError
    from safesteer.jobs.planted import run_planted

    if args.target_dim < args.source_dim:
        raise InputError(
            f"--target-dim {args.target_dim} < --source-dim {args.source_dim}",
            hint="the planted map is semi-orthogonal from source into a larger target space",
        )
    if args.anchors < 50:
        raise InputError(f"--anchors {args.anchors} is too few", hint="use at least 50")
    run_planted(
        args.out,
        seed=args.seed,
        ds=args.source_dim,
        dt=args.target_dim,
        n_anchors=args.anchors,
        alpha=args.alpha,
        false_trigger_rate=args.false_trigger_rate,
    )
    return 0
