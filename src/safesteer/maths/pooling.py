"""Pooling token states into one vector per prompt, robust to attention sinks.

``h(x) = (1/|M|) Σ_{t∈M} states[t]`` over the set ``M`` of the prompt's real tokens.

Some LLMs (SmolLM2, Llama, Mistral…) turn one position — usually the first — into an *attention
sink* whose hidden state has "massive activations" hundreds of times larger than the other tokens'
(method.md §9: it dominated SmolLM2's mean-pooled states at layers 12–24). :func:`outlier_positions`
finds such tokens from the states themselves (no model-specific rule) and :func:`robust_mean`
pools without them and says what it dropped.

Short prompts: with one or two real tokens a prompt's own median is the sink's (SmolLM2 adds no
BOS, so "cat" *is* its sink: ‖h‖ ≈ 25,000 at layer 15, and "cat", "dog" and "a bridge" pooled
to one point). Given ``reference`` — ``r_L``, the median real-token norm of a benign
calibration set at that layer (:func:`reference_norm`, measured once per model and layer) —
such prompts are compared with ``ratio · r_L`` instead; a prompt left with no token
(``RobustPooling.sink_only``) is re-read by the reader after a sink-absorbing special prefix.
Prompts of three or more tokens pool bit-identically with or without ``reference``.

Torch only; no model knowledge.

Example:
    >>> import torch
    >>> s = torch.ones(1, 4, 2); s[0, 0] = 500.0
    >>> m = torch.tensor([[True, True, True, False]])
    >>> masked_mean(s, m)
    tensor([[167.3333, 167.3333]])
    >>> robust_mean(s, m).pooled
    tensor([[1., 1.]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# SmolLM2-135M: its first-token sink is 5-150x the prompt's median token norm (layers 2-29),
# other tokens stay under 2.5x past layer 9; ratio 8 missed the sink at layers 3-8 (AUROC 0.66-0.80
# there, 0.89-0.93 with 4).
DEFAULT_OUTLIER_RATIO = 4.0
#: below this many real tokens a prompt's own median says nothing (see ``reference``)
MIN_TOKENS = 3


def _check(states: Tensor, mask: Tensor) -> None:
    if states.ndim != 3 or mask.shape != states.shape[:2]:
        raise ValueError(
            f"states must be [B, T, D] and mask [B, T]; got {tuple(states.shape)} and "
            f"{tuple(mask.shape)}"
        )


def masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``states`` over the positions where ``mask`` is True.

    ``pooled[b] = Σ_t mask[b,t]·states[b,t] / Σ_t mask[b,t]``; shapes ``[B,T,D], [B,T] -> [B,D]``.
    A row with no True position pools to zeros (never NaN).

    Example:
        >>> import torch
        >>> masked_mean(torch.arange(6.).view(1, 3, 2), torch.tensor([[True, False, True]]))
        tensor([[2., 3.]])
    """
    _check(states, mask)
    weights = mask.to(states.dtype).unsqueeze(-1)
    total = (states * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp_min(1.0)
    return total / count


def _flagged(
    states: Tensor,
    mask: Tensor,
    ratio: float,
    min_tokens: int,
    reference: float | None,
) -> Tensor:
    """Real tokens with ``‖h_t‖ > ratio · m`` (before the keep-one guard).

    ``m`` is the prompt's median real-token norm when it has ``≥ min_tokens`` real tokens; for
    shorter prompts it is ``reference`` (``r_L``), or nothing is flagged when that is None.
    """
    norms = states.float().norm(dim=-1)
    median = norms.masked_fill(~mask, float("nan")).nanmedian(dim=1, keepdim=True).values
    enough = mask.sum(dim=1, keepdim=True) >= min_tokens
    if reference is None:
        return mask & (norms > ratio * median) & enough
    scale = torch.where(enough, median, torch.full_like(median, float(reference)))
    return mask & (norms > ratio * scale)


def outlier_positions(
    states: Tensor,
    mask: Tensor,
    ratio: float = DEFAULT_OUTLIER_RATIO,
    min_tokens: int = MIN_TOKENS,
    reference: float | None = None,
) -> Tensor:
    """Real tokens whose state norm is ``> ratio ×`` the median real-token norm of their prompt.

    Returns a bool ``[B, T]`` mask (True = outlier). A prompt with fewer than ``min_tokens``
    real tokens has no median worth the name: without ``reference`` it gets no outliers; with
    ``reference`` (``r_L``, the median real-token norm of a benign calibration set at this layer:
    :func:`reference_norm`) its tokens are compared with ``ratio · r_L`` instead. Prompts of
    ``≥ min_tokens`` tokens are flagged the same either way. At least one token per prompt is
    always kept (:func:`robust_mean` says which prompts only had flagged tokens).

    Example:
        >>> import torch
        >>> s = torch.ones(1, 4, 2); s[0, 0] = 500.0
        >>> outlier_positions(s, torch.ones(1, 4, dtype=torch.bool))
        tensor([[ True, False, False, False]])
        >>> short = torch.tensor([[[900.0], [2.0]]])  # 2 tokens: the first is a sink
        >>> two = torch.ones(1, 2, dtype=torch.bool)
        >>> outlier_positions(short, two), outlier_positions(short, two, reference=2.0)
        (tensor([[False, False]]), tensor([[ True, False]]))
    """
    _check(states, mask)
    outliers = _flagged(states, mask, ratio, min_tokens, reference)
    # never drop every token of a prompt
    all_gone = (mask & ~outliers).sum(dim=1, keepdim=True) == 0
    return outliers & ~all_gone


def reference_norm(token_norms: Sequence[Tensor]) -> float:
    """``r_L``: the median over every real token of a calibration set (one layer).

    ``token_norms``: per prompt, the norms ``[T_i]`` of its real tokens.

    Example:
        >>> import torch
        >>> reference_norm([torch.tensor([1.0, 3.0]), torch.tensor([2.0, 900.0, 4.0])])
        3.0
    """
    return float(torch.cat([n.float().flatten() for n in token_norms]).median())


@dataclass(frozen=True)
class RobustPooling:
    """Result of :func:`robust_mean`: the pooled states and the positions it left out."""

    pooled: Tensor  # [B, D]
    excluded: Tensor  # [B, T] bool, True where a real token was dropped as an outlier
    #: [B] bool: every real token of the prompt was over the limit (a one-token prompt that is
    #: its own attention sink). Its pooled row keeps those tokens; a reader re-reads it after a
    #: sink-absorbing prefix (:class:`safesteer.models.SourceReader`).
    sink_only: Tensor | None = None

    @property
    def n_excluded(self) -> int:
        """How many real tokens were dropped in the whole batch."""
        return int(self.excluded.sum())


def robust_mean(
    states: Tensor,
    mask: Tensor,
    ratio: float | None = DEFAULT_OUTLIER_RATIO,
    reference: float | None = None,
) -> RobustPooling:
    """Mean over real tokens minus :func:`outlier_positions`; ``ratio=None`` keeps every token.

    ``reference`` (``r_L``) extends the outlier rule to prompts of 1–2 real tokens (see
    :func:`outlier_positions`); prompts of 3 or more tokens pool bit-identically with or
    without it.

    Example:
        >>> import torch
        >>> s = torch.ones(2, 3, 1); s[1, 2] = 90.0
        >>> robust_mean(s, torch.ones(2, 3, dtype=torch.bool)).excluded.tolist()
        [[False, False, False], [False, False, True]]
    """
    _check(states, mask)
    if ratio is None:
        excluded = torch.zeros_like(mask, dtype=torch.bool)
        return RobustPooling(masked_mean(states, mask), excluded)
    flagged = _flagged(states, mask, ratio, MIN_TOKENS, reference)
    left = (mask & ~flagged).sum(dim=1, keepdim=True)
    excluded = flagged & (left > 0)
    sink_only = None
    if reference is not None:
        sink_only = (left.squeeze(1) == 0) & mask.any(dim=1)
    return RobustPooling(masked_mean(states, mask & ~excluded), excluded, sink_only)


__all__ = [
    "DEFAULT_OUTLIER_RATIO",
    "MIN_TOKENS",
    "RobustPooling",
    "masked_mean",
    "outlier_positions",
    "reference_norm",
    "robust_mean",
]
