"""Whiten → rotate → re-colour map [ours, CCA-style] (issue 11).

On centred benign anchors ``H̄_s [N, ds]``, ``H̄_t [N, dt]``:

1. ``Σ_s``, ``Σ_t``: Ledoit–Wolf-shrunk covariances of the anchors on each side
   (:func:`safesteer.maths.covariance.shrunk_covariance`);
2. whiten: ``W_s = H̄_s Σ_s^{-1/2}``, ``W_t = H̄_t Σ_t^{-1/2}`` (identity covariance, up to
   shrinkage);
3. rotate: ``Q = U Vᵀ`` from the SVD of ``W_tᵀ W_s`` — orthogonal Procrustes between the
   whitened anchor sets;
4. re-colour: ``T = Σ_t^{1/2} Q Σ_s^{-1/2}``, so ``transform(x) = μ_t + T(x − μ_s)`` and
   ``transport(v) = T v = Σ_t^{1/2} Q Σ_s^{-1/2} v``.

Where Procrustes can only rotate, this map also carries each side's shape: for a planted
invertible linear map ``y = A x`` (any ``A``, not only a rotation) ``Σ_t^{-1/2} A Σ_s^{1/2}``
is orthogonal, step 3 recovers it, and ``T = A`` (up to shrinkage and noise; tested against
Procrustes). With ds ≠ dt, Q is semi-orthogonal as in :class:`ProcrustesMap`.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> a = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 3.0]])  # not a rotation
    >>> src = torch.randn(4000, 3, generator=g) * torch.tensor([1.0, 2.0, 0.5])
    >>> m = WhitenRecolourMap().fit(src, src @ a.T)
    >>> bool(torch.allclose(m.weight_, a, atol=0.05))
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.maths.alignment.base import AlignmentMap
from safesteer.maths.covariance import shrunk_covariance, symmetric_sqrt

__all__ = ["WhitenRecolourMap"]


class WhitenRecolourMap(AlignmentMap):
    """``T = Σ_t^{1/2} Q Σ_s^{-1/2}``: whiten, Procrustes-rotate, re-colour (module docstring).

    Args:
        shrinkage: covariance shrinkage γ ∈ [0, 1] on both sides; None (default) picks each
            side's by Ledoit–Wolf.

    Learned: ``weight_ [dt, ds]`` (T), ``rotation_ [dt, ds]`` (Q), ``source_shrinkage_``,
    ``target_shrinkage_`` (the γ used on each side).
    """

    kind = "whiten-recolour"

    def __init__(self, *, shrinkage: float | None = None) -> None:
        if shrinkage is not None and not 0.0 <= float(shrinkage) <= 1.0:
            raise InputError(f"shrinkage must be in [0, 1]; got {shrinkage}")
        self.shrinkage = None if shrinkage is None else float(shrinkage)

    def params(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "kind": self.kind,
            "shrinkage": "ledoit-wolf" if self.shrinkage is None else self.shrinkage,
        }
        if hasattr(self, "source_shrinkage_"):
            out["source_shrinkage"] = self.source_shrinkage_
            out["target_shrinkage"] = self.target_shrinkage_
        return out

    def _fit_centred(self, source: Tensor, target: Tensor) -> None:
        xs, xt = source.double(), target.double()
        cov_s, self.source_shrinkage_ = shrunk_covariance(xs, self.shrinkage)
        cov_t, self.target_shrinkage_ = shrunk_covariance(xt, self.shrinkage)
        _, s_inv_half = symmetric_sqrt(cov_s)
        t_half, t_inv_half = symmetric_sqrt(cov_t)
        whitened_s, whitened_t = xs @ s_inv_half, xt @ t_inv_half  # Σ^{-1/2} is symmetric
        u, _, vh = torch.linalg.svd(whitened_t.T @ whitened_s, full_matrices=False)
        rotation = u @ vh  # [dt, ds]
        self.rotation_ = rotation.float()
        self.weight_ = (t_half @ rotation @ s_inv_half).float()

    def _apply(self, centred: Tensor) -> Tensor:
        return centred @ self.weight_.T
