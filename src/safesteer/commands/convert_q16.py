"""``safesteer convert-q16``: Q16's ``prompts.p`` → safetensors, without executing the pickle.

Example:
    safesteer convert-q16 prompts.p ~/.cache/safesteer/q16/ViT-L-14.safetensors

The pickle is read by a restricted unpickler that accepts numpy arrays only
(:mod:`safesteer.evaluation.q16_convert`); a ``torch.save`` file by
``torch.load(weights_only=True)``. Anything else is refused with exit status 2.
"""

from __future__ import annotations

import argparse

from safesteer import validation as v

NAME = "convert-q16"
HELP = "Convert Q16's prompts.p to safetensors (restricted loader: numpy arrays only, no code)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer convert-q16``."""
    parser.add_argument(
        "prompts", type=v.input_file, help="Q16's prompts.p (data/ViT-L-14/prompts.p)"
    )
    parser.add_argument("out", type=v.output_file, help="output file (.safetensors)")
    parser.add_argument(
        "--expect-dim",
        type=v.positive_int,
        default=768,
        help="embedding size to insist on (ViT-L/14: 768)",
    )


def run(args: argparse.Namespace) -> int:
    """Convert and print what was written."""
    from safesteer.evaluation.q16_convert import convert_q16

    info = convert_q16(args.prompts, args.out, expect_dim=args.expect_dim)
    print(
        f"wrote {args.out}: Q16 prompts {info['shape']} (rows {', '.join(info['rows'])}; "
        f"input {info['dtype_in']}, sha256 {info['input_sha256'][:16]}…); "
        f"use it with --q16-prompts {args.out}"
    )
    return 0
