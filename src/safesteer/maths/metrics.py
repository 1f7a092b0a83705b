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

__all__ = ["auroc", "cosine", "mean_cosine", "pearson", "r2_score", "transport_fidelity"]


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


def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two equal-length score vectors (float64).

    ``ρ = Σ (a_i − ā)(b_i − b̄) / √(Σ (a_i − ā)² · Σ (b_i − b̄)²)``; refuses a constant input
    (no spread: ρ is undefined). Equals ``scipy.stats.pearsonr`` (tested).

    Example:
        >>> import torch
        >>> round(pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 7.0])), 4)
        0.9934
    """
    x, y = a.detach().double().flatten(), b.detach().double().flatten()
    if x.numel() != y.numel() or x.numel() < 2:
        raise InputError(
            f"pearson needs two score vectors of one length >= 2; got {x.numel()} and {y.numel()}"
        )
    x, y = x - x.mean(), y - y.mean()
    denom = float(torch.linalg.vector_norm(x) * torch.linalg.vector_norm(y))
    if denom == 0.0:
        raise InputError(
            "pearson: one side has no spread (all scores equal)",
            hint="score varied anchors; a zero direction has no projections",
        )
    return float(x @ y) / denom


def transport_fidelity(
    source_held: Tensor, target_held: Tensor, source_direction: Tensor, transported: Tensor
) -> float:
    """ρ: how faithfully a map carried a direction, from held-out **benign** anchors only.

    ``ρ = corr_j( ⟨h_s(a_j) − μ_s, v̂_s⟩, ⟨h_t(a_j) − μ_t, ṽ/‖ṽ‖⟩ )`` (Pearson) over held-out
    benign anchors ``a_j`` — the same prompts through both models, ``source_held [N, ds]``,
    ``target_held [N, dt]`` — for a source direction ``v_s`` and its transport ``ṽ``. If the
    map carries the direction, anchors keep their order and spacing along it and ρ ≈ 1; a
    direction the map scrambles gives ρ ≈ 0. It needs no unsafe target data and no test data,
    so it may choose map, anchors and direction type (FINDINGS §4: Spearman(ρ, test AUROC)
    0.78 / 0.84 over 252 variants). μ_s, μ_t (any centring, e.g. the held-out rows' means or the
    map's anchor means) do not change ρ: Pearson's correlation is invariant to shifting either
    side, so the function takes none. The sign of ṽ matters: a flipped transport gives −ρ.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> src = torch.randn(500, 6, generator=g)
        >>> w = torch.linalg.qr(torch.randn(8, 6, generator=g))[0]   # planted map 6 → 8
        >>> tgt = src @ w.T + 0.01 * torch.randn(500, 8, generator=g)
        >>> v = torch.randn(6, generator=g)
        >>> transport_fidelity(src, tgt, v, w @ v) > 0.99
        True
    """
    if source_held.ndim != 2 or target_held.ndim != 2:
        raise InputError(
            f"held-out anchors must be [N, D]; got {tuple(source_held.shape)} and "
            f"{tuple(target_held.shape)}"
        )
    if source_held.shape[0] != target_held.shape[0]:
        raise InputError(
            f"{source_held.shape[0]} source anchors but {target_held.shape[0]} target anchors",
            hint="pass the same held-out prompts, in the same order, through both models",
        )
    for name, v, states in (
        ("source_direction", source_direction, source_held),
        ("transported", transported, target_held),
    ):
        if v.shape != (states.shape[1],):
            raise InputError(
                f"{name} has shape {tuple(v.shape)}; its states have dimension {states.shape[1]}"
            )
        if not float(torch.linalg.vector_norm(v.double())) > 0.0:
            raise InputError(f"{name} is zero or not finite", hint="check the direction and map")
    u_s = source_direction.double() / torch.linalg.vector_norm(source_direction.double())
    u_t = transported.double() / torch.linalg.vector_norm(transported.double())
    return pearson(source_held.double() @ u_s, target_held.double() @ u_t)
