"""Batches of prompts with the same token count: no padding, so a pooled state depends on its text.

A model's states for a padded prompt differ from the unpadded ones in the last bits (masked
attention and matrix products run over a longer axis, in another order): 5e-7 relative for
MiniLM between 15 and 16 tokens. A state that depends on which prompts shared its batch makes the
state cache history-dependent, and a map fitted on few anchors amplifies those bits (issue 13:
5.7% on the global vector with 1,000 anchors, 33% with 200).

:func:`same_length_batches` therefore forms batches only of prompts with **the same token
count**, so nothing is ever padded. Measured on this project's CPU build of torch (2 cores,
fp32; ``tests/test_determinism.py``): with no padding, a prompt's pooled state is bitwise the
same alone, at any position of a batch of 2–64 prompts, and with 1 or 2 threads, for MiniLM,
SmolLM2 and Gemma-3 — provided a forward's matrix products have at least 12 rows (tokens of the
whole batch): below that the BLAS takes small-matrix kernels whose sums depend on the row count
and the thread count (rows 1–3 with one thread, 1–11 but 4 and 8 with two). :func:`filled`
therefore repeats a batch's first prompt until the batch holds :data:`MIN_TOKENS` tokens (only
short prompts read alone or in small batches pay for it; the repeats are discarded).

A length's prompts are cut into near-equal batches of at most ``batch_size`` (33 prompts → 17 +
16, not 32 + 1), so the work stays that of length-sorted dynamic padding (and less: no pad
tokens at all).

Example:
    >>> same_length_batches([3, 5, 3, 3, 5, 4, 3], batch_size=3)
    [[0, 2], [3, 6], [5], [1, 4]]
    >>> filled([5], length=4)  # one 4-token prompt → 8 rows of 4 tokens
    [5, 5, 5, 5, 5, 5, 5, 5]
"""

from __future__ import annotations

from collections.abc import Sequence

#: fewest tokens (rows of the flattened ``[B·T, D]`` products) a forward runs with; 12 suffice on
#: this project's CPU build (see the module docstring), 32 leaves a margin
MIN_TOKENS = 32


def same_length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by exact length (shortest first), each group cut into near-equal batches
    of at most ``batch_size``.

    Within a length, indices keep their order, so the batches depend only on ``lengths``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(i)
    batches = []
    for _, group in sorted(groups.items()):
        parts = -(-len(group) // batch_size)  # ceil
        size, extra = divmod(len(group), parts)
        start = 0
        for k in range(parts):
            stop = start + size + (k < extra)
            batches.append(group[start:stop])
            start = stop
    return batches


def filled(batch: Sequence[int], length: int, min_tokens: int = MIN_TOKENS) -> list[int]:
    """``batch`` with its first index repeated until it holds ``min_tokens`` tokens of ``length``.

    The caller runs the whole list and keeps the first ``len(batch)`` rows.
    """
    rows = -(-min_tokens // max(int(length), 1))
    return [*batch, *[batch[0]] * max(0, rows - len(batch))]


__all__ = ["MIN_TOKENS", "filled", "same_length_batches"]
