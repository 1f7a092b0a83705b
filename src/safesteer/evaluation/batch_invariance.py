"""Batch-invariant generation: an image must not depend on which prompts shared its pipeline call.

``evaluate --batch-size N`` promises the same images (and so the same records) as one prompt per
call. Per-row seeds give each row the same starting noise; the remaining difference is in the
arithmetic. On this project's CPU build of torch, a linear layer's row is bitwise the same
whatever the number of rows **M** of the product — except for small M (1–3 with one thread,
1–11 but 4 and 8 with two; :mod:`safesteer.models.batching`), where the BLAS takes other kernels.
A diffusion pipeline has such products: the timestep embedding (``M = batch × CFG branches``:
2 rows for one prompt with guidance), pooled text projections, adaLN modulations. Convolutions
behave the same way for a batch of **one** (oneDNN's single-image path; any batch from 2 on
gives each image the same bits). One prompt per call then differs from a batched call by a grey
level here and there (tiny-sd: one pixel in four images; tiny-wan and tiny-sdxl: every frame).

:func:`row_invariant_linears` makes every ``nn.Linear`` of the given modules run with at least
:data:`~safesteer.models.batching.MIN_TOKENS` rows: a forward pre-hook repeats the first row of
a small input, a forward hook drops the repeats. Each real row is then computed as in a large
product, whatever the batch. It costs a few tiny extra rows and changes nothing else; the hooks
are removed on exit. For convolutions the evaluation never calls a pipeline on one prompt alone
(:meth:`~safesteer.evaluation.context.EvaluationContext.generate_batch` repeats a lone item
and drops the copy). Verified bitwise on CPU for the tiny families
(tests/test_evaluation_batching.py); GPU libraries choose kernels by shape in other ways, so
there batched images may differ from one-per-call ones in the last bits.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(8, 4)
    >>> x = torch.randn(40, 8)
    >>> with row_invariant_linears([layer]):
    ...     small = layer(x[:2])
    >>> bool(torch.equal(small, layer(x)[:2]))
    True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from safesteer.models.batching import MIN_TOKENS


def _rows(x: Tensor) -> int:
    return x.numel() // max(x.shape[-1], 1) if x.ndim else 0


def _pad_rows(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    x = args[0] if args else None
    if not isinstance(x, Tensor) or x.ndim == 0:
        return None
    m = _rows(x)
    if m == 0 or m >= MIN_TOKENS:
        return None
    flat = x.reshape(m, x.shape[-1])
    padded = torch.cat([flat, flat[:1].expand(MIN_TOKENS - m, -1)])
    module._safesteer_rows = (m, tuple(x.shape[:-1]))  # type: ignore[assignment]
    return (padded, *args[1:])


def _drop_rows(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
    kept = getattr(module, "_safesteer_rows", None)
    if kept is None or not isinstance(output, Tensor):
        return None
    del module._safesteer_rows
    m, lead = kept
    return output[:m].reshape(*lead, output.shape[-1])


@contextlib.contextmanager
def row_invariant_linears(modules: Iterable[Any]) -> Iterator[int]:
    """Within the block, every ``nn.Linear`` in ``modules`` runs on ≥ MIN_TOKENS rows.

    ``modules`` may hold non-modules (pipeline components such as schedulers): they are skipped.
    Yields the number of linear layers hooked.
    """
    handles = []
    seen: set[int] = set()
    try:
        for root in modules:
            if not isinstance(root, nn.Module):
                continue
            for layer in root.modules():
                if isinstance(layer, nn.Linear) and id(layer) not in seen:
                    seen.add(id(layer))
                    handles.append(layer.register_forward_pre_hook(_pad_rows))
                    handles.append(layer.register_forward_hook(_drop_rows))
        yield len(seen)
    finally:
        for h in handles:
            h.remove()


def pipeline_modules(pipe: Any) -> list[Any]:
    """The torch modules of a diffusers pipeline (its ``components`` that are modules)."""
    components = getattr(pipe, "components", {}) or {}
    return [c for c in components.values() if isinstance(c, nn.Module)]


__all__ = ["pipeline_modules", "row_invariant_linears"]
