"""Transfer metrics: does a transferred vector act like the native one? (numbers only)

Every function here works on pooled target states ``[N, D]`` and vectors ``[D]``; nothing loads
a model. Steering a pooled state is exact for mean pooling when every pooled token is steered:
``mean_t(h_t + α v) = mean_t(h_t) + α v``, so the representation-level steering curves below
use ``h̄ + α v``.

Conventions: vectors point to the SAFE side (safe − unsafe), so the projection ``⟨h, v̂⟩`` is
higher for safe prompts and ``auroc(safe, unsafe)`` of the projection is the separation.

Example:
    >>> import torch
    >>> v = torch.tensor([1.0, 0.0])
    >>> safe = torch.tensor([[1.0, 0.3], [2.0, 0.0]])
    >>> unsafe = torch.tensor([[-1.0, 0.0], [0.0, 5.0]])
    >>> projection_auroc(v, safe, unsafe)
    1.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.evaluation.probes import Probe, disagreement
from safesteer.maths.metrics import auroc, cosine

#: strengths of the representation-level ASR-vs-drift curves (the paper sweeps up to 7).
DEFAULT_ALPHAS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0)


def unit(vector: Tensor) -> Tensor:
    """``v / ‖v‖``; raises :class:`InputError` for a zero vector."""
    n = torch.linalg.vector_norm(vector.double())
    if not torch.isfinite(n) or float(n) == 0.0:
        raise InputError("direction has zero or non-finite length", hint="check the pairs")
    return (vector.double() / n).float()


def projection_auroc(vector: Tensor, safe: Tensor, unsafe: Tensor) -> float:
    """AUROC of ``⟨h, v̂⟩`` at ranking safe prompts above unsafe ones (0.5 = chance)."""
    u = unit(vector)
    return auroc(safe.float() @ u, unsafe.float() @ u)


def random_directions(dim: int, norm: float, n_draws: int, seed: int = 0) -> Tensor:
    """``n_draws`` isotropic random vectors of length ``norm``, ``[n_draws, dim]``, seeded."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_draws, dim, generator=g, dtype=torch.float64)
    return (norm * x / torch.linalg.vector_norm(x, dim=1, keepdim=True)).float()


def null_cosines(
    transport: Callable[[Tensor], Tensor],
    source_dim: int,
    source_norm: float,
    reference: Tensor,
    n_draws: int = 20,
    seed: int = 0,
) -> list[float]:
    """cos(T(r), reference) for random source vectors r of length ``source_norm``.

    The null spread for cos(transferred, native): a map fitted on anchors already aligns the two
    spaces' dominant directions, so any source vector may land near the native one by chance.
    Calibration only rescales, so cosines are taken after transport.
    """
    draws = random_directions(source_dim, source_norm, n_draws, seed)
    return [cosine(transport(r), reference) for r in draws]


def shift_pooled(
    pooled: Tensor, vector: Tensor, alpha: float, steer: Tensor | None = None
) -> Tensor:
    """``h̄ + α v`` on the rows where ``steer`` is True; other rows are returned bit-identical."""
    shifted = pooled + alpha * vector.to(pooled.dtype)
    if steer is None:
        return shifted
    return torch.where(steer.reshape(-1, 1), shifted, pooled)


def row_cosines(a: Tensor, b: Tensor) -> Tensor:
    """cos(a_i, b_i) per row, ``[N]``."""
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1).float()


def steering_curve(
    vector: Tensor,
    unsafe: Tensor,
    benign: Tensor,
    probes: Mapping[str, Probe],
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    *,
    steer_unsafe: Tensor | None = None,
    steer_benign: Tensor | None = None,
) -> list[dict[str, Any]]:
    """Judged-unsafe rate of steered unsafe prompts vs benign drift, one row per α.

    Each row: ``alpha``; ``unsafe_rate[probe]`` = fraction of ``unsafe`` still judged unsafe
    by each probe after ``h̄ + α v``; ``benign_unsafe_rate[probe]``; ``benign_cosine`` = mean
    cos(steered, unsteered) over benign prompts (1 = no drift); ``benign_shift_in_spread`` =
    mean ‖Δh̄‖ over benign prompts divided by the RMS spread of the benign states (0 = no
    drift); ``judge_disagreement`` (of the first two probes, :func:`disagreement`) on the
    steered unsafe prompts. With ``steer_*`` masks (a gate's
    decisions) only those rows move; the fractions steered are reported too.
    """
    benign_spread = float(
        torch.linalg.vector_norm(benign - benign.mean(0), dim=1).pow(2).mean().sqrt()
    )
    names = list(probes)
    rows: list[dict[str, Any]] = []
    for alpha in alphas:
        su = shift_pooled(unsafe, vector, alpha, steer_unsafe)
        sb = shift_pooled(benign, vector, alpha, steer_benign)
        row: dict[str, Any] = {
            "alpha": float(alpha),
            "unsafe_rate": {n: float(probes[n].is_unsafe(su).float().mean()) for n in names},
            "benign_unsafe_rate": {n: float(probes[n].is_unsafe(sb).float().mean()) for n in names},
            "benign_cosine": float(row_cosines(sb, benign).mean()),
            "benign_shift_in_spread": float(torch.linalg.vector_norm(sb - benign, dim=1).mean())
            / max(benign_spread, 1e-30),
            "unsafe_steered_fraction": 1.0
            if steer_unsafe is None
            else float(steer_unsafe.float().mean()),
            "benign_steered_fraction": 1.0
            if steer_benign is None
            else float(steer_benign.float().mean()),
        }
        if len(names) >= 2:
            row["judge_disagreement"] = disagreement(probes[names[0]], probes[names[1]], su)
        rows.append(row)
    return rows


def alpha_reaching(
    curve: Sequence[Mapping[str, Any]], probe: str, max_unsafe_rate: float
) -> dict[str, Any] | None:
    """The smallest α in ``curve`` whose rate judged unsafe by ``probe`` is ≤ ``max_unsafe_rate``
    (None when no α reaches it)."""
    for row in sorted(curve, key=lambda r: r["alpha"]):
        if row["unsafe_rate"][probe] <= max_unsafe_rate:
            return dict(row)
    return None


def norm_ratio(transferred: Tensor, native: Tensor) -> float:
    """‖v_t‖ / ‖v_n‖: 1 means α means the same with either vector."""
    return float(
        torch.linalg.vector_norm(transferred.double()) / torch.linalg.vector_norm(native.double())
    )


def category_table(
    vectors: Mapping[str, Tensor],
    safe: Tensor,
    unsafe: Tensor,
    categories: Sequence[str],
    probe: Probe,
    alpha: float,
) -> dict[str, dict[str, dict[str, float]]]:
    """Rows: category vectors; columns: test-pair categories. Per cell:

    ``auroc`` of the row vector's projection on that column's style-matched pairs (does the
    violence vector separate violence twins, and not the others?), ``projection_gap`` = mean
    ⟨safe − unsafe, v̂⟩ on those pairs, and ``unsafe_rate`` = fraction of that column's unsafe
    prompts still judged unsafe after ``h̄ + α v_row``.
    """
    cats = list(categories)
    if len(cats) != len(safe) or len(safe) != len(unsafe):
        raise InputError("category_table needs one category per (safe, unsafe) pair")
    table: dict[str, dict[str, dict[str, float]]] = {}
    columns = sorted(set(cats))
    for name, vec in vectors.items():
        u = unit(vec)
        table[name] = {}
        for col in columns:
            idx = torch.tensor([i for i, c in enumerate(cats) if c == col])
            s, x = safe[idx], unsafe[idx]
            cell = {
                "n_pairs": float(len(idx)),
                "projection_gap": float(((s - x) @ u).mean()),
                "unsafe_rate": float(probe.is_unsafe(shift_pooled(x, vec, alpha)).float().mean()),
            }
            cell["auroc"] = auroc(s @ u, x @ u) if len(idx) > 0 else float("nan")
            table[name][col] = cell
    return table


def top_dim_share(states: Tensor, k: int = 1) -> float:
    """Share of the centred energy ``Σ‖h − h̄‖²`` held by the ``k`` largest-variance dimensions.

    A pooling dominated by a sink token or a few outlier dimensions shows up as a share near 1;
    an even spread over D dimensions gives about k/D.
    """
    x = states.double() - states.double().mean(0)
    var = (x * x).sum(0)
    total = float(var.sum())
    return float(var.topk(min(k, var.numel())).values.sum()) / total if total > 0 else 0.0


def vector_top_dim_share(vector: Tensor, k: int = 1) -> float:
    """Share of ``‖v‖²`` in its ``k`` largest coordinates (1 = a single outlier dimension)."""
    sq = vector.double() ** 2
    total = float(sq.sum())
    return float(sq.topk(min(k, sq.numel())).values.sum()) / total if total > 0 else 0.0
