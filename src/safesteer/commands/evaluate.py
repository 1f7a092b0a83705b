"""``safesteer evaluate``: generate and score images for packs and baselines across strengths.

Resumable: rerun the same command into the same ``--out`` and it continues where it stopped.
Every option can also come from ``--config file.toml`` (long option names as keys; the command
line wins; unknown keys are refused): see :mod:`safesteer.commands._config`.

Example:
    safesteer evaluate --pipeline tiny-sd --pack my.safetensors --baseline none --baseline random \\
        --prompts i2p.csv --utility-prompts safe.txt --alphas 0 3 5 --out runs/demo
    safesteer evaluate --config eval.toml --alphas 0 5      # the file, with α from the CLI
"""

from __future__ import annotations

import argparse

from safesteer import validation as v
from safesteer.commands._model_options import add_model_options
from safesteer.errors import InputError

#: values of --fid-features (``none`` turns FID off)
FID_FEATURES = ("inception", "random", "none")

NAME = "evaluate"
HELP = "Generate and score images (ASR, CLIP, FID) for packs and baselines; resumable."


def _q16_prompts(text: str) -> str:
    return text if text == "random" else str(v.input_file(text))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from safesteer.evaluation.conditions import MODES
    from safesteer.evaluation.context import DEFAULT_BATCH_SIZE
    from safesteer.evaluation.nudenet import ALL_LABELS
    from safesteer.evaluation.protocol import PRESETS
    from safesteer.evaluation.registry import CLASSIFIERS

    p = parser
    p.add_argument(
        "--config",
        type=v.text_file,
        metavar="FILE.toml",
        help="read options from a TOML file (keys: the long option names; the CLI wins)",
    )
    p.add_argument("--pipeline", help="hub id, folder or tiny preset (tiny-sd); required")
    p.add_argument("--pipeline-revision", help="hub revision to pin")
    p.add_argument(
        "--out", type=v.output_dir, help="run folder (rerun into it to resume); required"
    )
    p.add_argument(
        "--pack",
        type=v.input_file,
        action="append",
        default=None,
        help="a SafetyPack .safetensors (repeat)",
    )
    p.add_argument(
        "--mode",
        action="append",
        choices=list(MODES),
        default=None,
        help="how packs are applied (repeatable; default: always): always (every "
        "prompt, the paper), gated (only prompts the pack's benign-fitted "
        "target-side gate flags), gated-source (the pack's source-side gate "
        "decides; loads the source model the pack names), to-projection (each prompt's "
        "projection on the pack's vector moved up to its benign quantile τ, no further)",
    )
    p.add_argument(
        "--baseline",
        type=_baseline,
        action="append",
        default=None,
        help="none | random | native=PATH.safetensors (repeat; default: none)",
    )
    p.add_argument("--protocol", choices=list(PRESETS), help="a preset of the settings below")
    p.add_argument(
        "--alphas",
        type=v.alpha,
        nargs="+",
        action=v.Distinct,
        help="strengths α, each once (paper: -1 0 1 3 5 7)",
    )
    p.add_argument(
        "--prompts",
        type=v.prompt_file,
        help="safety prompts for ASR (I2P csv, txt, jsonl, parquet…)",
    )
    p.add_argument(
        "--utility-prompts", type=v.prompt_file, help="benign prompts for CLIP-score and FID"
    )
    p.add_argument("--prompt-column", help="column holding the prompt text")
    p.add_argument("--limit", type=v.positive_int, help="use the first N prompts of each set")
    p.add_argument("--images-per-prompt", type=v.positive_int)
    p.add_argument("--seed", type=v.seed)
    p.add_argument("--steps", type=v.positive_int)
    p.add_argument("--guidance", type=v.non_negative_float)
    p.add_argument("--height", type=v.positive_int)
    p.add_argument("--width", type=v.positive_int)
    p.add_argument(
        "--video-frames", type=v.positive_int, help="frames sampled per video for scoring"
    )
    p.add_argument("--classifiers", nargs="+", choices=list(CLASSIFIERS), action=v.Distinct)
    p.add_argument(
        "--nudenet-labels",
        nargs="+",
        choices=list(ALL_LABELS),
        action=v.Distinct,
        metavar="LABEL",
        help=f"NudeNet labels that flag (of {', '.join(ALL_LABELS)})",
    )
    for name, entry in CLASSIFIERS.items():
        p.add_argument(
            f"--{name.replace('_', '-')}-threshold",
            type=v.probability,
            dest=f"{name}_threshold",
            help=f"{name} flags at score >= this (default {entry.default_threshold:g})",
        )
    p.add_argument(
        "--q16-prompts",
        type=_q16_prompts,
        help="Q16 prompt embeddings (.safetensors/.npy/.json)",
    )
    p.add_argument("--clip-model", help="CLIP for CLIP-score and Q16 (hub id/folder, random, none)")
    p.add_argument("--clip-scale", type=v.positive_float, help="1 = cosine (default); 100 = ×100")
    p.add_argument("--fid-reference", type=v.input_dir, help="folder of reference images for FID")
    p.add_argument(
        "--fid-features",
        choices=FID_FEATURES,
        help="inception (needs torch-fidelity) | random | none",
    )
    add_model_options(p, defaults=False)  # defaults in DEFAULTS (a --config file may set them)
    p.add_argument(
        "--torch-threads",
        type=v.positive_int,
        help="CPU threads for torch (1 avoids thread thrashing on a shared machine)",
    )
    p.add_argument(
        "--batch-size",
        type=v.positive_int,
        help=f"prompts per pipeline call (default {DEFAULT_BATCH_SIZE}; on CPU the same images "
        "and records as 1; recorded under the protocol's execution, not its settings)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        type=v.ray_address,
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run on Ray (no address: a local cluster; HOST:PORT or ray://HOST:PORT: an "
        "existing one, refused after a connection timeout when unreachable)",
    )
    p.add_argument(
        "--ray-workers", type=v.positive_int, help="workers (default: one per GPU, else 1 CPU)"
    )
    p.add_argument("--ray-gpus-per-worker", type=v.non_negative_float)
    p.add_argument("--max-items", type=v.positive_int, help="stop after N new items (resume later)")
    p.add_argument("--no-progress", action="store_true", default=None)


#: defaults applied after the config file (argparse defaults stay None so the CLI can win)
DEFAULTS: dict[str, object] = {
    "pack": [],
    "device": "auto",
    "dtype": "auto",
    "offload": "none",
    "no_progress": False,
}


def _check_baseline(text: str) -> str:
    name, eq, value = text.partition("=")
    if name in ("none", "random") and not eq:
        return text
    if name == "native" and value:
        v.check_input_file(value, "--baseline native pack")
        return text
    raise InputError(
        f"unknown baseline {text!r}", hint="use none, random or native=PATH.safetensors"
    )


_baseline = v.arg_type(_check_baseline, "baseline")


def _model_option(given: str | None, preset: str | None) -> str | None:
    """A model option: the preset's when not given, none for ``"none"``, else the given one."""
    if given is None:
        return preset
    return None if given == "none" else given


def check_options(args: argparse.Namespace) -> None:
    """Rules between options (command line and --config file merged), and sizes a known
    pipeline refuses, before anything loads."""
    from safesteer.evaluation.protocol import PRESETS, EvaluationSettings
    from safesteer.evaluation.registry import CLASSIFIERS
    from safesteer.targets.sizes import check_size, family_of_id, released_multiple

    if args.mode and any(m != "always" for m in args.mode) and not args.pack:
        v.refuse(
            f"--mode {' '.join(args.mode)} applies packs, but no --pack was given", "add --pack"
        )
    for name in ("alphas", "baseline", "mode", "classifiers", "nudenet_labels", "pack"):
        v.check_distinct(getattr(args, name) or [], "--" + name.replace("_", "-"))
    baselines = [b.partition("=")[0] for b in args.baseline or []]
    if "random" in baselines and not args.pack:
        v.refuse(
            "--baseline random draws a direction of each pack's norm, but no --pack was given",
            "add --pack, or drop --baseline random",
        )
    if (args.ray_workers is not None or args.ray_gpus_per_worker is not None) and args.ray is None:
        v.refuse("--ray-workers / --ray-gpus-per-worker are read only with --ray", "add --ray")
    base = PRESETS[args.protocol] if args.protocol else EvaluationSettings()
    classifiers = tuple(args.classifiers) if args.classifiers else base.classifiers
    if args.nudenet_labels and "nudenet" not in classifiers:
        v.refuse(
            "--nudenet-labels given but nudenet is not among --classifiers",
            "add nudenet to --classifiers, or drop --nudenet-labels",
        )
    for name in CLASSIFIERS:
        if getattr(args, f"{name}_threshold") is not None and name not in classifiers:
            flag = f"--{name.replace('_', '-')}-threshold"
            v.refuse(
                f"{flag} given but {name} is not among --classifiers ({', '.join(classifiers)})",
                f"add {name} to --classifiers, or drop {flag}",
            )
    if args.q16_prompts is not None and "q16" not in classifiers:
        v.refuse(
            "--q16-prompts given but q16 is not among --classifiers",
            "add q16, or drop --q16-prompts",
        )
    clip = _model_option(args.clip_model, base.clip_model)
    if "q16" in classifiers and not clip:
        v.refuse(
            "q16 needs a CLIP model, but --clip-model is none",
            "pass --clip-model, or drop q16 from --classifiers",
        )
    features = _model_option(args.fid_features, base.fid_features)
    if args.fid_features not in (None, "none") and args.fid_reference is None:
        v.refuse(
            f"--fid-features {args.fid_features} needs reference images",
            "add --fid-reference DIR, or drop --fid-features",
        )
    if args.fid_reference is not None:
        if not features:
            v.refuse(
                "--fid-reference given but FID is off (--fid-features none, or the preset's)",
                "pass --fid-features inception or random",
            )
        if not args.utility_prompts:
            v.refuse(
                "FID is computed on the images of --utility-prompts, but none were given",
                "add --utility-prompts FILE, or drop --fid-reference",
            )
    if args.ray not in (None, "local", "auto"):
        from safesteer.evaluation.ray_runner import check_reachable

        check_reachable(args.ray)  # a connection timeout, not Ray's minutes of retries
    multiple = released_multiple(args.pipeline)
    if multiple is not None:
        check_size(
            args.height, args.width, multiple, f"{args.pipeline} ({family_of_id(args.pipeline)})"
        )


def run(args: argparse.Namespace) -> int:
    from safesteer.commands._config import merge_config
    from safesteer.evaluation.context import DEFAULT_BATCH_SIZE, EvaluationSpec
    from safesteer.evaluation.protocol import PRESETS, EvaluationSettings, mark_preset_changes
    from safesteer.evaluation.registry import CLASSIFIERS
    from safesteer.evaluation.runner import evaluate
    from safesteer.evaluation.workplan import PromptSet
    from safesteer.models.device import resolve_device

    args = merge_config(args, add_arguments, DEFAULTS)
    missing = [f"--{k}" for k in ("pipeline", "out") if not getattr(args, k)]
    if missing:
        raise InputError(
            f"{' and '.join(missing)} required", hint="pass it, or set it in --config FILE.toml"
        )
    check_options(args)  # before anything loads; a --config file's values too
    base = PRESETS[args.protocol] if args.protocol else EvaluationSettings()
    off = {"none": ""}
    settings = base.replace(
        alphas=tuple(args.alphas) if args.alphas else None,
        images_per_prompt=args.images_per_prompt,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        height=args.height,
        width=args.width,
        video_frames=args.video_frames,
        classifiers=tuple(args.classifiers) if args.classifiers else None,
        nudenet_labels=tuple(args.nudenet_labels) if args.nudenet_labels else None,
        **{f"{n}_threshold": getattr(args, f"{n}_threshold") for n in CLASSIFIERS},
        clip_model=off.get(args.clip_model, args.clip_model) if args.clip_model else None,
        clip_scale=args.clip_scale,
        fid_features=off.get(args.fid_features, args.fid_features) if args.fid_features else None,
    )
    if args.protocol:  # a preset whose pinned settings were changed is recorded as such
        settings = mark_preset_changes(settings, args.protocol)
    sets = []
    if args.prompts:
        sets.append(
            PromptSet.from_file(
                args.prompts,
                name="safety",
                role="safety",
                limit=args.limit,
                column=args.prompt_column,
            )
        )
    if args.utility_prompts:
        sets.append(
            PromptSet.from_file(
                args.utility_prompts,
                name="utility",
                role="utility",
                limit=args.limit,
                column=args.prompt_column,
            )
        )
    if not sets:
        raise InputError("no prompts given", hint="pass --prompts and/or --utility-prompts")
    spec = EvaluationSpec(
        pipeline=args.pipeline,
        out=str(args.out),
        packs=tuple(str(p) for p in args.pack),
        baselines=tuple(args.baseline or ["none"]),
        modes=tuple(args.mode or ["always"]),
        prompt_sets=tuple(sets),
        settings=settings,
        q16_prompts=args.q16_prompts,
        fid_reference=None if args.fid_reference is None else str(args.fid_reference),
        device=resolve_device(args.device),
        dtype=args.dtype,
        offload=args.offload,
        pipeline_revision=args.pipeline_revision,
        torch_threads=args.torch_threads,
    )
    result = evaluate(
        spec,
        progress=not args.no_progress,
        ray_address=args.ray,
        ray_workers=args.ray_workers,
        ray_gpus_per_worker=args.ray_gpus_per_worker,
        max_items=args.max_items,
        batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
    )
    from safesteer.evaluation.store import ResultsStore

    protocol = ResultsStore(result.run_dir).protocol()
    print(
        f"run: {result.run_dir} — {result.done_before + result.done_now}/{result.total} items "
        f"({result.done_now} new)"
    )
    for line in protocol.summary_lines():
        print(f"  {line}")
    if protocol.random_parts():
        print("  RANDOM WEIGHTS in: " + ", ".join(protocol.random_parts()))
    print(f"{'condition':<28} {'alpha':>6} {'n':>5} {'ASR':>6} {'CLIP':>7} {'FID':>8}")
    for r in result.summary["rows"]:
        asr = "–" if r["asr"] is None else f"{r['asr']:.3f}"
        clip = "–" if r["clip_score"] is None else f"{r['clip_score']:.3f}"
        fid = "–" if r["fid"] is None else f"{r['fid']:.2f}"
        n = r["n_safety"]
        print(f"{r['condition']:<28} {r['alpha']:>6g} {n:>5} {asr:>6} {clip:>7} {fid:>8}")
    return 0
