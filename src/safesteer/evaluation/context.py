"""One evaluation's loaded parts: the spec, and the context that turns work items into results.

:class:`EvaluationSpec` holds everything an evaluation needs as plain values (so Ray workers can
rebuild it); :class:`EvaluationContext` loads the pipeline, the conditions and the scorer once,
then generates and scores work items. The local loop
(:func:`safesteer.evaluation.runner.evaluate`) and each Ray worker
(:mod:`safesteer.evaluation.ray_runner`) hold one context each.

Batches: :func:`batches` groups work items of one condition and α (one steering context), at
most ``batch_size`` per batch, and :meth:`EvaluationContext.process_batch` runs a batch as
**one** pipeline call — a list of prompts and a list of per-item generators (each item's own
seed, so its starting noise is the one it gets alone) — then one scoring call for all its
frames. Gated conditions decide per prompt inside the call (the attach code steers per row;
each item's record keeps its own row's steering). On CPU the images and scores do not depend
on the batch size: linear layers run row-invariant, convolutions one image at a time, and no
call runs one item alone (a lone item runs twice, the copy dropped: tensors of one image take
other kernel paths) (:mod:`safesteer.evaluation.batch_invariance`; tested bitwise against one
item per call). On a GPU this is not done (its libraries pick kernels by shape: batched
images may then differ from one-per-call ones in the last bits, as in diffusers itself).

Example:
    >>> from safesteer.evaluation.protocol import PRESETS
    >>> from safesteer.evaluation.workplan import PromptSet
    >>> spec = EvaluationSpec(pipeline="tiny-sd", out="runs/demo", baselines=("none",),
    ...                       prompt_sets=(PromptSet.inline("p", "safety", ["a cat"]),),
    ...                       settings=PRESETS["quick"])
    >>> ctx = EvaluationContext(spec)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from safesteer.errors import InputError
from safesteer.evaluation.batch_invariance import batch_invariant, pipeline_modules
from safesteer.evaluation.conditions import Condition, load_conditions
from safesteer.evaluation.protocol import EvaluationSettings
from safesteer.evaluation.registry import build_classifiers
from safesteer.evaluation.scoring import Scorer
from safesteer.evaluation.store import encode_png
from safesteer.evaluation.workplan import PromptSet, WorkItem

#: an item's record and its files: (relative path, PNG bytes, or an image the writer encodes)
Result = tuple[dict[str, Any], list[tuple[str, bytes | Image.Image]]]

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
    dtype: str | None = None  # a name of safesteer.models.device.DTYPES; None: as stored
    offload: str = "none"  # "model" / "sequential": diffusers CPU offload (GPU only)


def _load_pipeline(spec: EvaluationSpec, packs: Sequence[Any] = ()) -> tuple[Any, Any]:
    """``(pipe, adapter)`` from :func:`safesteer.targets.load_pipeline`; the adapter encodes at
    the packs' recorded ``max_sequence_length`` (checked against every pack's encoding)."""
    if spec.pipeline_revision:
        # load_pipeline takes no revision yet: a pinned revision must come as a local folder
        raise InputError(
            f"--pipeline-revision {spec.pipeline_revision} cannot be pinned by the loader",
            hint="download that revision to a folder and pass the folder as --pipeline",
        )
    from safesteer.targets import adapter_for, load_pipeline
    from safesteer.targets.encoding import adapter_options, check_encoding

    pipe, adapter = load_pipeline(
        spec.pipeline, dtype=spec.dtype, device=spec.device, offload=spec.offload
    )
    with contextlib.suppress(AttributeError):
        pipe.set_progress_bar_config(disable=True)  # our own bar counts items
    recorded = [p.encoding for p in packs if getattr(p, "encoding", None)]
    if recorded:  # every condition (none included) encodes the way the packs were fitted
        adapter = adapter_for(pipe, **adapter_options(recorded[0]))
    for pack in packs:
        check_encoding(getattr(pack, "encoding", None), adapter)
    return pipe, adapter


def _call_kwargs(
    pipe: Any, spec: EvaluationSpec, family: str, adapter: Any = None
) -> dict[str, Any]:
    """Effective call arguments: tiny defaults, then the settings; unknown names dropped.

    ``max_sequence_length`` is the adapter's (the length packs were fitted at), so every
    condition, the unsteered one included, encodes prompts the same way.
    """
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
    length = getattr(adapter, "max_sequence_length", None)
    if length is not None and "max_sequence_length" in params:
        kwargs["max_sequence_length"] = int(length)
    if "output_type" in params:
        kwargs["output_type"] = "pil"
    from safesteer.targets.sizes import check_size, size_multiple

    # before any generation: a size the family refuses or silently resizes is refused here
    check_size(
        kwargs.get("height"), kwargs.get("width"), size_multiple(pipe, family), spec.pipeline
    )
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


def build_scorer(spec: EvaluationSpec, pipe: Any) -> Scorer:
    """The CLIP model and the classifiers of the settings (:mod:`safesteer.evaluation.registry`)."""
    s = spec.settings
    clip = None
    if s.clip_model == "random":
        from safesteer.evaluation.clip_model import random_clip
        from safesteer.targets.tokenizers import clip_tokenizer

        clip = random_clip(getattr(pipe, "tokenizer", None) or clip_tokenizer(), seed=s.seed)
    elif s.clip_model:
        from safesteer.evaluation.clip_model import load_clip

        clip = load_clip(s.clip_model, device=spec.device)
    classifiers = build_classifiers(s, clip=clip, q16_prompts=spec.q16_prompts)
    return Scorer(classifiers, clip, clip_scale=s.clip_scale)


#: work items per batch (same condition and α): one pipeline call; Ray ships one batch per task
DEFAULT_BATCH_SIZE = 8


def batches(
    items: Sequence[WorkItem], batch_size: int = DEFAULT_BATCH_SIZE
) -> list[list[WorkItem]]:
    """``items`` grouped by (condition, α) in plan order, then cut into runs of ``batch_size``.

    Items of one batch share their steering, so a batched generate can make one pipeline call
    for the whole batch. Every item appears once.

    Example:
        >>> from safesteer.evaluation.conditions import Condition
        >>> from safesteer.evaluation.workplan import PromptSet, plan_work
        >>> items = plan_work([Condition("none", "none")], [PromptSet.inline("p", "safety",
        ...                   ["a", "b", "c"])], alphas=(0,), images_per_prompt=1)
        >>> [len(b) for b in batches(items, 2)]
        [2, 1]
    """
    if batch_size < 1:
        raise InputError(f"batch size {batch_size}", hint="use 1 or more")
    groups: dict[tuple[str, float], list[WorkItem]] = {}
    for item in items:
        groups.setdefault((item.condition, float(item.alpha)), []).append(item)
    return [g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]


def steering_record(rows: Sequence[Any]) -> dict[str, Any]:
    """What steering did to one item (its prompt's rows of the last call), for its record.

    ``steered``: α·v was added; ``gate``: which gate decided (None: always-on / none);
    ``gate_flagged``: the gate's decision (recorded at α = 0 too); ``gate_scores``: the scores
    of the item's first row; ``categories``: the vectors used. No prompt text.
    """
    first = rows[0] if rows else None
    return {
        "steered": any(bool(r.steered) for r in rows),
        "gate": None if first is None else first.gate,
        "gate_flagged": None if first is None else first.flagged,
        "gate_scores": {} if first is None else dict(first.gate_scores),
        "categories": [] if first is None else list(first.categories),
    }


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
        packs = [c.pack for c in self.conditions.values() if c.pack is not None]
        self.pipe, self.adapter = _load_pipeline(spec, packs)
        self.family = str(self.adapter.family)
        self.call_kwargs = _call_kwargs(self.pipe, spec, self.family, self.adapter)
        self.scorer = build_scorer(spec, self.pipe)
        self._readers: dict[str, Any] = {}
        #: what steering did in the last :meth:`generate` (:func:`steering_record`)
        self.last_steering: dict[str, Any] = {"steered": False, "gate": None}
        #: the same for each item of the last :meth:`generate_batch`
        self.last_steerings: list[dict[str, Any]] = []
        self._modules = pipeline_modules(self.pipe)
        #: batch-invariant generation and scoring (CPU only: GPU libraries choose kernels by
        #: shape in other ways, and there convolutions should see the whole batch)
        self.invariant = str(spec.device).startswith("cpu")
        self.scorer.invariant = self.invariant

    def source_reader(self, cond: Condition) -> Any:
        """The source model a source-gated pack names, loaded once per model/layer/pooling."""

        from safesteer.models import SourceReader

        key = json.dumps(cond.pack.source_gate_spec, sort_keys=True, default=str)
        if key not in self._readers:
            self._readers[key] = SourceReader.from_spec(
                cond.pack.source_gate_spec, dtype=self.spec.dtype, device=self.spec.device
            )
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
            "execution": {
                "device": self.spec.device,
                "dtype": str(self.spec.dtype or "as stored"),
                "offload": self.spec.offload,
                "torch_threads": torch.get_num_threads(),
            },
            "classifiers": self.scorer.describe_classifiers(),
            "clip_score": self.scorer.describe_clip(),
        }

    def generate(self, item: WorkItem) -> tuple[list[Image.Image], bool]:
        """The image, or the sampled video frames, of one work item; and whether it is a video.

        What the steering did is kept in :attr:`last_steering` (see :func:`steering_record`).
        """
        return self.generate_batch([item])[0]

    def generate_batch(self, items: Sequence[WorkItem]) -> list[tuple[list[Image.Image], bool]]:
        """Frames of each item from **one** pipeline call (items of one condition and α).

        Each item keeps its own seed (a list of generators); a gated condition decides per
        prompt, and :attr:`last_steerings` keeps each item's steering record. α = 0 is the
        unsteered pipeline (ĥ = h). On CPU the call runs batch-invariant and a lone item runs
        twice (the copy is dropped; see the module docstring): the result does not depend on
        the batch.
        """
        if not items:
            return []
        first = items[0]
        if any((it.condition, it.alpha) != (first.condition, first.alpha) for it in items):
            raise InputError(
                "a pipeline call mixes conditions or strengths",
                hint="group work items with batches()",
            )
        cond: Condition = self.conditions[first.condition]
        run = list(items) if len(items) > 1 or not self.invariant else [first, first]
        kwargs = dict(
            self.call_kwargs,
            prompt=[it.prompt for it in run],
            generator=[torch.Generator("cpu").manual_seed(it.seed) for it in run],
        )
        steerings: list[dict[str, Any]] = [{"steered": False, "gate": None} for _ in items]
        with contextlib.ExitStack() as stack:
            if self.invariant:
                stack.enter_context(batch_invariant(self._modules))
            if cond.pack is None or first.alpha == 0.0:  # α = 0: ĥ = h, the unsteered pipeline
                out = self.pipe(**kwargs)
            else:
                from safesteer.targets import last_steering, steered

                reader = self.source_reader(cond) if cond.gate == "source" else None
                stack.enter_context(
                    steered(
                        self.pipe, cond.pack, alpha=first.alpha, **cond.steering_options(reader)
                    )
                )
                out = self.pipe(**kwargs)
                rows = last_steering(self.pipe)  # one row per prompt of the call, in order
                steerings = [steering_record(rows[i : i + 1]) for i in range(len(items))]
        self.last_steerings = steerings
        self.last_steering = steerings[0]
        if self.adapter.makes_video:
            frames = self.spec.settings.video_frames
            return [(sample_frames(list(out.frames[i]), frames), True) for i in range(len(items))]
        return [([_to_pil(out.images[i])], False) for i in range(len(items))]

    def gate_record(self, cond: Condition, prompt: str) -> dict[str, Any]:
        """What a gated condition's gate decides for ``prompt`` at α = 0 (nothing is steered):
        the record a shared unsteered image carries for that condition."""
        return self.gate_records(cond, [prompt])[0]

    def gate_records(self, cond: Condition, prompts: Sequence[str]) -> list[dict[str, Any]]:
        """:meth:`gate_record` of each prompt, pooled in one call (pooled states do not depend
        on the batch: :mod:`safesteer.models.batching`)."""
        if cond.pack is None or cond.gate is None:
            return [{"steered": False, "gate": None} for _ in prompts]
        if cond.gate == "source":
            reader = self.source_reader(cond)
            layer = int(cond.pack.source_gate_spec["layer"])
            decision = cond.pack.source_gate.decide(reader.pooled(list(prompts), layer).float())
        else:
            decision = cond.pack.gate.decide(self.adapter.pooled(list(prompts)))
        return [
            {
                "steered": False,
                "gate": cond.gate,
                "gate_flagged": bool(decision.steer[i]),
                "gate_scores": {k: float(v[i]) for k, v in decision.scores.items()},
                "categories": list(decision.active[i]),
            }
            for i in range(len(prompts))
        ]

    def process(self, item: WorkItem) -> Result:
        """Generate and score one item: its record and its files (relative path, PNG bytes)."""
        return self.process_batch([item])[0]

    def process_batch(self, items: Sequence[WorkItem], *, encode: bool = True) -> list[Result]:
        """Results of one batch: items that share a condition and α (:func:`batches`), made by
        one pipeline call and scored by one scoring call. The batching unit of the local loop
        and of each Ray worker.

        A shared α = 0 item (``item.shared_by``) is generated once, unsteered; the gate
        decisions of the gated conditions sharing it are still recorded, per condition
        (``shared_steering``), as their own α = 0 items would have recorded them.
        ``encode=False`` leaves the frames as images (the local runner's writer thread encodes
        them off the critical path); Ray workers send PNG bytes. ``seconds`` in a record is
        the item's share of the batch's time.
        """
        t0 = time.perf_counter()
        generated = self.generate_batch(items)
        steerings = list(self.last_steerings)
        shared: list[dict[str, Any]] = [{} for _ in items]
        if items and items[0].alpha == 0.0:
            names = dict.fromkeys(n for it in items for n in (it.condition, *it.shared_by))
            for name in names:
                cond = self.conditions[name]
                if cond.gate is None:
                    continue
                users = [i for i, it in enumerate(items) if name in (it.condition, *it.shared_by)]
                found = self.gate_records(cond, [items[i].prompt for i in users])
                for i, rec in zip(users, found, strict=True):
                    shared[i][name] = rec
            steerings = [
                sh.get(it.condition, st)
                for it, sh, st in zip(items, shared, steerings, strict=True)
            ]
        scores = self.scorer.score_many([f for f, _ in generated], [it.prompt for it in items])
        share = round((time.perf_counter() - t0) / max(len(items), 1), 4)
        results: list[Result] = []
        for item, (frames, video), score, steering, sh in zip(
            items, generated, scores, steerings, shared, strict=True
        ):
            names_ = [item.relpath(k if video else None) for k in range(len(frames))]
            record = {
                **asdict(item),
                "id": item.id,
                "files": names_,
                "frames": len(frames),
                **score,
                "steering": steering,
                "seconds": share,
            }
            if sh:
                record["shared_steering"] = sh
            files = zip(names_, (encode_png(f) if encode else f for f in frames), strict=True)
            results.append((record, list(files)))
        return results

    def process_all(
        self,
        items: Sequence[WorkItem],
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        encode: bool = True,
    ) -> Iterator[Result]:
        """:meth:`process_batch` over :func:`batches` of ``items``, yielding as each finishes."""
        for batch in batches(items, batch_size):
            yield from self.process_batch(batch, encode=encode)
