"""The evaluation loop: generate each work item, score it, store it; resumable at any point.

:func:`evaluate` plans every (condition, α, prompt, image) item, skips those already in the
run's store, and runs the rest in pipeline calls of ``batch_size`` items of one condition
and α (:func:`~safesteer.evaluation.context.batches`; on CPU the same images and records as one
item per call): generates with the pipeline (steered by the condition's pack at strength α
through :func:`safesteer.targets.steered`), scores, then hands each item to a writer thread
that encodes and writes its image(s) atomically and only then appends its record — PNG
encoding and fsyncs run while the next call generates. A killed run loses at most the items
still queued (never a half-written file or a record without its files) and resumes. At the
end it computes FID per (condition, α) on the utility prompts and writes ``summary.json``.
``ray_address`` sends the items to Ray workers instead (:mod:`safesteer.evaluation.ray_runner`);
the store is the same.

Example:
    >>> from safesteer.evaluation.protocol import PRESETS
    >>> from safesteer.evaluation.workplan import PromptSet
    >>> spec = EvaluationSpec(pipeline="tiny-sd", out="runs/demo", baselines=("none",),
    ...                       prompt_sets=(PromptSet.inline("p", "safety", ["a cat"]),),
    ...                       settings=PRESETS["quick"])
    >>> result = evaluate(spec)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import logging
import queue
import threading
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from safesteer.errors import InputError
from safesteer.evaluation.conditions import Condition, load_conditions
from safesteer.evaluation.context import (
    DEFAULT_BATCH_SIZE,
    EvaluationContext,
    EvaluationSpec,
    Result,
    batches,
)
from safesteer.evaluation.fid import FIDScorer, load_reference_images
from safesteer.evaluation.protocol import ProtocolRecord, preset_notes, resolved_path
from safesteer.evaluation.registry import settings_record
from safesteer.evaluation.store import ResultsStore, encode_png
from safesteer.evaluation.summary import summarize
from safesteer.evaluation.workplan import (
    WorkItem,
    generation_plan,
    plan_work,
    shared_records,
    work_record,
)

log = logging.getLogger("safesteer.evaluation")

__all__ = [
    "EvaluationResult",
    "EvaluationSpec",
    "StoreWriter",
    "batches",
    "build_fid",
    "compute_fid",
    "evaluate",
    "make_protocol",
    "store_item",
]


@dataclass
class EvaluationResult:
    """What a call to :func:`evaluate` did."""

    run_dir: Path
    total: int
    done_before: int
    done_now: int
    summary: dict[str, Any]
    images_generated: int = 0  # images made by this call (α = 0 is made once, shared)


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


def make_protocol(
    spec: EvaluationSpec,
    described: dict[str, Any],
    conditions: Sequence[Condition],
    fid: FIDScorer | None,
) -> ProtocolRecord:
    """The protocol record of a run (see :class:`ProtocolRecord`)."""
    from safesteer.provenance import environment_record

    settings = settings_record(spec.settings)
    fid_d = None
    if fid is not None:
        fid_d = {
            **fid.describe(),
            "reference": resolved_path(spec.fid_reference) if spec.fid_reference else None,
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
        notes=preset_notes(spec.settings),
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

    from safesteer.logs import progress_enabled

    return tqdm(
        total=total,
        initial=initial,
        unit="img",
        disable=not (enabled and progress_enabled()),
        desc="evaluate",
        dynamic_ncols=True,
    )


def store_item(
    store: ResultsStore,
    record: dict[str, Any],
    files: Sequence[tuple[str, bytes | Image.Image]],
    skip: Container[str] = (),
) -> int:
    """Write an item's files (PNG-encoding images given as such), then (only then) its record
    and those of the conditions sharing it
    (:func:`~safesteer.evaluation.workplan.shared_records`), leaving out ids in ``skip``
    (already stored); returns how many records were appended."""
    for relpath, data in files:
        store.write_image_bytes(relpath, data if isinstance(data, bytes) else encode_png(data))
    records = [r for r in shared_records(record) if r["id"] not in skip]
    for r in records:
        store.append(r)
    return len(records)


class StoreWriter:
    """Stores items on a background thread, in the order given (:func:`store_item` each).

    ``put`` blocks when ``depth`` items are waiting (bounded memory); an error on the writer
    thread is raised by the next ``put`` or by ``close``, which writes everything queued.
    ``skip``: record ids already stored (see :func:`store_item`); ``appended`` counts the
    records written.
    """

    def __init__(self, store: ResultsStore, depth: int = 8, skip: Container[str] = ()) -> None:
        self.store = store
        self.skip = skip
        self.appended = 0
        self._queue: queue.Queue[Result | None] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="safesteer-store", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (entry := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.appended += store_item(self.store, *entry, skip=self.skip)
                except BaseException as exc:  # handed to the main thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, record: dict[str, Any], files: Sequence[tuple[str, bytes | Image.Image]]) -> None:
        self._raise()
        self._queue.put((record, list(files)))

    def close(self) -> None:
        """Write what is queued, stop the thread, re-raise its error if any."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()


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
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> EvaluationResult:
    """Run (or resume) an evaluation into ``spec.out``; see the module docstring.

    ``batch_size``: work items per batch (same condition and α; :func:`batches`): one
    pipeline call, the unit both the local loop and Ray workers process. Recorded under the
    protocol's execution, not its fingerprint: a run resumes with another batch size.

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
    generated = generation_plan(items)  # α = 0 once per prompt, shared by every condition
    with _run_lock(store.run_dir), contextlib.ExitStack() as stack:
        process_all: Callable[[Sequence[WorkItem]], Iterable[Result]]
        if ray_address is not None:
            from safesteer.evaluation.ray_runner import RayPool

            pool = RayPool(
                spec,
                address=ray_address,
                workers=ray_workers,
                gpus_per_worker=ray_gpus_per_worker,
                batch_size=batch_size,
            )
            stack.callback(pool.close)
            described = pool.describe()
            process_all = pool.run
        else:
            ctx = EvaluationContext(spec)
            described = ctx.describe()
            process_all = functools.partial(ctx.process_all, batch_size=batch_size, encode=False)
        # how it ran, not what it computes: kept out of the protocol's fingerprint
        described["execution"] = {**described.get("execution", {}), "batch_size": batch_size}
        protocol = make_protocol(spec, described, conditions, fid)
        store.open(dataclasses.replace(protocol, work=work_record(items, generated)))
        done = store.completed()
        done_before = sum(1 for it in items if it.id in done)
        missing = [g for g in generated if any(i not in done for i in g.record_ids())]
        log.info(
            "%s: %d items planned (conditions %s; α %s), %d images to generate (α = 0 shared), "
            "%d items done before, %d images to do",
            store.run_dir,
            len(items),
            ", ".join(c.name for c in conditions),
            ", ".join(f"{a:g}" for a in spec.settings.alphas),
            len(generated),
            done_before,
            len(missing),
        )
        bar = stack.enter_context(
            _progress(len(generated), len(generated) - len(missing), progress)
        )
        made = 0
        writer = StoreWriter(store, depth=2 * batch_size, skip=done)
        try:
            for record, files in process_all(missing[:max_items]):
                writer.put(record, files)  # files first, then the records, on the writer thread
                made += 1
                bar.update(1)
        finally:
            writer.close()
        n = writer.appended
        if fid is not None and spec.fid_reference and len(store.completed()) == len(items):
            log.info("computing FID per (condition, α) against %s", spec.fid_reference)
            compute_fid(store, fid, spec.fid_reference)
        summary = summarize(
            store.completed().values(), store.read_json("fid.json"), store.protocol().fid
        )
        store.write_json("summary.json", summary)
    return EvaluationResult(store.run_dir, len(items), done_before, n, summary, made)
