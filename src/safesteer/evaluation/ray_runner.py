"""Scale-out on Ray: one worker per GPU (CPU workers when there is none), work sent in batches.

Each worker is a Ray actor holding its own :class:`~safesteer.evaluation.context.EvaluationContext`
(pipeline, conditions, classifiers). The driver cuts the remaining work items into **batches**
(:func:`~safesteer.evaluation.context.batches`: items sharing a condition and α, so one
batched pipeline call can serve a batch — the same unit as the local loop), hands them to a
``ray.util.ActorPool`` that keeps every worker busy, and writes results into the run's store as
they arrive — images and records go through the same
:func:`~safesteer.evaluation.runner.store_item`, so a killed Ray run resumes like a local one.
Files travel back to the driver as PNG bytes: workers need no shared filesystem.

Example:
    >>> result = evaluate(spec, ray_address="local", ray_workers=2)  # doctest: +SKIP
    >>> result = evaluate(spec, ray_address="ray://head:10001")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from safesteer.errors import InputError, ModelLoadError, SafeSteerError
from safesteer.evaluation.context import DEFAULT_BATCH_SIZE, EvaluationContext, Result, batches
from safesteer.evaluation.workplan import WorkItem


class _Worker:
    """The body of a Ray actor: builds the context once, then processes batches of items."""

    def __init__(self, spec: Any) -> None:
        self.ctx = EvaluationContext(spec)

    def describe(self) -> dict[str, Any]:
        return self.ctx.describe()

    def process(self, items: Sequence[WorkItem]) -> list[Result]:
        return self.ctx.process_batch(items)


def split_by_prompt(items: Sequence[WorkItem]) -> list[list[WorkItem]]:
    """Group items by (prompt set, prompt index), keeping the plan's order."""
    groups: dict[tuple[str, int], list[WorkItem]] = {}
    for it in items:
        groups.setdefault((it.prompt_set, it.prompt_index), []).append(it)
    return list(groups.values())


class RayPool:
    """Ray actors for one evaluation; :meth:`run` yields ``(record, files)`` as tasks finish."""

    def __init__(
        self,
        spec: Any,
        *,
        address: str = "local",
        workers: int | None = None,
        gpus_per_worker: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.batch_size = batch_size
        try:
            import ray
        except ImportError as exc:
            raise ModelLoadError(
                "Ray is not installed", hint="pip install 'safesteer[ray]' or drop --ray"
            ) from exc
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if address == "local":
                ray.init(include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
            self._started = True
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if gpus else 0.0
        if workers is None:
            workers = gpus if gpus else 1
        if workers < 1:
            if self._started:
                ray.shutdown()
            raise InputError(f"--ray-workers is {workers}", hint="use 1 or more")
        if gpus_per_worker > 0 and spec.device == "cpu":
            spec = replace(spec, device="cuda")  # a GPU worker should use its GPU
        actor: Any = ray.remote(num_cpus=1, num_gpus=gpus_per_worker)(_Worker)
        try:
            self.actors: list[Any] = [actor.remote(spec) for _ in range(workers)]
        except BaseException:
            if self._started:
                ray.shutdown()
            raise
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker

    def describe(self) -> dict[str, Any]:
        """The first worker's pipeline and classifier descriptions (for the protocol record)."""
        described: dict[str, Any] = dict(self._get(self.actors[0].describe.remote()))
        described["execution"] = {
            **described.get("execution", {}),
            "ray_workers": self.workers,
            "ray_gpus_per_worker": self.gpus_per_worker,
        }
        return described

    def run(self, items: Sequence[WorkItem]) -> Iterator[Result]:
        """Process ``items`` in batches on an actor pool, yielding results as batches finish."""
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        work = batches(items, self.batch_size)
        results = pool.map_unordered(lambda actor, batch: actor.process.remote(batch), work)
        while True:
            try:
                done = next(results)
            except StopIteration:
                return
            except Exception as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, SafeSteerError):
                    raise cause from None
                raise
            yield from done

    def _get(self, ref: Any) -> Any:
        """``ray.get``, re-raising a worker's user error as itself (not wrapped in Ray's)."""
        try:
            return self._ray.get(ref)
        except Exception as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SafeSteerError):
                raise cause from None
            raise

    def close(self) -> None:
        for a in self.actors:
            self._ray.kill(a)
        if self._started:
            self._ray.shutdown()
