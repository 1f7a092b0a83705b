"""``safesteer build``: one safety pack from a source, a layer, a target and a map kind.

The source model is loaded, read and freed before the target loads (peak memory: the larger
of the two), after a memory estimate from the models' configs (:mod:`safesteer.jobs.staged_build`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from safesteer import validation as v
from safesteer.commands._model_options import add_model_options
from safesteer.data import sources
from safesteer.errors import InputError
from safesteer.maths.alignment import MAPS
from safesteer.maths.calibration import CALIBRATIONS
from safesteer.maths.directions import DIRECTION_KINDS

NAME = "build"
HELP = "Build one safety pack (source direction carried to a target by a benign-only map)."


def _layer(text: str) -> int | str:
    """``auto`` or a layer index ≥ 0 (the upper bound is checked once the model is known)."""
    return text if text == "auto" else v.non_negative_int(text)


def _extra_source(text: str) -> tuple[str, int | str]:
    """``NAME`` or ``NAME@LAYER`` (layer an index ≥ 0 or ``auto``; default ``auto``)."""
    name, at, layer = text.partition("@")
    if not name or (at and not layer):
        raise InputError(
            f"{text!r} is not a source", hint="write a preset or model id, e.g. gemma3-270m@auto"
        )
    return name, (_layer(layer) if at else "auto")


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
        "--pairs",
        type=sources.pairs_spec,
        default=None,
        help="safe/unsafe pairs: a named set (safesteer, safesteer:train, safesteer:test, ours…) "
        "or a JSON-lines file (safe, unsafe, category[, subcategory]); default: the library's",
    )
    parser.add_argument(
        "--anchors",
        type=sources.anchors_spec,
        default=None,
        help="benign anchors: named sets (all, parti, compbench, geneval, safesteer-safe, ours; "
        "comma-joined; [:N] for at most N), hf:<owner/name>[:config][@rev][/split][#column] "
        "(hf:wikitext, hf:coco, hf:flickr; cached), or a prompt file; default: the library's",
    )
    parser.add_argument(
        "--direction",
        choices=list(DIRECTION_KINDS),
        default="difference-of-means",
        help="source direction estimator: the paper's difference of means (default) or a "
        "shrunk-LDA direction Σ⁻¹(μ_safe − μ_unsafe) (an option: it transports worse)",
    )
    parser.add_argument(
        "--also-source",
        type=v.arg_type(_extra_source, "source"),
        action="append",
        default=[],
        metavar="NAME[@LAYER]",
        help="a further source model (repeatable): every source's carried directions are "
        "averaged (unit vectors, mean calibrated length); read one model at a time",
    )
    parser.add_argument(
        "--to-projection-q",
        type=v.open_fraction,
        default=None,
        help="benign quantile recorded as τ of the 'to-projection' steering rule "
        "(default 0.95; used by generate --rule to-projection)",
    )
    parser.add_argument(
        "--per",
        choices=list(sources.GROUPINGS),
        default="category",
        help="fit one direction per category (default) or per subcategory (SafeSteerDataset: 23)",
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


def check_options(args: argparse.Namespace) -> None:
    """Combinations argparse cannot see, refused before anything loads."""
    if not args.native and (args.source is None or args.layer is None):
        raise InputError(
            "build needs --source and --layer (or --native for the target-side baseline)",
            hint="e.g. --source smollm2-135m --layer auto",
        )
    if args.native and (args.also_source or args.direction != "difference-of-means"):
        raise InputError(
            "--also-source and --direction choose how the source direction is made; a --native "
            "pack has no source",
            hint="drop them, or drop --native",
        )
    if args.source in {name for name, _ in args.also_source}:
        raise InputError(
            f"--also-source {args.source} is the --source itself",
            hint="name each source model once",
        )
    v.check_distinct([name for name, _ in args.also_source], "--also-source")


def run(args: argparse.Namespace) -> int:
    """Build the pack and save it."""
    from safesteer.jobs.staged_build import BuildPlan, build_staged

    check_options(args)
    # specs resolve (files read, hub sets downloaded or read from the cache) before any model
    pairs_src = sources.resolve_pairs(args.pairs) if args.pairs else None
    if args.per != "category" and pairs_src is None:
        pairs_src = sources.resolve_pairs(sources.DEFAULT_PAIRS)
    anchors_src = sources.resolve_anchors(args.anchors) if args.anchors else None
    pairs, groups = (
        sources.group_pairs(pairs_src.items, args.per) if pairs_src is not None else (None, {})
    )
    anchors = anchors_src.items if anchors_src is not None else None
    plan = BuildPlan(
        source=args.source or "",
        layer=args.layer if args.layer is not None else "auto",
        target=args.target,
        map_kind=args.map,
        calibration=args.calibration,
        pairs=tuple(pairs) if pairs is not None else None,
        anchors=tuple(anchors) if anchors is not None else None,
        anchor_groups=anchors_src.groups if anchors_src is not None else None,
        native=args.native,
        gate_reader=args.gate_reader,
        gate_layer=args.gate_layer,
        direction_kind=args.direction,
        more_sources=tuple(args.also_source),
        **({} if args.to_projection_q is None else {"to_projection_q": args.to_projection_q}),
        dtype=args.dtype,
        device=args.device,
        offload=args.offload,
        force=args.skip_memory_check,
    )
    pack, _ = build_staged(plan)
    pack = _with_data_record(pack, pairs_src, anchors_src, args.per, groups)
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
    print(f"data: {pack.provenance.get('data')}")
    return 0


def _with_data_record(
    pack: Any,
    pairs: sources.Resolved[Any] | None,
    anchors: sources.Resolved[str] | None,
    per: str,
    groups: dict[str, str],
) -> Any:
    """The pack with its provenance saying which data built it: specs, labels, licences and
    the direction grouping (a source the user did not name keeps the library's own record)."""
    if pairs is None and anchors is None:
        return pack
    prov = dict(pack.provenance)
    said = []
    licences = dict(prov.get("data_licenses") or {})
    for role, src in (("pairs", pairs), ("anchors", anchors)):
        if src is not None:
            prov.update(src.provenance(role))
            licences.update(src.licences)
            said.append(f"{role}: {src.label}")
        else:
            said.append(f"{role}: {prov.get(f'{role}_label', 'the library default')}")
    prov["data"] = "; ".join(said)
    if licences:
        prov["data_licenses"] = licences
    prov["direction_groups"] = per
    if per != "category":
        prov["group_categories"] = dict(sorted(groups.items()))
    return replace(pack, provenance=prov)
