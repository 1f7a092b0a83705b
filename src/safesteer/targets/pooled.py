"""Pooled target states for many prompts: batched by length, and kept in the state cache.

:func:`pooled_by_length` gives the same states as ``adapter.pooled(texts)`` for far less padding
work; :func:`cached_target_pooled` reads and writes them through the models' disk cache
(:class:`safesteer.models.StateCache`), keyed by the adapter's target id and settings.

Example:
    >>> from safesteer.targets import load_pipeline
    >>> _, adapter = load_pipeline("tiny-sd")
    >>> pooled_by_length(adapter, ["a cat", "a red house by the sea"]).shape
    torch.Size([2, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def pooled_by_length(adapter: Any, texts: Sequence[str], batch_size: int = 32) -> Tensor:
    """``adapter.pooled(texts)``, batched by token count with each batch padded to its longest.

    For an encoder target (right padding, masked attention) real-token states do not depend on
    how far a prompt is padded, so the pooled states equal those at the full ``max_length``
    while skipping most of the padding work (prompts here are ~16 tokens, padded to 77).
    Adapters without a ``tokenizer`` / ``max_length`` are called as they are.
    """
    tokenizer, full = getattr(adapter, "tokenizer", None), getattr(adapter, "max_length", None)
    if tokenizer is None or not isinstance(full, int):
        return adapter.pooled(list(texts))
    ids = tokenizer(list(texts), truncation=True, max_length=full)["input_ids"]
    lengths = [len(i) for i in ids]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    from safesteer.logs import progress

    rows: dict[int, Tensor] = {}
    starts = range(0, len(order), batch_size)
    try:
        for start in progress(starts, desc=f"pooling {adapter.target_id} states", unit="batch"):
            idx = order[start : start + batch_size]
            adapter.max_length = max(lengths[i] for i in idx)
            pooled = adapter.pooled([texts[i] for i in idx], batch_size=batch_size)
            rows.update(zip(idx, pooled, strict=True))
    finally:
        adapter.max_length = full
    return torch.stack([rows[i] for i in range(len(texts))])


def cached_target_pooled(adapter: Any, texts: Sequence[str], cache: bool = True) -> Tensor:
    """Pooled target states through the models' disk cache (:class:`StateCache`), if enabled."""
    if not cache:
        return pooled_by_length(adapter, texts)
    from safesteer.models import StateCache, cache_dir

    settings = {
        "space": adapter.conditioning_space,
        "pooling": "masked_mean over real tokens (target adapter)",
        "max_length": getattr(adapter, "max_length", None),
    }
    store = StateCache(cache_dir(), f"target:{adapter.target_id}", settings)
    found = store.get(0, texts)
    missing = [t for t, v in zip(texts, found, strict=True) if v is None]
    if missing:
        computed = pooled_by_length(adapter, missing)
        store.put(0, missing, computed)
        fresh = dict(zip(missing, computed, strict=True))
        found = [v if v is not None else fresh[t] for t, v in zip(texts, found, strict=True)]
    return torch.stack([v for v in found if v is not None])
