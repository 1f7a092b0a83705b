"""Pooling token states into one vector per prompt, robust to attention sinks.

``h(x) = (1/|M|) Σ_{t∈M} states[t]`` over the set ``M`` of the prompt's real tokens.

Some LLMs (SmolLM2, Llama, Mistral…) turn one position — usually the first — into an *attention
sink* whose hidden state has "massive activations" hundreds of times larger than the other tokens'
(method.md §9: it dominated SmolLM2's mean-pooled states at layers 12–24). :func:`outlier_positions`
finds such tokens from the states themselves (no model-specific rule) and :func:`robust_mean`
pools without them and says what it dropped.

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

from dataclasses import dataclass

import torch
from torch import Tensor

# SmolLM2-135M: its first-token sink is 5-150x the prompt's median token norm (layers 2-29),
# other tokens stay under 2.5x past layer 9; ratio 8 missed the sink at layers 3-8 (AUROC 0.66-0.80
# there, 0.89-0.93 with 4).
DEFAULT_OUTLIER_RATIO = 4.0


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


def outlier_positions(
    states: Tensor, mask: Tensor, ratio: float = DEFAULT_OUTLIER_RATIO, min_tokens: int = 3
) -> Tensor:
    """Real tokens whose state norm is ``> ratio ×`` the median real-token norm of their prompt.

    Returns a bool ``[B, T]`` mask (True = outlier). Prompts with fewer than ``min_tokens`` real
    tokens get no outliers (a median of one or two norms says nothing). At least one token per
    prompt is always kept.

    Example:
        >>> import torch
        >>> s = torch.ones(1, 4, 2); s[0, 0] = 500.0
        >>> outlier_positions(s, torch.ones(1, 4, dtype=torch.bool))
        tensor([[ True, False, False, False]])
    """
    _check(states, mask)
    norms = states.float().norm(dim=-1)
    masked = norms.masked_fill(~mask, float("nan"))
    median = masked.nanmedian(dim=1, keepdim=True).values
    outliers = mask & (norms > ratio * median)
    enough = mask.sum(dim=1, keepdim=True) >= min_tokens
    outliers = outliers & enough
    # never drop every token of a prompt
    all_gone = (mask & ~outliers).sum(dim=1, keepdim=True) == 0
    return outliers & ~all_gone


@dataclass(frozen=True)
class RobustPooling:
    """Result of :func:`robust_mean`: the pooled states and the positions it left out."""

    pooled: Tensor  # [B, D]
    excluded: Tensor  # [B, T] bool, True where a real token was dropped as an outlier

    @property
    def n_excluded(self) -> int:
        """How many real tokens were dropped in the whole batch."""
        return int(self.excluded.sum())


def robust_mean(
    states: Tensor, mask: Tensor, ratio: float | None = DEFAULT_OUTLIER_RATIO
) -> RobustPooling:
    """Mean over real tokens minus :func:`outlier_positions`; ``ratio=None`` keeps every token.

    Example:
        >>> import torch
        >>> s = torch.ones(2, 3, 1); s[1, 2] = 90.0
        >>> robust_mean(s, torch.ones(2, 3, dtype=torch.bool)).excluded.tolist()
        [[False, False, False], [False, False, True]]
    """
    if ratio is None:
        excluded = torch.zeros_like(mask, dtype=torch.bool)
    else:
        excluded = outlier_positions(states, mask, ratio)
    return RobustPooling(masked_mean(states, mask & ~excluded), excluded)


__all__ = [
    "DEFAULT_OUTLIER_RATIO",
    "RobustPooling",
    "masked_mean",
    "outlier_positions",
    "robust_mean",
]
