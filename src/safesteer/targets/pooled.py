"""Pooled target states for many prompts: batched by token count, and kept in the state cache.

:func:`pooled_by_length` is how every target state is pooled (``TargetAdapter.pooled`` calls
it; so do :func:`safesteer.build_pack`, the default job and the benchmarks). It reads prompts in
batches of **equal token count** (:func:`safesteer.models.batching.same_length_batches`):

- an encoder target (:class:`~safesteer.targets.encoder.EncoderTarget`: right padding, masked
  attention) is then run with no padding at all — its real-token states do not depend on
  padding (equal to padding to 77 within float tolerance), and a batch costs its real tokens
  only (prompts here are ~16 tokens, padded to 77 before);
- a pipeline adapter keeps the pipeline's own padding (parity with generation first); batching
  by length only makes sure that a pipeline which pads to the longest prompt of a call pads each
  prompt as if it were alone.

Either way a prompt's pooled state is a function of its text: the same, bit for bit, alone or
in any batch (tests/test_determinism.py), so cached and fresh states agree exactly.
:func:`cached_target_pooled` reads and writes them through the models' disk cache
(:class:`safesteer.models.StateCache`), keyed by the adapter's target id and settings.

Example:
    >>> from safesteer.targets import load_pipeline
    >>> _, adapter = load_pipeline("tiny-sd")
    >>> pooled_by_length(adapter, ["a cat", "a red house by the sea"]).shape
    torch.Size([2, 32])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.maths.pooling import masked_mean

#: how batches are formed; part of the state cache's key (a change here invalidates old states)
BATCHING = "same token count (safesteer.models.batching); encoder targets unpadded"


def pads_on_request(adapter: Any) -> bool:
    """Whether ``adapter`` pads to its ``max_length`` attribute and its real-token states do not
    depend on that padding (an :class:`~safesteer.targets.encoder.EncoderTarget`)."""
    return getattr(adapter, "tokenizer", None) is not None and isinstance(
        getattr(adapter, "max_length", None), int
    )


def token_lengths(adapter: Any, texts: Sequence[str]) -> list[int] | None:
    """Each text's token count under the tokenizer that pads it, truncated as the adapter
    truncates; None when the adapter exposes no tokenizer."""
    if pads_on_request(adapter):
        tokenizer, limit = adapter.tokenizer, adapter.max_length
    else:
        try:
            tokenizer = adapter.mask_tokenizer()
        except (AttributeError, TypeError, NotImplementedError):
            return None
        limit = getattr(adapter, "max_sequence_length", None)
    if tokenizer is None:
        return None
    kwargs: dict[str, Any] = {"truncation": limit is not None}
    if limit is not None:
        kwargs["max_length"] = limit
    return [len(ids) for ids in tokenizer(list(texts), **kwargs)["input_ids"]]


@contextlib.contextmanager
def _padded_to(adapter: Any, length: int | None) -> Iterator[None]:
    """Temporarily pad an encoder target to ``length`` tokens (None: leave it as it is)."""
    if length is None:
        yield
        return
    full = adapter.max_length
    adapter.max_length = length
    try:
        yield
    finally:
        adapter.max_length = full


def pooled_by_length(adapter: Any, texts: Sequence[str], batch_size: int = 32) -> Tensor:
    """``[N, D]`` masked means of ``adapter.encode`` over real tokens, in same-length batches.

    ``pooled[i] = Σ_t mask[i,t]·h[i,t] / Σ_t mask[i,t]`` with ``h = adapter.encode([...]).states``.
    Encoder targets run each batch padded to its own length (no padding); pipeline adapters
    keep their own padding. Adapters without a tokenizer are read one prompt per call, objects
    without ``encode`` through their own ``pooled``. A batch
    with fewer than :data:`~safesteer.models.batching.MIN_TOKENS` tokens is run with its first
    prompt repeated (:func:`~safesteer.models.batching.filled`), so the products' sums do not
    depend on the batch.
    """
    from safesteer.models.batching import MIN_TOKENS, filled, same_length_batches

    texts = list(texts)
    if not texts:
        raise InputError("no prompts to pool", hint="pass at least one prompt")
    if not callable(getattr(adapter, "encode", None)):  # pools by itself (a user's target)
        return adapter.pooled(texts)
    lengths = token_lengths(adapter, texts)
    batches = (
        [[i] for i in range(len(texts))]
        if lengths is None
        else same_length_batches(lengths, batch_size)
    )
    unpadded = lengths is not None and pads_on_request(adapter)
    from safesteer.logs import progress

    rows: list[Tensor | None] = [None] * len(texts)
    for idx in progress(batches, desc=f"pooling {adapter.target_id} states", unit="batch"):
        if unpadded and lengths is not None:
            length = lengths[idx[0]]
            run = filled(idx, length)  # enough rows for row-independent products (batching)
            with _padded_to(adapter, length):
                enc = adapter.encode([texts[i] for i in run])
        else:  # the pipeline pads: more rows only where its padded batch is still too small
            enc = adapter.encode([texts[i] for i in idx])
            if enc.states.shape[0] * enc.states.shape[1] < MIN_TOKENS:
                enc = adapter.encode([texts[i] for i in filled(idx, enc.states.shape[1])])
        pooled = masked_mean(enc.states[: len(idx)], enc.mask[: len(idx)])
        for i, row in zip(idx, pooled, strict=True):
            rows[i] = row
    return torch.stack([r for r in rows if r is not None])


def cached_target_pooled(adapter: Any, texts: Sequence[str], cache: bool = True) -> Tensor:
    """Pooled target states through the models' disk cache (:class:`StateCache`), if enabled."""
    if not cache:
        return pooled_by_length(adapter, texts)
    from safesteer.models import StateCache, cache_dir

    settings = {
        "space": adapter.conditioning_space,
        "pooling": "masked_mean over real tokens (target adapter)",
        "max_length": getattr(adapter, "max_length", None),
        "batching": BATCHING,
    }
    store = StateCache(cache_dir(), f"target:{adapter.target_id}", settings)
    unique = list(dict.fromkeys(texts))
    found = dict(zip(unique, store.get(0, unique), strict=True))
    missing = [t for t, v in found.items() if v is None]
    if missing:
        computed = pooled_by_length(adapter, missing)
        store.put(0, missing, computed)
        found.update(zip(missing, computed, strict=True))
    return torch.stack([v for v in (found[t] for t in texts) if v is not None])
