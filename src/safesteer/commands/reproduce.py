"""``safesteer reproduce <preset>``: build the pack, evaluate, write the report — one table row.

Example:
    safesteer reproduce flux-schnell --dry-run      # models, memory estimate, image counts
    safesteer reproduce flux-schnell --out runs/flux-schnell
    safesteer reproduce tiny-flux --out /tmp/tiny   # offline smoke run (random weights)

Presets ship in ``safesteer/presets/*.toml`` (or pass a path to your own TOML); see
:mod:`safesteer.jobs.reproduce`. Rerun the same command to resume an interrupted run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safesteer import validation as v
from safesteer.commands._model_options import add_model_options

NAME = "reproduce"
HELP = "Reproduce a row of the paper's table from a preset (build, evaluate, report)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer reproduce``."""
    from safesteer.jobs.reproduce import preset_names

    parser.add_argument(
        "preset", help=f"a shipped preset ({', '.join(preset_names())}) or a .toml file"
    )
    parser.add_argument("--out", type=v.output_dir, default=None, help="run folder (runs/<preset>)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan; load nothing, write nothing"
    )
    parser.add_argument(
        "--limit", type=v.positive_int, default=None, help="first N prompts of each set"
    )
    parser.add_argument(
        "--q16-prompts", type=v.input_file, default=None, help="Q16 embeddings (convert-q16 output)"
    )
    parser.add_argument(
        "--fid-reference", type=v.input_dir, default=None, help="folder of FID reference images"
    )
    parser.add_argument(
        "--max-items", type=v.positive_int, default=None, help="stop after N images"
    )
    parser.add_argument(
        "--torch-threads", type=v.positive_int, default=None, help="CPU threads for torch"
    )
    parser.add_argument("--no-progress", action="store_true")
    add_model_options(parser, memory_check=True)
    # the preset decides dtype/device/offload unless given here
    parser.set_defaults(dtype=None, device=None, offload=None)


def run(args: argparse.Namespace) -> int:
    """Print the plan, or run it."""
    from safesteer.jobs.reproduce import describe_plan, load_preset_file, run_preset

    preset = load_preset_file(args.preset)
    overrides = {
        "dtype": args.dtype,
        "device": args.device,
        "offload": args.offload,
        "limit": args.limit,
        "q16_prompts": None if args.q16_prompts is None else str(args.q16_prompts),
        "fid_reference": None if args.fid_reference is None else str(args.fid_reference),
        "max_items": args.max_items,
        "torch_threads": args.torch_threads,
        "force": args.skip_memory_check,
        "progress": not args.no_progress,
    }
    if args.dry_run:
        print("\n".join(describe_plan(preset, overrides)))
        print("dry run: nothing loaded, nothing written")
        return 0
    out = args.out or Path("runs") / preset.name
    result = run_preset(preset, out, overrides)
    print(f"wrote {result['report']} (evaluation in {result['run_dir']})")
    return 0
