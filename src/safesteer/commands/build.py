"""``safesteer build``: one safety pack from a source, a layer, a target and a map kind.

The source model is loaded, read and freed before the target loads (peak memory: the larger
of the two), after a memory estimate from the models' configs (:mod:`safesteer.jobs.staged_build`).
"""

from __future__ import annotations

import argparse

from safesteer import validation as v
from safesteer.commands._model_options import add_model_options
from safesteer.maths.alignment import MAPS
from safesteer.maths.calibration import CALIBRATIONS

NAME = "build"
HELP = "Build one safety pack (source direction carried to a target by a benign-only map)."


def _layer(text: str) -> int | str:
    """``auto`` or a layer index ≥ 0 (the upper bound is checked once the model is known)."""
    return text if text == "auto" else v.non_negative_int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer build``."""
    parser.add_argument(
        "--source", default=None, help="source preset (smollm2-135m…) or model id / path"
    )
    parser.add_argument(
        "--layer",
        type=_layer,
        default=None,
        help="source layer to read, or 'auto' (best held-out AUROC on source-side pairs)",
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
    parser.add_argument(
        "--native",
        action="store_true",
        help="build the native baseline instead: directions from the target's own states of "
        "the pairs (target-side unsafe data, which the method avoids); no source needed",
    )
    parser.add_argument(
        "--gate-reader",
        default=None,
        help="a smaller model for the source gate (e.g. smollm2-135m for a 7B source): the gate "
        "is fitted on its states of the same benign anchors, and generation loads only it",
    )
    parser.add_argument(
        "--gate-layer", type=_layer, default="auto", help="layer of --gate-reader (default auto)"
    )
    add_model_options(parser, memory_check=True)


def run(args: argparse.Namespace) -> int:
    """Build the pack and save it."""
    from safesteer.data import read_anchors, read_pairs
    from safesteer.errors import InputError
    from safesteer.jobs.staged_build import BuildPlan, build_staged

    if not args.native and (args.source is None or args.layer is None):
        raise InputError(
            "build needs --source and --layer (or --native for the target-side baseline)",
            hint="e.g. --source smollm2-135m --layer auto",
        )
    pairs = read_pairs(args.pairs) if args.pairs else None
    anchors = read_anchors(args.anchors) if args.anchors else None
    plan = BuildPlan(
        source=args.source or "",
        layer=args.layer if args.layer is not None else "auto",
        target=args.target,
        map_kind=args.map,
        calibration=args.calibration,
        pairs=tuple(pairs) if pairs is not None else None,
        anchors=tuple(anchors) if anchors is not None else None,
        native=args.native,
        gate_reader=args.gate_reader,
        gate_layer=args.gate_layer,
        dtype=args.dtype,
        device=args.device,
        offload=args.offload,
        force=args.skip_memory_check,
    )
    pack, _ = build_staged(plan)
    path = pack.save(args.out)
    what = (
        "native baseline (target-side unsafe data)"
        if args.native
        else f"{args.source} layer {pack.provenance.get('source_layer')}"
    )
    print(
        f"wrote {path}: {what} → {pack.target_id} "
        f"({pack.conditioning_space}, d={pack.dim}), map {args.map if not args.native else '–'}, "
        f"‖v_t‖={float(pack.global_vector.norm()):.3f}, "
        f"categories {', '.join(pack.categories) or 'none'}, "
        f"max_sequence_length {pack.encoding.get('max_sequence_length')}"
    )
    return 0
