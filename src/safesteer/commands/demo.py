"""``safesteer demo``: the default job — build and judge safety packs end to end.

Offline it runs on the packaged models (SmolLM2-135M → Gemma-3-270M and MiniLM). With
``--source`` / ``--target`` set to a user's models it runs the same report on the generator's
real conditioning states.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safesteer import validation as v
from safesteer.commands._model_options import add_model_options
from safesteer.maths.alignment import MAPS
from safesteer.maths.calibration import CALIBRATIONS
from safesteer.maths.gating import GATE_SCORES

NAME = "demo"
HELP = "Run the default job: build packs on real models and write the transfer report."


#: fewest map-fit anchors the job reads (spread over the fit sets; other parts get half per set)
MIN_ANCHORS = 60


def _layer(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return v.non_negative_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; or 'auto'") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer demo``."""
    from safesteer.jobs.default.config import DEFAULT_LAYER, DEFAULT_SOURCE, DEFAULT_TARGETS

    parser.add_argument("--out", type=v.output_dir, default="runs/default", help="output folder")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="source preset or model id / path")
    parser.add_argument(
        "--target",
        action="append",
        default=None,
        help="target preset or diffusers pipeline id (repeatable; default: "
        f"{', '.join(DEFAULT_TARGETS)})",
    )
    parser.add_argument(
        "--layer", type=_layer, default=DEFAULT_LAYER, help="source layer or 'auto'"
    )
    parser.add_argument(
        "--map", action="append", choices=list(MAPS), default=None, help="map kinds (repeatable)"
    )
    parser.add_argument("--calibration", choices=list(CALIBRATIONS), default="beta")
    parser.add_argument(
        "--gate-score",
        choices=list(GATE_SCORES),
        default="whitened",
        help="how the source gate (the default gating mode) scores a prompt",
    )
    from safesteer.jobs.default.config import JobConfig
    from safesteer.jobs.default.splits import ANCHOR_SETS, PAIR_SOURCES

    parser.add_argument(
        "--pairs",
        choices=list(PAIR_SOURCES),
        default=PAIR_SOURCES[0],
        help="safe/unsafe pairs: SafeSteerDataset (MIT; default) or ours",
    )
    parser.add_argument(
        "--anchor-set",
        choices=list(ANCHOR_SETS),
        default=ANCHOR_SETS[0],
        help="map-fit anchors: all (real sets + SafeSteer safe halves + ours; default) or ours",
    )
    parser.add_argument(
        "--anchors",
        type=v.int_at_least(MIN_ANCHORS),
        default=JobConfig.n_anchors,
        help="map-fit anchors read, spread over the fit sets (as many per test part; half as "
        f"many per calibration and probe part; at least {MIN_ANCHORS})",
    )
    parser.add_argument(
        "--max-pairs",
        type=v.int_at_least(2),
        default=JobConfig.max_pairs,
        help="pairs read per pair part (direction, judge, test; the probes need 2 or more)",
    )
    parser.add_argument(
        "--all-data",
        action="store_true",
        help="read every prompt of every part (ignores --anchors and --max-pairs; slow on CPU)",
    )
    parser.add_argument(
        "--images",
        type=v.non_negative_int,
        default=2,
        help="random-weight images per target (0: none)",
    )
    from safesteer.jobs.default.variants import VARIANT_LEVELS

    parser.add_argument(
        "--variants",
        choices=list(VARIANT_LEVELS),
        default=VARIANT_LEVELS[0],
        help="issue 11's reported variants (anchors kinds, steering rules, MLP transport, ridge "
        "λ rule, two sources): all (default) or none; never change the default pack",
    )
    parser.add_argument("--seed", type=v.seed, default=0)
    from safesteer.evaluation.protocol import PRESETS

    parser.add_argument(
        "--protocol",
        choices=list(PRESETS),
        default=None,
        help="image evaluation of a pipeline target (default: quick for tiny-<family>, paper "
        "otherwise; paper needs --q16-prompts)",
    )
    parser.add_argument(
        "--q16-prompts",
        type=v.input_file,
        default=None,
        help="Q16 prompt embeddings (from safesteer convert-q16)",
    )
    parser.add_argument(
        "--fid-reference", type=v.input_dir, default=None, help="reference images folder for FID"
    )
    parser.add_argument(
        "--clip-model", default=None, help="CLIP for CLIP-score / Q16 (hub id, folder, random)"
    )
    parser.add_argument(
        "--steps", type=v.positive_int, default=None, help="denoising steps of the image evaluation"
    )
    parser.add_argument(
        "--size", type=v.positive_int, default=None, help="image size of the evaluation"
    )
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run the job and print its summary."""
    from safesteer.data.partitions import benign_parts
    from safesteer.jobs.default import DEFAULT_TARGETS, JobConfig, run_default_job
    from safesteer.jobs.default.splits import FIT_SETS

    fit_sets = FIT_SETS if args.anchor_set == "all" else ("ours",)
    available = sum(len(benign_parts()[n]["fit"]) for n in fit_sets)
    if args.anchors > available:
        v.refuse(
            f"--anchors {args.anchors}: we ship {available} benign map-fit anchors "
            f"({args.anchor_set})",
            f"use {MIN_ANCHORS}..{available}, or --all-data",
        )
    config = JobConfig(
        out=Path(args.out),
        source=args.source,
        targets=tuple(args.target or DEFAULT_TARGETS),
        layer=args.layer,
        maps=tuple(args.map or MAPS),
        calibration=args.calibration,
        gate_score=args.gate_score,
        pairs=args.pairs,
        anchor_set=args.anchor_set,
        n_anchors=None if args.all_data else args.anchors,
        max_pairs=None if args.all_data else args.max_pairs,
        n_images=args.images,
        variants=args.variants,
        seed=args.seed,
        protocol=args.protocol,
        q16_prompts=args.q16_prompts,
        fid_reference=args.fid_reference,
        clip_model=args.clip_model,
        steps=args.steps,
        size=args.size,
        dtype=args.dtype,
        device=args.device,
        offload=args.offload,
    )
    run_default_job(config)
    print(f"wrote {args.out}/index.html, metrics.json and packs/")
    return 0
