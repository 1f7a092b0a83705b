"""Orthogonal Procrustes map (the paper's "SVD" map; best in every headline result).

``C = H̄_tᵀ H̄_s`` (dt × ds), ``C = U Σ Vᵀ``, ``W = U Vᵀ`` — the (semi-)orthogonal W that best
rotates centred source anchors onto centred target anchors. Semi-orthogonal when ds ≠ dt:
``WᵀW = I`` if dt ≥ ds, ``WWᵀ = I`` if dt < ds.

A pure rotation cannot absorb a scale difference between the spaces: ``transform`` is the
orthogonal map (as in the paper) and calibration sets vector lengths. So R² in
:meth:`score` can be poor, even negative, when the spaces' scales differ; ``mean_cosine``
shows whether the directions agree. ``scaled=True`` [ours] multiplies by
``s = tr Σ / ‖H̄_s‖²_F`` (the least-squares scale) to make ``transform`` predict points.

When dt ≥ ds, ``U Vᵀ`` is the least-squares fit among maps with ``WᵀW = I``. When dt < ds it
is not quite (with ``WWᵀ = I``, ``‖H̄_s Wᵀ‖`` depends on W): a planted projection is recovered
exactly only for an isotropic source; an anisotropic source biases it (tested).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> q, _ = torch.linalg.qr(torch.randn(6, 4, generator=g))   # planted 4 → 6 map
    >>> src = torch.randn(200, 4, generator=g)
    >>> m = ProcrustesMap().fit(src, src @ q.T)
    >>> bool(torch.allclose(m.weight_, q, atol=1e-4))
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.maths.alignment.base import AlignmentMap

__all__ = ["ProcrustesMap"]

_SOLVERS = ("auto", "svd", "eigh")


def _polar_eigh(c: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(U Vᵀ, Σ)`` from the eigendecomposition of the smaller Gram of C (float64).

    About 4× faster than an SVD at 4096²; returns None when C is too ill-conditioned for the
    squared spectrum to keep precision (the caller falls back to the SVD).
    """
    dt, ds = c.shape
    gram = c.T @ c if dt >= ds else c @ c.T
    evals, evecs = torch.linalg.eigh(gram)
    top = float(evals[-1])
    if top <= 0 or float(evals[0]) < 1e-10 * top:  # σ_min/σ_max < 1e-5: squaring loses it
        return None
    inv_sqrt = evecs * evals.rsqrt()
    w = c @ (inv_sqrt @ evecs.T) if dt >= ds else (inv_sqrt @ evecs.T) @ c
    return w, evals.sqrt().flip(0)


class ProcrustesMap(AlignmentMap):
    """Semi-orthogonal map ``W = U Vᵀ`` from the SVD of ``H̄_tᵀ H̄_s``.

    Args:
        scaled: also fit a global scale s (off by default, as in the paper).
        solver: ``"svd"``, ``"eigh"`` (polar factor via the smaller Gram; fast) or ``"auto"``
            (eigh when well conditioned, else SVD). The result is the same up to round-off.

    Learned: ``weight_ [dt, ds]``, ``singular_values_``, ``scale_`` (1.0 unless ``scaled``),
    ``solver_`` (the solver used).
    """

    kind = "procrustes"

    def __init__(self, *, scaled: bool = False, solver: str = "auto") -> None:
        if solver not in _SOLVERS:
            raise InputError(
                f"unknown Procrustes solver {solver!r}", hint=f"choose from {_SOLVERS}"
            )
        self.scaled = scaled
        self.solver = solver

    def params(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {"kind": self.kind, "scaled": str(self.scaled)}
        out["solver"] = getattr(self, "solver_", self.solver)
        if hasattr(self, "scale_"):
            out["scale"] = self.scale_
        return out

    def _fit_centred(self, source: Tensor, target: Tensor) -> None:
        c = (target.T @ source).double()  # float32 product (fast), float64 factorisation
        polar = None
        if self.solver in ("auto", "eigh") and source.shape[0] >= min(c.shape):
            polar = _polar_eigh(c)
        if polar is None and self.solver == "eigh":
            raise InputError(
                "the anchors' cross-covariance is too ill-conditioned for solver='eigh'",
                hint="use solver='svd' or more anchors",
            )
        if polar is not None:
            w, sigma = polar
            self.solver_ = "eigh"
        else:
            u, sigma, vh = torch.linalg.svd(c, full_matrices=False)
            w = u @ vh
            self.solver_ = "svd"
        self.weight_ = w.float()
        self.singular_values_ = sigma.float()
        if self.scaled:
            self.scale_ = float(sigma.sum()) / float((source.double() ** 2).sum())
        else:
            self.scale_ = 1.0

    def _apply(self, centred: Tensor) -> Tensor:
        return self.scale_ * (centred @ self.weight_.T)
