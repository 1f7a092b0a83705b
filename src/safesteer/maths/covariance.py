"""Shrunk covariance estimates (float64), shared by the gate, the whiten–recolour map and LDA.

For centred rows ``X [N, D]``: ``S = XᵀX / N`` and the shrunk covariance

    ``Σ = (1 − γ)·S + γ·μ·I``,   ``μ = tr S / D``,

with γ by Ledoit–Wolf (2004) unless given (:func:`ledoit_wolf_shrinkage`). Σ is positive
definite for any γ > 0, even when N < D, so ``Σ⁻¹v`` (:func:`shrunk_solve`) and ``Σ^{±1/2}``
(:func:`symmetric_sqrt`) exist where the sample covariance has no inverse.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(500, 4, generator=g) * torch.tensor([3.0, 1.0, 1.0, 1.0])
    >>> cov, gamma = shrunk_covariance(x - x.mean(0))
    >>> 0 <= gamma < 0.1, bool(cov[0, 0] > 5 * cov[1, 1])
    (True, True)
    >>> half, inv_half = symmetric_sqrt(cov)
    >>> eye = torch.eye(4, dtype=torch.float64)
    >>> bool(torch.allclose(half @ half, cov)), bool(torch.allclose(half @ inv_half, eye))
    (True, True)
"""

from __future__ import annotations

import torch
from torch import Tensor

from safesteer.errors import InputError

__all__ = ["ledoit_wolf_shrinkage", "shrunk_covariance", "shrunk_solve", "symmetric_sqrt"]


def _centred_rows(centred: Tensor, name: str = "centred states") -> Tensor:
    if centred.ndim != 2 or centred.shape[0] < 1:
        raise InputError(f"{name} must be [N >= 1, D]; got {tuple(centred.shape)}")
    return centred.double()


def ledoit_wolf_shrinkage(centred: Tensor) -> float:
    """Ledoit–Wolf (2004) shrinkage γ ∈ [0, 1] towards ``(tr S / D)·I`` for centred ``[N, D]``.

    ``γ = min(b̄², d²) / d²`` with ``d² = ‖S − μI‖²_F``,
    ``b̄² = (1/N²) Σ_k ‖x_k x_kᵀ − S‖²_F``, ``S = XᵀX/N``, ``μ = tr S / D``.
    Works in the N×N Gram form when N < D. Equals ``sklearn.covariance.ledoit_wolf_shrinkage``
    with ``assume_centered=True`` (tested).

    Example:
        >>> import torch
        >>> x = torch.randn(10, 200, generator=torch.Generator().manual_seed(0))
        >>> ledoit_wolf_shrinkage(x - x.mean(0)) > 0.5   # far fewer rows than dimensions
        True
    """
    x = _centred_rows(centred)
    n, d = x.shape
    sq_norms = (x * x).sum(dim=1)  # ‖x_k‖²
    if n <= d:
        gram = x @ x.T
        s_fro2 = float((gram * gram).sum()) / n**2  # ‖S‖²_F = ‖XXᵀ‖²_F / N²
        xsx = (gram * gram).sum(dim=1) / n  # x_kᵀ S x_k
    else:
        s = x.T @ x / n
        s_fro2 = float((s * s).sum())
        xsx = ((x @ s) * x).sum(dim=1)
    mu = float(sq_norms.sum()) / (n * d)
    d2 = s_fro2 - 2 * mu * float(sq_norms.sum()) / n + mu * mu * d
    b2 = float((sq_norms**2 - 2 * xsx + s_fro2).sum()) / n**2
    if d2 <= 0:
        return 1.0
    return float(min(b2, d2) / d2)


def _gamma(x: Tensor, shrinkage: float | None) -> float:
    if shrinkage is None:
        return ledoit_wolf_shrinkage(x)
    if not 0.0 <= float(shrinkage) <= 1.0:
        raise InputError(f"shrinkage must be in [0, 1]; got {shrinkage}")
    return float(shrinkage)


def shrunk_covariance(centred: Tensor, shrinkage: float | None = None) -> tuple[Tensor, float]:
    """``(Σ, γ)``: ``Σ = (1−γ)·XᵀX/N + γ·(tr S / D)·I`` in float64 ``[D, D]``.

    ``centred`` ``[N, D]`` rows already centred on their mean; γ is ``shrinkage`` or, when None,
    :func:`ledoit_wolf_shrinkage`'s. Equals ``sklearn.covariance.shrunk_covariance`` of the
    empirical covariance (tested).
    """
    x = _centred_rows(centred)
    n, d = x.shape
    gamma = _gamma(x, shrinkage)
    s = x.T @ x / n
    mu = float(torch.trace(s)) / d
    cov = (1.0 - gamma) * s
    cov.diagonal().add_(gamma * mu)
    return cov, gamma


def shrunk_solve(centred: Tensor, v: Tensor, gamma: float) -> Tensor:
    """``Σ⁻¹v`` for ``Σ = (1−γ)XᵀX/N + γμI`` (v: ``[D]`` or ``[D, K]``), float64.

    Via Woodbury in the N×N Gram when N < D (no D×D matrix). A floor of ``1e-12·μ`` on the
    ridge keeps Σ invertible when γ = 0 and N < D.

    Example:
        >>> import torch
        >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])  # S = diag(½, 2)
        >>> [round(a, 6) for a in shrunk_solve(x, torch.tensor([1.0, 1.0]), 0.0).tolist()]
        [2.0, 0.5]
    """
    x = _centred_rows(centred)
    n, d = x.shape
    mu = float((x * x).sum()) / (n * d)
    c = max(gamma * mu, 1e-12 * max(mu, 1e-300))
    a = (1.0 - gamma) / n
    vd = v.double()
    if n < d:
        # (cI + a XᵀX)⁻¹ v = (v − a Xᵀ (cI + a XXᵀ)⁻¹ X v) / c
        inner = c * torch.eye(n, dtype=torch.float64) + a * (x @ x.T)
        return (vd - a * x.T @ torch.linalg.solve(inner, x @ vd)) / c
    sigma = a * (x.T @ x) + c * torch.eye(d, dtype=torch.float64)
    return torch.linalg.solve(sigma, vd)


def symmetric_sqrt(cov: Tensor, floor: float = 1e-12) -> tuple[Tensor, Tensor]:
    """``(Σ^{1/2}, Σ^{-1/2})`` of a symmetric positive (semi-)definite ``[D, D]``, float64.

    From ``Σ = Q Λ Qᵀ`` (``eigh``): ``Σ^{±1/2} = Q Λ^{±1/2} Qᵀ``, eigenvalues clamped below at
    ``floor · λ_max`` so the inverse root exists (shrunk covariances never reach the floor).
    """
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise InputError(f"a covariance must be square [D, D]; got {tuple(cov.shape)}")
    evals, evecs = torch.linalg.eigh(cov.double())
    top = max(float(evals[-1]), 1e-300)
    evals = evals.clamp_min(floor * top)
    half = (evecs * evals.sqrt()) @ evecs.T
    inv_half = (evecs * evals.rsqrt()) @ evecs.T
    return half, inv_half
