"""``safesteer build``: one safety pack from a source, a layer, a target and a map kind."""

from __future__ import annotations

import argparse

from safesteer import validation as v
from safesteer.maths.alignment import MAPS
from safesteer.maths.calibration import CALIBRATIONS

NAME = "build"
HELP = "Build one safety pack (source direction carried to a target by a benign-only map)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer build``."""
    parser.add_argument(
        "--source", required=True, help="source preset (smollm2-135m…) or model id / path"
    )
    parser.add_argument(
        "--layer", type=v.non_negative_int, required=True, help="source layer to read"
    )
    parser.add_argument(
        "--target", required=True, help="target preset (gemma3-270m, minilm-l6) or pipeline id"
    )
    parser.add_argument("--map", choices=list(MAPS), default="procrustes")
    parser.add_argument("--calibration", choices=list(CALIBRATIONS), default="beta")
    parser.add_argument(
        "--out", type=v.output_file, required=True, help="pack file to write (.safetensors)"
    )
    parser.add_argument(
        "--pairs", type=v.text_file, default=None, help="pairs file (jsonl: safe, unsafe, category)"
    )
    parser.add_argument(
        "--anchors", type=v.prompt_file, default=None, help="benign anchors file (txt/csv/jsonl…)"
    )


def run(args: argparse.Namespace) -> int:
    """Build the pack and save it."""
    from safesteer.build import build_pack
    from safesteer.data import read_anchors, read_pairs
    from safesteer.models import load_source
    from safesteer.targets import load_target

    # the paths were checked by argparse (validation types); the files are read before any
    # model loads, so a bad line fails in a second, not after the build
    pairs = read_pairs(args.pairs) if args.pairs else None
    anchors = read_anchors(args.anchors) if args.anchors else None
    target, _ = load_target(args.target)  # the target first: a wrong id fails before the read
    source = load_source(args.source)
    pack = build_pack(
        source,
        args.layer,
        target,
        args.map,
        pairs=pairs,
        anchors=anchors,
        calibration=args.calibration,
    )
    path = pack.save(args.out)
    print(
        f"wrote {path}: {args.source} layer {args.layer} → {pack.target_id} "
        f"({pack.conditioning_space}, d={pack.dim}), map {args.map}, "
        f"‖v_t‖={float(pack.global_vector.norm()):.3f}, "
        f"categories {', '.join(pack.categories) or 'none'}"
    )
    return 0
