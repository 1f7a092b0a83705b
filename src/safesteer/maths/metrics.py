"""Small, dependency-free metrics used by the maths and its tests.

Example:
    >>> import torch
    >>> auroc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0]))
    1.0
    >>> round(cosine(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])), 4)
    0.7071
"""

from __future__ import annotations

import torch
from torch import Tensor

from safesteer.errors import InputError

__all__ = ["auroc", "cosine", "mean_cosine", "r2_score"]


def auroc(positive: Tensor, negative: Tensor) -> float:
    """P(score of a random positive > score of a random negative), ties counting ½.

    Computed from ranks (Mann–Whitney U): ``(R⁺ − n⁺(n⁺+1)/2) / (n⁺ n⁻)`` with average ranks
    for ties.

    Example:
        >>> import torch
        >>> auroc(torch.tensor([1.0]), torch.tensor([1.0]))
        0.5
    """
    pos = positive.detach().double().flatten()
    neg = negative.detach().double().flatten()
    if pos.numel() == 0 or neg.numel() == 0:
        raise InputError("auroc needs at least one positive and one negative score")
    scores = torch.cat([pos, neg])
    order = torch.argsort(scores, stable=True)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    # average ranks within ties
    uniq, inverse = torch.unique(scores, return_inverse=True)
    sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(
        0, inverse, torch.ones_like(ranks)
    )
    ranks = (sums / counts)[inverse]
    n_pos, n_neg = pos.numel(), neg.numel()
    u = float(ranks[:n_pos].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def r2_score(pred: Tensor, target: Tensor) -> float:
    """Coefficient of determination over all outputs: ``1 − Σ‖y − ŷ‖² / Σ‖y − ȳ‖²``.

    ȳ is the per-column mean of ``target`` ``[N, D]`` (pooled variance across columns, as in
    scikit-learn's ``variance_weighted``).
    """
    if pred.shape != target.shape:
        raise InputError(f"r2_score: shapes differ {tuple(pred.shape)} vs {tuple(target.shape)}")
    y = target.double()
    ss_res = float(((y - pred.double()) ** 2).sum())
    ss_tot = float(((y - y.mean(dim=0, keepdim=True)) ** 2).sum())
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of two vectors (flattened); 0 if either is zero."""
    x, y = a.double().flatten(), b.double().flatten()
    denom = float(torch.linalg.vector_norm(x) * torch.linalg.vector_norm(y))
    return float(x @ y) / denom if denom > 0 else 0.0


def mean_cosine(pred: Tensor, target: Tensor) -> float:
    """Mean over rows of cos(pred_i, target_i) for ``[N, D]`` tensors."""
    if pred.shape != target.shape:
        raise InputError(f"mean_cosine: shapes differ {tuple(pred.shape)} vs {tuple(target.shape)}")
    p, t = pred.double(), target.double()
    num = (p * t).sum(dim=-1)
    den = torch.linalg.vector_norm(p, dim=-1) * torch.linalg.vector_norm(t, dim=-1)
    cos = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))
    return float(cos.mean())
