"""``safesteer layers``: score every source layer and show the ``auto`` choice.

The score is that of :mod:`safesteer.models.layers`: AUROC of held-out safe vs unsafe
projections on the difference-of-means direction, cross-fitted on our train pairs.
"""

from __future__ import annotations

import argparse

from safesteer import validation as v
from safesteer.commands._model_options import add_model_options

NAME = "layers"
HELP = "Score every source layer on held-out pairs and print the 'auto' layer choice."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer layers``."""
    parser.add_argument(
        "--source",
        default="smollm2-135m",
        help="source preset, hub id or local folder (default: smollm2-135m)",
    )
    parser.add_argument("--gguf-file", default=None, help="GGUF file inside --source's folder")
    parser.add_argument(
        "--folds", type=v.int_at_least(2), default=2, help="cross-fitting folds (default: 2)"
    )
    parser.add_argument(
        "--chat-template", action="store_true", help="read prompts inside the chat template"
    )
    parser.add_argument("--no-cache", action="store_true", help="do not use the state cache")
    add_model_options(parser, offload=False)


def run(args: argparse.Namespace) -> int:
    """Print one line per layer, then the chosen layer."""
    from safesteer.data import load_pairs
    from safesteer.models import SourceReader, best_layer, score_layers

    reader = SourceReader.from_pretrained(
        args.source,
        gguf_file=args.gguf_file,
        chat_template=args.chat_template,
        cache=not args.no_cache,
        dtype=args.dtype,
        device=args.device,
    )
    pairs = load_pairs("train")
    scores = score_layers(reader, pairs=pairs, folds=args.folds)
    print(
        f"# source: {reader.model_id} (real weights, {reader.dtype} on {reader.device}); "
        "pairs: safesteer (ours) train split, "
        f"{len(pairs)} pairs, {args.folds}-fold cross-fitted, stratified by category"
    )
    print(
        "# score: AUROC of held-out safe vs unsafe projections on the difference-of-means "
        "direction; tie-break: pair accuracy"
    )
    print(f"{'layer':>5}  {'auroc':>6}  {'pair_acc':>8}  {'|v_s|':>9}")
    for s in scores:
        print(f"{s.layer:>5}  {s.auroc:6.3f}  {s.pair_accuracy:8.3f}  {s.direction_norm:9.3f}")
    best = best_layer(scores)
    print(
        f"auto: layer {best.layer} (auroc {best.auroc:.3f}, pair accuracy {best.pair_accuracy:.3f})"
    )
    return 0
