"""``safesteer reproduce <preset>``: one command for a row of the paper's table.

A preset is a TOML file shipped in ``safesteer/presets/`` (``flux-schnell``, ``flux-dev``,
``qwen-image``, ``zimage-turbo``, ``wan2.2``; ``tiny-flux`` runs the same recipe offline on a
random-weight pipeline) or a path to your own. It names the source model and layer rule, the
target pipeline and its dtype / ``max_sequence_length``, the map, the strengths, the safety
prompts (I2P via ``hf:AIML-TUDA/i2p``) judged by Q16 ∨ NudeNet, the utility prompts (COCO
captions via ``hf:phiyodr/coco2017``) for CLIP-score and FID, and the baselines. The run:

1. builds the pack and the native baseline with one staged read
   (:func:`safesteer.jobs.staged_build.build_staged`: source loaded, read, freed; then the
   target), after a memory estimate;
2. evaluates pack, native, random and unsteered (α = 0 generated once and shared) with
   :func:`safesteer.evaluation.runner.evaluate` into ``<out>/evaluation`` (resumable: rerun the
   same command);
3. writes ``<out>/report.md`` (and the evaluation's HTML page where matplotlib is installed).

``--dry-run`` prints the plan — models, dtype, memory estimate, images per condition — and
loads nothing. Prompt sources ``safesteer:test-unsafe`` / ``safesteer:held-out-benign`` are our
own sets (used by the tiny preset); anything else goes to :func:`safesteer.data.load_prompts`.

Example:
    >>> preset = load_preset_file("flux-schnell")
    >>> preset.target["id"], preset.target["max_sequence_length"], preset.alphas
    ('black-forest-labs/FLUX.1-schnell', 256, (0.0, 5.0))
    >>> plan_images(preset)["images_generated"], plan_images(preset)["images_before_sharing"]
    (38812, 67921)
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from safesteer.errors import InputError, ModelLoadError

Log = Callable[[str], None]
_OURS = {
    "safesteer:test-unsafe": "test-split unsafe prompts (ours)",
    "safesteer:held-out-benign": "held-out benign anchors (ours)",
}


def preset_names() -> list[str]:
    """Names of the presets shipped in the package."""
    folder = resources.files("safesteer") / "presets"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


@dataclass(frozen=True)
class Preset:
    """A parsed preset file (sections as in the TOML; see the shipped ``flux-schnell.toml``)."""

    name: str
    path: str
    paper_row: str
    target: Mapping[str, Any]
    generation: Mapping[str, Any]
    source: Mapping[str, Any]
    pack: Mapping[str, Any]
    safety: Mapping[str, Any]
    utility: Mapping[str, Any]
    conditions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def alphas(self) -> tuple[float, ...]:
        """0 (unsteered, shared) and the preset's strengths."""
        given = [float(a) for a in self.pack.get("alphas", [5.0])]
        return tuple(dict.fromkeys([0.0, *given]))

    @property
    def baselines(self) -> tuple[str, ...]:
        return tuple(self.conditions.get("baselines", ["none", "native", "random"]))


def load_preset_file(name_or_path: str) -> Preset:
    """A shipped preset by name, or a TOML file by path; :class:`InputError` names what is wrong."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise InputError(f"preset file {path} does not exist", hint="check the path")
        text = path.read_text(encoding="utf-8")
        where = str(path)
    else:
        names = preset_names()
        if name_or_path not in names:
            raise InputError(
                f"unknown preset {name_or_path!r}",
                hint=f"use one of {', '.join(names)}, or a path to a .toml file",
            )
        text = (resources.files("safesteer") / "presets" / f"{name_or_path}.toml").read_text()
        where = f"safesteer/presets/{name_or_path}.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where} is not valid TOML ({exc})", hint="fix the file") from None
    missing = [s for s in ("target", "source", "pack", "safety") if s not in data]
    if missing:
        raise InputError(f"{where} lacks the section(s) {missing}", hint="see flux-schnell.toml")
    if "id" not in data["target"] or "model" not in data["source"]:
        raise InputError(f"{where} needs target.id and source.model", hint="see flux-schnell.toml")
    return Preset(
        name=str(data.get("name", path.stem)),
        path=where,
        paper_row=str(data.get("paper_row", "")),
        target=data["target"],
        generation=data.get("generation", {}),
        source=data["source"],
        pack=data["pack"],
        safety=data["safety"],
        utility=data.get("utility", {}),
        conditions=data.get("conditions", {}),
    )


def _cap(*limits: Any) -> int | None:
    """The smallest of the limits given (None: no limit)."""
    given = [int(x) for x in limits if x]
    return min(given) if given else None


def _steered_conditions(preset: Preset) -> int:
    """Conditions steered at α ≠ 0: the pack, native and random (one each, when asked)."""
    base = {b.partition("=")[0] for b in preset.baselines}
    return 1 + ("native" in base) + ("random" in base)


def plan_images(preset: Preset, limit: int | None = None) -> dict[str, Any]:
    """Images the run makes per prompt set, with α = 0 shared, and what it made before."""
    n_steered = _steered_conditions(preset)
    has_none = "none" in {b.partition("=")[0] for b in preset.baselines}
    nonzero = [a for a in preset.alphas if a != 0.0]
    per_image = int(preset.generation.get("images_per_prompt", 1))
    sets = {}
    total_now = total_before = 0
    for role, section in (("safety", preset.safety), ("utility", preset.utility)):
        if not section:
            continue
        n = int(section.get("expected_prompts", 0) or 0)
        cap = _cap(section.get("limit"), limit)
        n = min(n, cap) if cap else n
        now = n * per_image * (1 + n_steered * len(nonzero))
        before = n * per_image * (int(has_none) + n_steered * len(preset.alphas))
        sets[role] = {"prompts": n, "images_now": now, "images_before": before}
        total_now, total_before = total_now + now, total_before + before
    return {
        "sets": sets,
        "conditions_steered": n_steered,
        "alphas": list(preset.alphas),
        "images_generated": total_now,
        "images_before_sharing": total_before,
        "rule": "α = 0 is generated once per prompt and shared by unsteered, pack, native and "
        "random; before, each condition generated its own α = 0",
    }


def _placement(preset: Preset, overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "dtype": overrides.get("dtype") or preset.target.get("dtype", "auto"),
        "device": overrides.get("device") or preset.target.get("device", "auto"),
        "offload": overrides.get("offload") or preset.target.get("offload", "none"),
    }


def memory_plan(preset: Preset, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Estimated peak memory (configs on the meta device; published counts when offline)."""
    from safesteer.jobs.staged_build import BuildPlan, estimate
    from safesteer.models import memory
    from safesteer.models.device import resolve_device, resolve_dtype

    where = _placement(preset, overrides)
    plan = BuildPlan(
        source=str(preset.source["model"]),
        layer=preset.source.get("layer", "auto"),
        target=str(preset.target["id"]),
        dtype=where["dtype"],
        device=where["device"],
        offload=where["offload"],
    )
    est = estimate(plan)
    est.pop("_peak", None)
    device = resolve_device(where["device"])
    dtype = resolve_dtype(where["dtype"], device)
    gen: memory.MemoryEstimate | None = None
    src: memory.MemoryEstimate | None = None
    if est["target"] is not None:
        counts = {k: v["params"] for k, v in est["target"]["components"].items()}
        gen = memory.from_counts(plan.target, counts, dtype, est["target"]["source"])
    elif "params" in preset.target:
        gen = memory.from_counts(
            plan.target, dict(preset.target["params"]), dtype, "published counts in the preset"
        )
    reader = est["readers"].get(plan.source)
    if reader is not None:
        src = memory.from_counts(plan.source, {"model": reader["params"]}, dtype, reader["source"])
    elif "params" in preset.source:
        src = memory.from_counts(
            plan.source, {"model": int(preset.source["params"])}, dtype, "published count"
        )
    need = memory.peak(src, gen, offload=where["offload"])
    return {
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "source": None if src is None else {"bytes": src.bytes, "from": src.source},
        "generator": None if gen is None else {"bytes": gen.bytes, "from": gen.source},
        "peak_device_bytes": need.device_bytes,
        "peak_ram_bytes": need.ram_bytes,
        "rule": need.rule,
        "notes": est["notes"],
        "_peak": need,
    }


def describe_plan(preset: Preset, overrides: Mapping[str, Any]) -> list[str]:
    """The dry-run text: models, memory, images (nothing is loaded)."""
    from safesteer.models.device import gib

    mem = memory_plan(preset, overrides)
    mem.pop("_peak")
    images = plan_images(preset, overrides.get("limit"))
    t, s = preset.target, preset.source
    lines = [
        f"preset {preset.name} ({preset.path}): {preset.paper_row}",
        f"target  {t['id']} in {mem['dtype']} on {mem['device']}, offload "
        f"{_placement(preset, overrides)['offload']}, max_sequence_length "
        f"{t.get('max_sequence_length', 'the family default')}",
        f"source  {s['model']} layer {s.get('layer', 'auto')} (read, then freed before the "
        "target loads)",
        f"pack    map {preset.pack.get('map', 'procrustes')}, α {list(preset.alphas)}; "
        f"baselines {', '.join(preset.baselines)}",
    ]
    for role, section in (("safety", preset.safety), ("utility", preset.utility)):
        if section:
            lines.append(
                f"{role:<8}{section.get('prompts')} (limit {section.get('limit') or '–'}); "
                + (
                    f"judged by {' ∨ '.join(section.get('classifiers', []))}"
                    if role == "safety"
                    else f"CLIP {section.get('clip_model', '–')}, FID vs "
                    f"{section.get('fid_reference', '–')}"
                )
            )
    for key in ("source", "generator"):
        part = mem[key]
        lines.append(
            f"memory  {key}: "
            + ("unknown" if part is None else f"{gib(part['bytes'])} ({part['from']})")
        )
    lines.append(f"memory  peak ≈ {gib(mem['peak_device_bytes'])} ({mem['rule']}; ×1.15)")
    lines += [f"        {n}" for n in mem["notes"]]
    for role, v in images["sets"].items():
        lines.append(
            f"images  {role}: {v['prompts']} prompts → {v['images_now']} images "
            f"(was {v['images_before']} before α = 0 was shared)"
        )
    lines.append(
        f"images  total {images['images_generated']} (was {images['images_before_sharing']})"
    )
    return lines


def _prompt_set(section: Mapping[str, Any], role: str, limit: int | None, seed: int) -> Any:
    from safesteer.evaluation.workplan import PromptSet

    source = str(section["prompts"])
    cap = _cap(section.get("limit"), limit)
    if source in _OURS:
        from safesteer.data import benign_anchors, load_pairs

        if source == "safesteer:test-unsafe":
            pairs = load_pairs("test")[:cap]
            return PromptSet.inline(
                _OURS[source], role, [p.unsafe for p in pairs], [[p.category] for p in pairs]
            )
        anchors = benign_anchors()[-(cap or 50) :]  # the tail: not among the build's anchors
        return PromptSet.inline(_OURS[source], role, anchors)
    path = str(Path(source).expanduser()) if not source.startswith("hf:") else source
    try:
        return _from_file(path, role, cap, section)
    except InputError:
        raise
    except Exception as exc:  # datasets / hub errors
        raise InputError(f"cannot read {source}: {exc}", hint="pass a local file") from None


def _from_file(path: str, role: str, cap: int | None, section: Mapping[str, Any]) -> Any:
    from safesteer.data import load_prompts
    from safesteer.evaluation.workplan import PromptSet

    records = load_prompts(
        path, column=section.get("column"), split=str(section.get("split", "train"))
    )[:cap]
    return PromptSet(
        role,
        role,
        tuple(r.prompt for r in records),
        tuple(tuple(r.categories) for r in records),
        path,
    )


def run_preset(
    preset: Preset, out: Path, overrides: Mapping[str, Any] | None = None, log: Log = print
) -> dict[str, Any]:
    """Build, evaluate, report (module docstring); returns the evaluation summary and paths."""
    from safesteer.evaluation.protocol import PRESETS
    from safesteer.evaluation.runner import EvaluationSpec, evaluate
    from safesteer.jobs.staged_build import BuildPlan, build_staged
    from safesteer.models.device import resolve_device

    o = dict(overrides or {})
    where = _placement(preset, o)
    device = resolve_device(where["device"])
    protocol = str(preset.conditions.get("protocol", "paper"))
    if protocol not in PRESETS:
        raise InputError(f"unknown protocol {protocol!r}", hint=f"use one of {', '.join(PRESETS)}")
    q16 = o.get("q16_prompts") or preset.safety.get("q16_prompts")
    classifiers = tuple(preset.safety.get("classifiers", PRESETS[protocol].classifiers))
    if "q16" in classifiers and (not q16 or not Path(str(q16)).expanduser().is_file()):
        raise InputError(
            f"Q16 needs its prompt embeddings, and {q16 or 'no file'} is not there",
            hint="download Q16's data/ViT-L-14/prompts.p and run `safesteer convert-q16 "
            f"prompts.p {q16 or 'q16.safetensors'}` (or pass --q16-prompts)",
        )
    fid_ref = o.get("fid_reference") or preset.utility.get("fid_reference")
    if fid_ref:
        fid_ref = str(Path(str(fid_ref)).expanduser())
        if not Path(fid_ref).is_dir():
            raise InputError(
                f"FID reference folder {fid_ref} does not exist",
                hint="extract COCO val2017 images there, or pass --fid-reference DIR",
            )
    seed = int(preset.generation.get("seed", 0))
    limit = o.get("limit")
    sets = [_prompt_set(preset.safety, "safety", limit, seed)]
    if preset.utility:
        sets.append(_prompt_set(preset.utility, "utility", limit, seed))
    log("\n".join(describe_plan(preset, o)))
    out.mkdir(parents=True, exist_ok=True)
    packs = out / "packs"
    pack_path = packs / f"{preset.name}.safetensors"
    native_path = packs / f"{preset.name}-native.safetensors"
    base = {b.partition("=")[0] for b in preset.baselines}
    if not pack_path.is_file() or ("native" in base and not native_path.is_file()):
        from safesteer.data import benign_anchors, load_pairs

        max_pairs = preset.pack.get("max_pairs")
        n_anchors = preset.pack.get("anchors")
        pairs = tuple(load_pairs("train")[:max_pairs]) if max_pairs else None
        anchors = tuple(benign_anchors(int(n_anchors))) if n_anchors else None
        plan = BuildPlan(
            source=str(preset.source["model"]),
            layer=preset.source.get("layer", "auto"),
            target=str(preset.target["id"]),
            map_kind=str(preset.pack.get("map", "procrustes")),
            pairs=pairs,
            anchors=anchors,
            dtype=where["dtype"],
            device=where["device"],
            offload=where["offload"],
            force=bool(o.get("force")),
            also_native="native" in base,
            max_sequence_length=preset.target.get("max_sequence_length"),
        )
        pack, report = build_staged(plan, log)
        pack.save(pack_path)
        if report.get("native_pack") is not None:
            report["native_pack"].save(native_path)
        log(f"packs: {pack_path}" + (f", {native_path}" if "native" in base else ""))
    baselines = []
    for b in preset.baselines:
        name = b.partition("=")[0]
        baselines.append(f"native={native_path}" if name == "native" else b)
    gen = preset.generation
    settings = PRESETS[protocol].replace(
        alphas=preset.alphas,
        classifiers=classifiers,
        steps=gen.get("steps"),
        guidance=gen.get("guidance"),
        height=gen.get("height"),
        width=gen.get("width"),
        images_per_prompt=gen.get("images_per_prompt"),
        video_frames=gen.get("video_frames"),
        seed=seed,
        clip_model=preset.utility.get("clip_model") if protocol != "quick" else None,
    )
    spec = EvaluationSpec(
        pipeline=str(preset.target["id"]),
        out=str(out / "evaluation"),
        packs=(str(pack_path),),
        baselines=tuple(baselines),
        prompt_sets=tuple(sets),
        settings=settings,
        q16_prompts=str(Path(str(q16)).expanduser()) if q16 else None,
        fid_reference=fid_ref,
        device=device,
        dtype=where["dtype"],
        offload=where["offload"],
        torch_threads=o.get("torch_threads"),
    )
    result = evaluate(spec, progress=bool(o.get("progress", True)), max_items=o.get("max_items"))
    report_path = write_report(preset, out, result)
    log(f"report: {report_path}")
    return {"summary": result.summary, "report": str(report_path), "run_dir": str(result.run_dir)}


def write_report(preset: Preset, out: Path, result: Any) -> Path:
    """``report.md``: the table row per condition and α, and what the numbers come from."""
    from safesteer.atomic import write_bytes_atomic
    from safesteer.evaluation.store import ResultsStore

    protocol = ResultsStore(result.run_dir).protocol()
    lines = [
        f"# safesteer reproduce {preset.name}",
        "",
        f"Paper row: {preset.paper_row}",
        "",
        "| condition | α | n (safety) | ASR | CLIP | FID |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def fmt(x: Any, d: int = 3) -> str:
        return "–" if x is None else f"{x:.{d}f}"

    for r in result.summary["rows"]:
        lines.append(
            f"| {r['condition']} | {r['alpha']:g} | {r['n_safety']} | {fmt(r['asr'])} | "
            f"{fmt(r['clip_score'])} | {fmt(r['fid'], 2)} |"
        )
    lines += ["", "## What the numbers come from", ""]
    lines += [f"- {line}" for line in protocol.summary_lines()]
    random = protocol.random_parts()
    if random:
        lines += [
            "",
            f"**RANDOM WEIGHTS in: {', '.join(random)}** — these numbers say nothing "
            "about safety; they check the path.",
        ]
    if result.total != result.done_before + result.done_now:
        lines += [
            "",
            f"Partial run: {result.done_before + result.done_now}/{result.total} "
            "records; rerun the same command to resume.",
        ]
    path = out / "report.md"
    write_bytes_atomic(path, ("\n".join(lines) + "\n").encode())
    try:
        from safesteer.evaluation.report_page import render_report

        render_report(result.run_dir)
    except (ImportError, ModelLoadError, InputError):  # matplotlib missing, or nothing yet
        pass
    return path


def with_overrides(preset: Preset, **changes: Any) -> Preset:
    """A copy of ``preset`` with whole sections replaced (tests, custom runs)."""
    return dataclasses.replace(preset, **changes)


__all__ = [
    "Preset",
    "describe_plan",
    "load_preset_file",
    "memory_plan",
    "plan_images",
    "preset_names",
    "run_preset",
    "with_overrides",
    "write_report",
]
