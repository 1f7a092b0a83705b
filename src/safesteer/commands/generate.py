"""``safesteer generate``: prompts + pack + strength → images (or video frames) and a JSON record.

Example:
    safesteer generate --pipeline tiny-sd --pack pack.safetensors --prompt "a photo of a cat" \\
        --alpha 3 --out out/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safesteer.commands._model_options import add_model_options

NAME = "generate"
HELP = "Generate images or video frames with a pipeline steered by a safety pack."


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must be N or WxH, got {text!r}") from exc
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"size must be N or WxH, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``safesteer generate``."""
    from safesteer.targets.attach import GATE_SIDES, TOKENS

    parser.add_argument(
        "--pipeline", required=True, help="hub id, local folder, or tiny-<family> (random weights)"
    )
    parser.add_argument(
        "--pack", type=Path, default=None, help="safety pack (.safetensors); omit for a baseline"
    )
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    parser.add_argument(
        "--prompts", type=Path, default=None, help="prompt file (txt, csv, jsonl, parquet…)"
    )
    parser.add_argument("--column", default=None, help="prompt column of a table file")
    parser.add_argument(
        "--alpha", type=float, help="steering strength α (default: the pack's alpha_default, 5)"
    )
    parser.add_argument("--tokens", choices=list(TOKENS), default="all", help="positions to steer")
    parser.add_argument(
        "--gated", action="store_true", help="steer only prompts the pack's gate flags"
    )
    parser.add_argument(
        "--gate",
        choices=list(GATE_SIDES),
        default="target",
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
        "--categories", default=None, help="'auto' or comma-separated category names"
    )
    parser.add_argument(
        "--steer-negative", action="store_true", help="also steer the negative CFG branch"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of prompt 0; prompt i uses seed+i"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="denoising steps (tiny pipelines: 2)"
    )
    parser.add_argument(
        "--guidance", type=float, default=None, help="guidance scale (pipeline default)"
    )
    parser.add_argument("--size", type=_size, default=None, help="N or WxH in pixels")
    parser.add_argument("--frames", type=int, default=None, help="video frames (video pipelines)")
    parser.add_argument("--negative-prompt", default=None, help="negative prompt")
    add_model_options(parser)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


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


def run(args: argparse.Namespace) -> int:
    """Load the pipeline and pack, generate, write the record; print where it went."""
    from safesteer.data import load_prompts
    from safesteer.errors import InputError
    from safesteer.pack import SafetyPack
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
    pipe, adapter = load_pipeline(
        args.pipeline,
        dtype=args.dtype,
        device=args.device,
        offload=args.offload,
        **adapter_options(pack.encoding if pack is not None else None),  # the pack's length
    )
    call: dict[str, object] = {}
    steps = args.steps
    if args.pipeline.startswith("tiny-"):  # random weights: small and fast
        call = tiny_call_defaults(args.pipeline)
        steps = steps or 2
    width, height = args.size if args.size else (None, None)
    categories = args.categories
    if categories is not None and categories != "auto":
        categories = [c.strip() for c in categories.split(",") if c.strip()]
    reader = None
    if args.gate == "source" and (args.gated or categories == "auto"):
        reader = _source_reader(pack, args.source_reader, dtype=args.dtype, device=args.device)
    record = generate_to_folder(
        pipe,
        adapter,
        prompts,
        args.out,
        pack=pack,
        pack_path=args.pack,
        alpha=args.alpha,
        tokens=args.tokens,
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
        gate=args.gate,
        source_reader=reader,
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
