"""Batch-invariant generation: an image must not depend on which prompts shared its pipeline call.

``evaluate --batch-size N`` promises the same images (and so the same records) as one prompt per
call. Per-row seeds give each row the same starting noise; the remaining difference is in the
arithmetic, measured on this project's CPU build of torch:

- a **linear layer**'s row is bitwise the same whatever the number of rows M of the product —
  except for small M (1–3 with one thread, 1–11 but 4 and 8 with two;
  :mod:`safesteer.models.batching`), where the BLAS takes other kernels. A diffusion pipeline
  has such products: the timestep embedding (``M = batch × CFG branches``: 2 rows for one
  prompt with guidance), pooled text projections, adaLN modulations;
- a **convolution** is not: oneDNN blocks its work over the batch (a 1×1 convolution of 32→64
  channels on 8×8 maps gives other bits for 15 of the batch sizes 1–32), so tiny-sd's images
  differed at batch 8 from one prompt per call (2 of 24, by a grey level).

:func:`batch_invariant` therefore, within its block, makes every ``nn.Linear`` of the given
modules run with at least :data:`~safesteer.models.batching.MIN_TOKENS` rows (a forward
pre-hook repeats the first row of a small input, a forward hook drops the repeats), and every
convolution (``nn.Conv1d/2d/3d`` and subclasses, through their ``_conv_forward``) run one
sample at a time, so each image gets the one-image result whatever the batch. Nothing else
changes and everything is restored on exit. The cost: a few tiny extra rows, and convolutions
called per image (the same arithmetic; more calls). Tensors of a single image also take other
paths elsewhere (tiny-sd's VAE GroupNorm after an attention block's transpose), so the
evaluation never calls a pipeline on one item alone
(:meth:`~safesteer.evaluation.context.EvaluationContext.generate_batch` repeats a lone item
and drops the copy). Verified bitwise on CPU for the tiny
families (tests/test_evaluation_batching.py; not tiny-wan / tiny-sana, whose odd tiny shapes
leave element-wise kernels a scalar tail whose last bits depend on the tensor's size). GPU
libraries choose kernels by shape in other ways: the evaluation does not use this there.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(8, 4)
    >>> x = torch.randn(40, 8)
    >>> with batch_invariant([layer]):
    ...     small = layer(x[:2])
    >>> bool(torch.equal(small, layer(x)[:2]))
    True
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from safesteer.models.batching import MIN_TOKENS

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


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


def _per_sample(conv: nn.Module) -> Any:
    """A ``_conv_forward`` for ``conv`` that runs its class's one on each sample in turn."""
    base = type(conv)._conv_forward  # type: ignore[attr-defined]

    def conv_forward(self: nn.Module, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        unbatched = x.ndim == weight.ndim - 1
        if unbatched or x.shape[0] <= 1:
            return base(self, x, weight, bias)
        return torch.cat([base(self, x[i : i + 1], weight, bias) for i in range(x.shape[0])])

    return types.MethodType(conv_forward, conv)


@contextlib.contextmanager
def batch_invariant(modules: Iterable[Any]) -> Iterator[int]:
    """Within the block, linears in ``modules`` run on ≥ MIN_TOKENS rows and convolutions one
    sample at a time (see the module docstring).

    ``modules`` may hold non-modules (pipeline components such as schedulers): they are skipped.
    Yields the number of layers changed.
    """
    handles = []
    patched: list[nn.Module] = []
    seen: set[int] = set()
    try:
        for root in modules:
            if not isinstance(root, nn.Module):
                continue
            for layer in root.modules():
                if id(layer) in seen:
                    continue
                if isinstance(layer, nn.Linear):
                    handles.append(layer.register_forward_pre_hook(_pad_rows))
                    handles.append(layer.register_forward_hook(_drop_rows))
                elif isinstance(layer, _CONVS) and "_conv_forward" not in vars(layer):
                    layer._conv_forward = _per_sample(layer)  # type: ignore[method-assign]
                    patched.append(layer)
                else:
                    continue
                seen.add(id(layer))
        yield len(seen)
    finally:
        for h in handles:
            h.remove()
        for layer in patched:
            del layer._conv_forward


def pipeline_modules(pipe: Any) -> list[Any]:
    """The torch modules of a diffusers pipeline (its ``components`` that are modules)."""
    components = getattr(pipe, "components", {}) or {}
    return [c for c in components.values() if isinstance(c, nn.Module)]


__all__ = ["batch_invariant", "pipeline_modules"]
