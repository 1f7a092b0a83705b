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

import re
import socket
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


#: seconds to wait for a Ray head's port before refusing the address (connection timeout)
CONNECT_TIMEOUT_S = 10.0


#: an HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, the Ray
#: client server) answers with a SETTINGS frame of its own
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, within about ``timeout`` seconds, a ``HOST:PORT`` / ``ray://HOST:PORT`` where no
    Ray head answers.

    ``ray.init`` retries such an address for minutes (forever when something else listens on
    the port). Here a TCP connection says at once (refused) or after ``timeout`` (no route)
    that nothing listens; then an HTTP/2 greeting must be answered the way a gRPC server (the
    GCS or the Ray client server) answers it, else whatever listens is not Ray.
    """
    m = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address)
    if m is None:
        return  # "auto" and the like: Ray finds the cluster itself
    host, port = m.group(1), int(m.group(2))
    hint = (
        "start one there (`ray start --head`), check the address and port, or use --ray alone "
        "for a local cluster"
    )
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(_H2_PREFACE)
            reply = conn.recv(9)
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise InputError(
            f"no Ray cluster answers at {address} ({why}; waited at most {timeout:g} s)",
            hint=hint,
        ) from None
    if len(reply) < 9 or reply[3] != 0x04:  # not an HTTP/2 SETTINGS frame
        raise InputError(
            f"something listens at {address}, but it is not a Ray head (no gRPC answer)",
            hint=hint,
        )


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
                check_reachable(address)  # bounded: ray.init alone may wait forever
                try:
                    ray.init(address=address, log_to_driver=False)
                except (ConnectionError, RuntimeError, TimeoutError) as exc:
                    raise InputError(
                        f"cannot join the Ray cluster at {address}: "
                        f"{str(exc).splitlines()[0][:200]}",
                        hint="check that a Ray head runs there (`ray status`), or use --ray alone",
                    ) from None
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
