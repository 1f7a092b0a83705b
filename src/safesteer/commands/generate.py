"""``safesteer generate``: prompts + pack + strength → images (or video frames) and a JSON record.

Example:
    safesteer generate --pipeline tiny-sd --pack pack.safetensors --prompt "a photo of a cat" \\
        --alpha 3 --out out/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safesteer import validation as v
from safesteer.commands._model_options import add_model_options

NAME = "generate"
HELP = "Generate images or video frames with a pipeline steered by a safety pack."


def _categories(text: str) -> str | list[str]:
    return "auto" if text == "auto" else v.name_list(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer generate``."""
    from safesteer.targets.attach import GATE_SIDES, STEERING_RULES, TOKENS

    parser.add_argument(
        "--pipeline", required=True, help="hub id, local folder, or tiny-<family> (random weights)"
    )
    parser.add_argument(
        "--pack",
        type=v.input_file,
        default=None,
        help="safety pack (.safetensors); omit for a baseline",
    )
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    parser.add_argument(
        "--prompts",
        type=v.prompt_file,
        default=None,
        help="prompt file (txt, csv, jsonl, parquet…)",
    )
    parser.add_argument("--column", default=None, help="prompt column of a table file")
    parser.add_argument(
        "--alpha",
        type=v.alpha,
        default=None,
        help="steering strength α (default: the pack's alpha_default, 5; needs --pack)",
    )
    parser.add_argument(
        "--tokens", choices=list(TOKENS), default=None, help="positions to steer (default all)"
    )
    parser.add_argument(
        "--gated", action="store_true", help="steer only prompts the pack's gate flags"
    )
    parser.add_argument(
        "--gate",
        choices=list(GATE_SIDES),
        default=None,
        help="which gate decides with --gated / --categories auto: the pack's gate on the "
        "pipeline's states (target, default) or its source gate on the source model's states",
    )
    parser.add_argument(
        "--source-reader",
        default=None,
        help="source model for --gate source (preset, hub id or folder); default: the one the "
        "pack's source gate names, with its pooling settings",
    )
    parser.add_argument(
        "--categories",
        type=_categories,
        default=None,
        help="'auto' or comma-separated category names",
    )
    parser.add_argument(
        "--rule",
        choices=list(STEERING_RULES),
        default=None,
        help="steering rule: add (h + α·v, the paper, default) or to-projection (move each "
        "prompt's projection on v̂ up to the pack's benign quantile τ, no further; "
        "not with --categories)",
    )
    parser.add_argument(
        "--steer-negative", action="store_true", help="also steer the negative CFG branch"
    )
    parser.add_argument(
        "--seed", type=v.seed, default=0, help="seed of prompt 0; prompt i uses seed+i"
    )
    parser.add_argument(
        "--steps", type=v.positive_int, default=None, help="denoising steps (tiny pipelines: 2)"
    )
    parser.add_argument(
        "--guidance",
        type=v.non_negative_float,
        default=None,
        help="guidance scale (pipeline default)",
    )
    parser.add_argument("--size", type=v.size, default=None, help="N or WxH in pixels")
    parser.add_argument(
        "--frames", type=v.positive_int, default=None, help="video frames (video pipelines)"
    )
    parser.add_argument("--negative-prompt", default=None, help="negative prompt")
    add_model_options(parser)
    parser.add_argument(
        "--limit", type=v.positive_int, default=None, help="use only the first N prompts"
    )
    parser.add_argument("--out", type=v.output_dir, required=True, help="output folder")


def _source_reader(pack: object, name: str | None, **placement: object) -> object:
    """The reader for ``--gate source``: the pack's spec, with ``name`` as the model if given."""
    from safesteer.errors import InputError
    from safesteer.models import SourceReader
    from safesteer.pack import SafetyPack

    if not isinstance(pack, SafetyPack):
        raise InputError("--gate source needs --pack", hint="pass --pack PACK.safetensors")
    pack.require_source_gate()  # before loading a model for nothing
    spec = dict(pack.source_gate_spec)
    if name is not None:
        spec["model_id"] = name
    return SourceReader.from_spec(spec, **placement)


#: options that only mean something with a pack (without one the run is unsteered)
_STEERING_OPTIONS = (
    ("--alpha", "alpha"),
    ("--tokens", "tokens"),
    ("--gated", "gated"),
    ("--gate", "gate"),
    ("--categories", "categories"),
    ("--rule", "rule"),
    ("--steer-negative", "steer_negative"),
    ("--source-reader", "source_reader"),
)


def check_options(args: argparse.Namespace) -> None:
    """Rules between options and what is known of the pipeline before it loads."""
    from safesteer.targets.registry import FAMILIES
    from safesteer.targets.sizes import (
        RELEASED_FRAMES_MULTIPLE,
        SIZE_RULES,
        check_frames,
        check_size,
        family_of_id,
        released_multiple,
    )

    given = [flag for flag, dest in _STEERING_OPTIONS if getattr(args, dest) not in (None, False)]
    if args.pack is None and given:
        v.refuse(
            f"{', '.join(given)} given without --pack: the run would be unsteered",
            f"pass --pack PACK.safetensors, or drop {', '.join(given)}",
        )
    if args.gate is not None and not (args.gated or args.categories == "auto"):
        v.refuse(
            f"--gate {args.gate} decides only with --gated or --categories auto (without them "
            "every prompt is steered and no gate decides)",
            "add --gated, or drop --gate",
        )
    if args.rule == "to-projection" and args.categories is not None:
        v.refuse(
            "--rule to-projection steers along the pack's global vector (τ is for that "
            "vector); --categories is not served",
            "drop --categories, or use --rule add",
        )
    if args.source_reader is not None and args.gate != "source":
        v.refuse("--source-reader is read only by --gate source", "add --gate source")
    if args.column is not None and args.prompts is None:
        v.refuse(
            "--column names a column of --prompts, but no --prompts was given", "add --prompts"
        )
    family = family_of_id(args.pipeline)
    multiple = released_multiple(args.pipeline)
    if args.size is not None and multiple is not None:
        width, height = args.size
        check_size(height, width, multiple, f"{args.pipeline} ({family})")
    if args.frames is not None and family in FAMILIES and not args.pipeline.startswith("tiny-"):
        if not FAMILIES[family].makes_video:
            v.refuse(f"--frames: {args.pipeline} makes images, not videos", "drop --frames")
        rule = SIZE_RULES.get(family)
        if rule is not None and rule.frames is not None:
            check_frames(args.frames, RELEASED_FRAMES_MULTIPLE, args.pipeline)


def check_loaded(args: argparse.Namespace, pipe: object, adapter: object) -> None:
    """What only the loaded pipeline tells: its size multiple, whether it makes videos."""
    from safesteer.targets.sizes import check_frames, check_size, frames_multiple, size_multiple

    family = str(getattr(adapter, "family", ""))
    if args.size is not None:
        width, height = args.size
        check_size(height, width, size_multiple(pipe, family), f"{args.pipeline} ({family})")
    if args.frames is not None:
        if not getattr(adapter, "makes_video", False):
            v.refuse(f"--frames: {args.pipeline} makes images, not videos", "drop --frames")
        check_frames(args.frames, frames_multiple(pipe, family), args.pipeline)


def run(args: argparse.Namespace) -> int:
    """Check the options, load the pipeline and pack, generate, write the record."""
    check_options(args)  # before anything loads
    from safesteer.data import load_prompts
    from safesteer.errors import InputError
    from safesteer.pack import SafetyPack
    from safesteer.targets.attach import GateSide, SteeringRule, Tokens
    from safesteer.targets.generation import generate_to_folder
    from safesteer.targets.registry import load_pipeline
    from safesteer.targets.tiny import tiny_call_defaults

    prompts = list(args.prompt)
    if args.prompts is not None:
        prompts += [r.prompt for r in load_prompts(args.prompts, column=args.column)]
    if args.limit is not None:
        prompts = prompts[: args.limit]
    if not prompts:
        raise InputError(
            "no prompts given", hint="pass --prompt TEXT (repeatable) or --prompts FILE"
        )
    from safesteer.targets.encoding import adapter_options

    pack = SafetyPack.load(args.pack) if args.pack is not None else None
    alpha = args.alpha  # None: the pack's alpha_default
    tokens: Tokens = args.tokens or "all"
    gate: GateSide = args.gate or "target"
    categories = args.categories
    rule: SteeringRule = args.rule or "add"
    if rule == "to-projection" and pack is not None:
        from safesteer.targets.settings import require_projection_target

        require_projection_target(pack)  # before loading a pipeline for nothing
    if gate == "source" and pack is not None:
        pack.require_source_gate()  # before loading a model for nothing
    pipe, adapter = load_pipeline(
        args.pipeline,
        dtype=args.dtype,
        device=args.device,
        offload=args.offload,
        **adapter_options(pack.encoding if pack is not None else None),  # the pack's length
    )
    check_loaded(args, pipe, adapter)  # before any generation
    call: dict[str, object] = {}
    steps = args.steps
    if args.pipeline.startswith("tiny-"):  # random weights: small and fast
        call = tiny_call_defaults(args.pipeline)
        steps = steps or 2
    width, height = args.size if args.size else (None, None)
    reader = None
    if gate == "source" and (args.gated or categories == "auto"):
        reader = _source_reader(pack, args.source_reader, dtype=args.dtype, device=args.device)
    record = generate_to_folder(
        pipe,
        adapter,
        prompts,
        args.out,
        pack=pack,
        pack_path=args.pack,
        alpha=alpha,
        tokens=tokens,
        gated=args.gated,
        categories=categories,
        steer_negative=args.steer_negative,
        seed=args.seed,
        steps=steps,
        guidance_scale=args.guidance,
        height=height,
        width=width,
        num_frames=args.frames,
        negative_prompt=args.negative_prompt,
        pipeline_id=args.pipeline,
        call_kwargs=call,
        gate=gate,
        source_reader=reader,
        rule=rule,
    )
    steered = sum(1 for it in record["items"] if it.get("steering", {}).get("steered"))
    weights = (
        "RANDOM weights (noise images; code path only)"
        if record["random_weights"]
        else "pretrained weights"
    )
    print(
        f"wrote {len(record['items'])} outputs to {args.out} from {args.pipeline} ({weights}); "
        f"pack: {args.pack or 'none (unsteered)'}; alpha="
        f"{(record['steering'] or {}).get('alpha', '–')}; steered prompts: {steered}/"
        f"{len(record['items'])}; record: {Path(args.out) / 'generate.json'}"
    )
    return 0
