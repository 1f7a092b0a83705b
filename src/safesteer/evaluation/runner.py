"""The evaluation loop: generate each work item, score it, store it; resumable at any point.

:func:`evaluate` plans every (condition, α, prompt, image) item, skips those already in the
run's store, and for each remaining one: generates with the pipeline (steered by the
condition's pack at strength α through :func:`safesteer.targets.steered`), writes the image(s)
atomically, scores them, then appends the item's record. At the end it computes FID per
(condition, α) on the utility prompts and writes ``summary.json``. ``ray_address`` sends the
items to Ray workers instead (:mod:`safesteer.evaluation.ray_runner`); the store is the same.

Example:
    >>> spec = EvaluationSpec(pipeline="tiny-sd", out="runs/demo", baselines=("none",),
    ...                       prompt_sets=(PromptSet.inline("p", "safety", ["a cat"]),),
    ...                       settings=PRESETS["quick"])
    >>> result = evaluate(spec)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from safesteer.errors import InputError, ModelLoadError
from safesteer.evaluation.conditions import Condition, load_conditions
from safesteer.evaluation.fid import FIDScorer, load_reference_images
from safesteer.evaluation.protocol import PAPER_NOTES, EvaluationSettings, ProtocolRecord
from safesteer.evaluation.scoring import Scorer
from safesteer.evaluation.store import ResultsStore, encode_png
from safesteer.evaluation.summary import summarize
from safesteer.evaluation.workplan import PromptSet, WorkItem, plan_work

Result = tuple[dict[str, Any], list[tuple[str, bytes]]]  # an item's record and its files

# call arguments we set from the settings, by diffusers' parameter names
_SETTING_ARGS = {
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "height": "height",
    "width": "width",
}


@dataclass(frozen=True)
class EvaluationSpec:
    """Everything an evaluation needs, as plain values (so Ray workers can rebuild it)."""

    pipeline: str
    out: str
    packs: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ("none",)
    prompt_sets: tuple[PromptSet, ...] = ()
    settings: EvaluationSettings = field(default_factory=EvaluationSettings)
    q16_prompts: str | None = None  # a file, or "random" (tests only)
    fid_reference: str | None = None
    device: str = "cpu"
    pipeline_revision: str | None = None
    modes: tuple[str, ...] = ("always",)  # how packs are applied: "always" and/or "gated"
    torch_threads: int | None = None  # CPU threads for torch; 1 is far faster on a busy machine


@dataclass
class EvaluationResult:
    """What a call to :func:`evaluate` did."""

    run_dir: Path
    total: int
    done_before: int
    done_now: int
    summary: dict[str, Any]


def _targets() -> Any:
    # the targets layer (pipelines, steering); imported on use so scoring-only code stays light
    try:
        return importlib.import_module("safesteer.targets")
    except ImportError as exc:  # pragma: no cover - the targets layer ships with the package
        raise ModelLoadError(f"safesteer.targets is unavailable: {exc}") from exc


def _load_pipeline(spec: EvaluationSpec) -> tuple[Any, Any]:
    """``(pipe, adapter)`` from :func:`safesteer.targets.load_pipeline`."""
    if spec.pipeline_revision:
        # load_pipeline takes no revision yet: a pinned revision must come as a local folder
        raise InputError(
            f"--pipeline-revision {spec.pipeline_revision} cannot be pinned by the loader",
            hint="download that revision to a folder and pass the folder as --pipeline",
        )
    pipe, adapter = _targets().load_pipeline(spec.pipeline, device=spec.device)
    with contextlib.suppress(AttributeError):
        pipe.set_progress_bar_config(disable=True)  # our own bar counts items
    return pipe, adapter


def _call_kwargs(pipe: Any, spec: EvaluationSpec, family: str) -> dict[str, Any]:
    """Effective call arguments: tiny defaults, then the settings; unknown names dropped."""
    params = inspect.signature(pipe.__call__).parameters
    kwargs: dict[str, Any] = {}
    if spec.pipeline.startswith("tiny-"):
        from safesteer.targets.tiny import TINY_CALL_DEFAULTS

        # small sizes and 2 steps keep tiny random pipelines fast (their images are noise anyway)
        kwargs.update({"num_inference_steps": 2, **TINY_CALL_DEFAULTS.get(family, {})})
    for setting, arg in _SETTING_ARGS.items():
        value = getattr(spec.settings, setting)
        if value is not None:
            kwargs[arg] = value
    for arg in _SETTING_ARGS.values():  # record the pipeline's own default when not set
        default = params[arg].default if arg in params else inspect.Parameter.empty
        if arg not in kwargs and default is not inspect.Parameter.empty:
            kwargs[arg] = default
    if "output_type" in params:
        kwargs["output_type"] = "pil"
    return {k: v for k, v in kwargs.items() if k in params}


def _to_pil(frame: Any) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame.convert("RGB")
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def sample_frames(frames: Sequence[Any], n: int) -> list[Image.Image]:
    """``n`` frames evenly spaced over the clip, first and last included."""
    if n <= 0 or len(frames) <= n:
        return [_to_pil(f) for f in frames]
    idx = sorted({round(float(i)) for i in np.linspace(0, len(frames) - 1, n)})
    return [_to_pil(frames[i]) for i in idx]


def _build_scorer(spec: EvaluationSpec, pipe: Any) -> Scorer:
    from safesteer.evaluation.nudenet import NudeNetClassifier
    from safesteer.evaluation.open_nsfw import OpenNSFWClassifier
    from safesteer.evaluation.q16 import Q16Classifier, load_prompt_embeddings

    s = spec.settings
    clip = None
    if s.clip_model == "random":
        from safesteer.evaluation.clip import random_clip
        from safesteer.targets.tokenizers import clip_tokenizer

        clip = random_clip(getattr(pipe, "tokenizer", None) or clip_tokenizer(), seed=s.seed)
    elif s.clip_model:
        from safesteer.evaluation.clip import load_clip

        clip = load_clip(s.clip_model, device=spec.device)
    classifiers: list[Any] = []
    for name in s.classifiers:
        if name == "nudenet":
            classifiers.append(NudeNetClassifier(s.nudenet_labels, s.nudenet_threshold))
        elif name == "open_nsfw":
            classifiers.append(OpenNSFWClassifier(s.open_nsfw_threshold))
        elif name == "q16":
            if clip is None:
                raise InputError("Q16 needs a CLIP model", hint="pass --clip-model (ViT-L/14)")
            if spec.q16_prompts is None:
                raise InputError(
                    "Q16 needs its prompt embeddings",
                    hint="pass --q16-prompts FILE (.safetensors/.npy/.json; see "
                    "safesteer.evaluation.q16 to convert the pickle), or drop q16 from "
                    "--classifiers",
                )
            if spec.q16_prompts == "random":
                classifiers.append(Q16Classifier.random(clip, seed=s.seed))
            else:
                classifiers.append(
                    Q16Classifier(
                        clip,
                        load_prompt_embeddings(spec.q16_prompts),
                        s.q16_threshold,
                        prompts_source=spec.q16_prompts,
                    )
                )
        else:
            raise InputError(f"unknown classifier {name!r}", hint="use nudenet, q16, open_nsfw")
    return Scorer(classifiers, clip, clip_scale=s.clip_scale)


def build_fid(spec: EvaluationSpec) -> FIDScorer | None:
    """The FID scorer of the settings, or None when FID is off or has no reference folder."""
    kind = spec.settings.fid_features
    if not kind or not spec.fid_reference:
        return None
    if kind == "inception":
        return FIDScorer.inception()
    if kind == "random":
        return FIDScorer.random_features(seed=spec.settings.seed)
    raise InputError(f"unknown FID features {kind!r}", hint="use inception or random")


class EvaluationContext:
    """A loaded pipeline, conditions and scorer: turns work items into records and files."""

    def __init__(self, spec: EvaluationSpec) -> None:
        self.spec = spec
        if spec.torch_threads:
            torch.set_num_threads(spec.torch_threads)
        self.conditions = {
            c.name: c
            for c in load_conditions(
                spec.packs, spec.baselines, seed=spec.settings.seed, modes=spec.modes
            )
        }
        self.pipe, self.adapter = _load_pipeline(spec)
        self.family = str(self.adapter.family)
        self.call_kwargs = _call_kwargs(self.pipe, spec, self.family)
        self.scorer = _build_scorer(spec, self.pipe)
        self._readers: dict[str, Any] = {}

    def source_reader(self, cond: Condition) -> Any:
        """The source model a source-gated pack names, loaded once per model/layer/pooling."""
        import json

        from safesteer.models import SourceReader

        key = json.dumps(cond.pack.source_gate_spec, sort_keys=True, default=str)
        if key not in self._readers:
            self._readers[key] = SourceReader.from_spec(cond.pack.source_gate_spec)
        return self._readers[key]

    def describe(self) -> dict[str, Any]:
        """Pipeline, classifier and CLIP descriptions for the protocol record."""
        random = self.spec.pipeline.startswith("tiny-") or bool(
            getattr(self.adapter, "random_weights", False)
        )
        return {
            "pipeline": {
                "id": self.spec.pipeline,
                "revision": self.spec.pipeline_revision or "unpinned",
                "class": type(self.pipe).__name__,
                "family": self.family,
                "target_id": str(self.adapter.target_id),
                "conditioning_space": str(self.adapter.conditioning_space),
                "random_weights": random,
                "call": {k: v for k, v in self.call_kwargs.items() if k != "output_type"},
            },
            "execution": {"device": self.spec.device, "torch_threads": torch.get_num_threads()},
            "classifiers": self.scorer.describe_classifiers(),
            "clip_score": self.scorer.describe_clip(),
        }

    def generate(self, item: WorkItem) -> tuple[list[Image.Image], bool]:
        """The image, or the sampled video frames, of one work item; and whether it is a video."""
        cond: Condition = self.conditions[item.condition]
        kwargs = dict(
            self.call_kwargs,
            prompt=item.prompt,
            generator=torch.Generator("cpu").manual_seed(item.seed),
        )
        if cond.pack is None:
            out = self.pipe(**kwargs)
        else:
            reader = self.source_reader(cond) if cond.gate == "source" else None
            with _targets().steered(
                self.pipe, cond.pack, alpha=item.alpha, **cond.steering_options(reader)
            ):
                out = self.pipe(**kwargs)
        if getattr(out, "frames", None) is not None:
            return sample_frames(list(out.frames[0]), self.spec.settings.video_frames), True
        return [_to_pil(out.images[0])], False

    def process(self, item: WorkItem) -> Result:
        """Generate and score one item: its record and its files (relative path, PNG bytes)."""
        t0 = time.perf_counter()
        frames, video = self.generate(item)
        scores = self.scorer.score(frames, item.prompt)
        names = [item.relpath(k if video else None) for k in range(len(frames))]
        record = {
            **asdict(item),
            "id": item.id,
            "files": names,
            "frames": len(frames),
            **scores,
            "seconds": round(time.perf_counter() - t0, 4),
        }
        return record, [(n, encode_png(f)) for n, f in zip(names, frames, strict=True)]

    def process_all(self, items: Sequence[WorkItem]) -> Iterator[Result]:
        """:meth:`process` each item in turn, yielding as each finishes."""
        for item in items:
            yield self.process(item)


def make_protocol(
    spec: EvaluationSpec,
    described: dict[str, Any],
    conditions: Sequence[Condition],
    fid: FIDScorer | None,
) -> ProtocolRecord:
    """The protocol record of a run (see :class:`ProtocolRecord`)."""
    from safesteer.provenance import environment_record

    settings = asdict(spec.settings)
    settings["alphas"] = [float(a) for a in spec.settings.alphas]
    fid_d = None
    if fid is not None:
        fid_d = {
            **fid.describe(),
            "reference": spec.fid_reference,
            "prompt_role": "utility",
            "rule": "per (condition, α) over utility images",
        }
    n_classifiers = ", ".join(c["name"] for c in described["classifiers"]) or "none"
    return ProtocolRecord(
        pipeline=described["pipeline"],
        conditions=[c.describe() for c in conditions],
        prompt_sets=[p.describe() for p in spec.prompt_sets],
        settings=settings,
        classifiers=described["classifiers"],
        clip_score=described["clip_score"],
        fid=fid_d,
        asr_rule=f"flagged by any of: {n_classifiers} (any sampled frame for video)",
        notes=PAPER_NOTES if spec.settings.preset == "paper" else {},
        # how it ran (device, Ray workers) is not part of the fingerprint: results are the same
        environment={
            **environment_record(),
            **{k: str(v) for k, v in described.get("execution", {}).items()},
        },
    )


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise InputError(
                f"{run_dir} is being written by another evaluation",
                hint="wait for it to finish or choose another --out",
            ) from exc
        yield


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="img",
        disable=not enabled,
        desc="evaluate",
        dynamic_ncols=True,
    )


def store_item(
    store: ResultsStore, record: dict[str, Any], files: Sequence[tuple[str, bytes]]
) -> None:
    """Write an item's files, then (only then) its record."""
    for relpath, data in files:
        store.write_image_bytes(relpath, data)
    store.append(record)


def compute_fid(store: ResultsStore, fid: FIDScorer, reference_dir: str) -> dict[str, Any]:
    """FID per (condition, α) over the utility images in the store, written to ``fid.json``."""
    reference = load_reference_images(reference_dir)
    groups: dict[tuple[str, float], list[Path]] = {}
    for r in store.completed().values():
        if r["role"] == "utility":
            groups.setdefault((r["condition"], float(r["alpha"])), []).extend(
                store.images_dir / f for f in r["files"]
            )
    results = []
    for (cond, alpha), paths in sorted(groups.items()):
        images = [Image.open(p).convert("RGB") for p in sorted(paths)]
        value = fid.compute(images, reference) if len(images) >= 2 else None
        results.append(
            {"condition": cond, "alpha": alpha, "n_generated": len(images), "fid": value}
        )
    out = {
        "settings": fid.describe(),
        "reference": reference_dir,
        "n_reference": len(reference),
        "results": results,
    }
    store.write_json("fid.json", out)
    return out


def evaluate(
    spec: EvaluationSpec,
    *,
    progress: bool = True,
    ray_address: str | None = None,
    ray_workers: int | None = None,
    ray_gpus_per_worker: float | None = None,
    max_items: int | None = None,
) -> EvaluationResult:
    """Run (or resume) an evaluation into ``spec.out``; see the module docstring.

    ``max_items`` stops after that many new items (for smoke runs); a rerun continues.
    ``ray_address``: ``"local"`` starts a local Ray, anything else is passed to ``ray.init``.
    """
    if not spec.prompt_sets:
        raise InputError("no prompt sets", hint="pass --prompts and/or --utility-prompts")
    store = ResultsStore(spec.out)
    fid = build_fid(spec)
    conditions = load_conditions(
        spec.packs, spec.baselines, seed=spec.settings.seed, modes=spec.modes
    )
    items = plan_work(
        conditions,
        spec.prompt_sets,
        alphas=spec.settings.alphas,
        images_per_prompt=spec.settings.images_per_prompt,
        seed=spec.settings.seed,
    )
    with _run_lock(store.run_dir), contextlib.ExitStack() as stack:
        process_all: Callable[[Sequence[WorkItem]], Iterable[Result]]
        if ray_address is not None:
            from safesteer.evaluation.ray_runner import RayPool

            pool = RayPool(
                spec, address=ray_address, workers=ray_workers, gpus_per_worker=ray_gpus_per_worker
            )
            stack.callback(pool.close)
            described = pool.describe()
            process_all = pool.run
        else:
            ctx = EvaluationContext(spec)
            described = ctx.describe()
            process_all = ctx.process_all
        store.open(make_protocol(spec, described, conditions, fid))
        done = store.completed()
        missing = [it for it in items if it.id not in done]
        bar = stack.enter_context(_progress(len(items), len(items) - len(missing), progress))
        n = 0
        for record, files in process_all(missing[:max_items]):
            store_item(store, record, files)  # files first, then the record
            n += 1
            bar.update(1)
        if fid is not None and spec.fid_reference and len(store.completed()) == len(items):
            compute_fid(store, fid, spec.fid_reference)
        summary = summarize(store.completed().values(), store.read_json("fid.json"))
        store.write_json("summary.json", summary)
    return EvaluationResult(store.run_dir, len(items), len(done), n, summary)
