"""``safesteer planted``: the method's maths end to end on planted synthetic data (no model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from safesteer import validation as v

NAME = "planted"
HELP = "Run the maths end to end on planted synthetic data and print what it did (no model)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer planted``."""
    parser.add_argument("--out", type=v.output_dir, default="runs/planted", help="output folder")
    parser.add_argument("--seed", type=v.seed, default=0)
    parser.add_argument("--source-dim", type=v.int_at_least(2), default=96)
    parser.add_argument("--target-dim", type=v.int_at_least(2), default=128)
    parser.add_argument(
        "--anchors", type=v.int_at_least(50), default=2000, help="number of benign anchors"
    )
    parser.add_argument("--alpha", type=v.alpha, default=1.0, help="steering strength")
    parser.add_argument("--false-trigger-rate", type=v.open_fraction, default=0.05)


def run(args: argparse.Namespace) -> int:
    """Run :func:`safesteer.jobs.planted.run_planted`."""
    from safesteer.errors import InputError
    from safesteer.jobs.planted import run_planted

    if args.target_dim < args.source_dim:
        raise InputError(
            f"--target-dim {args.target_dim} < --source-dim {args.source_dim}",
            hint="the planted map is semi-orthogonal from source into a larger target space",
        )
    run_planted(
        Path(args.out),
        seed=args.seed,
        ds=args.source_dim,
        dt=args.target_dim,
        n_anchors=args.anchors,
        alpha=args.alpha,
        false_trigger_rate=args.false_trigger_rate,
    )
    return 0
