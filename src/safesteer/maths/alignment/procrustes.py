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
exactly only for an isotropic source: an anisotropic source biases it (tested).

**Few anchors** (N ≤ min(ds, dt): centred anchors span at most N − 1 dimensions) [ours]: C has
rank r < min(ds, dt), and the singular vectors of its zero singular values — which a full
``U Vᵀ`` would use to map the directions the anchors never saw — are chosen by rounding noise
(in the pilot a different batching of the same anchors moved the global vector by 33%). The map
is then the partial isometry ``W = U_r V_rᵀ`` over the r singular values above
``rank_rtol · σ_max``: directions the anchors do not span map to 0, the rest as in the paper.
It is computed through the N × N dual: thin QRs ``H̄_sᵀ = Q_s R_s``, ``H̄_tᵀ = Q_t R_t`` give
``C = Q_t (R_t R_sᵀ) Q_sᵀ``, so one SVD of the N × N matrix ``R_t R_sᵀ`` replaces the
ds × dt one. With enough anchors (N > min(ds, dt)) W is the paper's semi-orthogonal ``U Vᵀ``
(directions with tiny singular values are then weakly determined: more anchors, or ridge),
its polar factor from the eigendecomposition of the smaller Gram of C in float64 (the SVD when
that is too ill-conditioned); the product ``H̄_tᵀ H̄_s`` over the anchors runs in float32.

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

_SOLVERS = ("auto", "svd", "eigh", "dual")
#: singular values below this fraction of the largest are treated as zero (numerical rank)
DEFAULT_RANK_RTOL = 1e-6
#: λ_min/λ_max of the Gram (= 1/κ(C)²) from which the polar factor's products run in float32
_FLOAT32_PRODUCTS = 1e-4


def _polar_eigh(c: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(U Vᵀ, Σ)`` from the eigendecomposition of the smaller Gram of C (float64 factorisation).

    About 4× faster than an SVD at 4096²; returns None when C is too ill-conditioned for the
    squared spectrum to keep precision (the caller falls back to the SVD). ``c`` is float32.
    """
    dt, ds = c.shape
    c64 = c.double()
    gram = c64.T @ c64 if dt >= ds else c64 @ c64.T
    del c64
    evals, evecs = torch.linalg.eigh(gram)
    del gram
    top = float(evals[-1])
    if top <= 0 or float(evals[0]) < 1e-10 * top:  # σ_min/σ_max < 1e-5: squaring loses it
        return None
    # W = C V Λ^{-1/2} Vᵀ (or V Λ^{-1/2} Vᵀ C). The products add an error ~ε·κ(C): in float32
    # where κ(C) ≤ 100 (then below C's own float32 rounding), in float64 otherwise
    dtype = torch.float32 if float(evals[0]) >= _FLOAT32_PRODUCTS * top else torch.float64
    scaled = (evecs * evals.rsqrt()).to(dtype)
    v, cc = evecs.to(dtype), c.to(dtype)
    w = (cc @ scaled) @ v.T if dt >= ds else v @ (scaled.T @ cc)
    return w.double(), evals.sqrt().flip(0)


def _polar_svd(c: Tensor, rtol: float, n: int) -> tuple[Tensor, Tensor, int]:
    """``(U_r V_rᵀ, Σ, r)`` from the SVD of C made of ``n`` centred anchors.

    With fewer anchors than dimensions (rank ≤ n − 1 < min(ds, dt)) only the singular values
    above ``rtol·σ_max`` are kept, as in :func:`_polar_dual`; otherwise all (the paper's W).
    """
    u, sigma, vh = torch.linalg.svd(c.double(), full_matrices=False)
    k = sigma.numel()
    rank = _rank(sigma, rtol, n - 1) if n <= k else k
    return u[:, :rank] @ vh[:rank], sigma, rank


def _polar_dual(source: Tensor, target: Tensor, rtol: float) -> tuple[Tensor, Tensor, int]:
    """``(U_r V_rᵀ, Σ, r)`` of ``C = H̄_tᵀ H̄_s`` through the N × N dual (N ≤ min(ds, dt)).

    ``H̄_sᵀ = Q_s R_s``, ``H̄_tᵀ = Q_t R_t`` (thin QR, float64), ``R_t R_sᵀ = U Σ Vᵀ``;
    ``U_C = Q_t U``, ``V_C = Q_s V``. Centred anchors span at most N − 1 dimensions.
    """
    q_s, r_s = torch.linalg.qr(source.T.double())
    q_t, r_t = torch.linalg.qr(target.T.double())
    u, sigma, vh = torch.linalg.svd(r_t @ r_s.T)
    rank = _rank(sigma, rtol, source.shape[0] - 1)
    inner = u[:, :rank] @ vh[:rank]  # N × N
    return q_t @ (inner @ q_s.T), sigma, rank


def _rank(sigma: Tensor, rtol: float, most: int) -> int:
    if sigma.numel() == 0 or float(sigma[0]) <= 0:
        return 0
    return min(int((sigma > rtol * sigma[0]).sum()), most)


class ProcrustesMap(AlignmentMap):
    """Semi-orthogonal map ``W = U Vᵀ`` from the SVD of ``H̄_tᵀ H̄_s``.

    Args:
        scaled: also fit a global scale s (off by default, as in the paper).
        solver: ``"svd"``, ``"eigh"`` (polar factor via the smaller Gram; fast), ``"dual"``
            (N × N problem; for N ≤ min(ds, dt)) or ``"auto"`` (dual with few anchors, else eigh
            when well conditioned, else SVD). The result is the same up to round-off.
        rank_rtol: with fewer anchors than dimensions, singular values below
            ``rank_rtol · σ_max`` count as zero and their directions map to 0 (see the module
            docstring).

    Learned: ``weight_ [dt, ds]``, ``singular_values_``, ``rank_`` (singular directions kept;
    ``min(ds, dt)`` unless C is rank-deficient), ``scale_`` (1.0 unless ``scaled``),
    ``solver_`` (the solver used).
    """

    kind = "procrustes"

    def __init__(
        self, *, scaled: bool = False, solver: str = "auto", rank_rtol: float = DEFAULT_RANK_RTOL
    ) -> None:
        if solver not in _SOLVERS:
            raise InputError(
                f"unknown Procrustes solver {solver!r}", hint=f"choose from {_SOLVERS}"
            )
        if not 0.0 <= rank_rtol < 1.0:
            raise InputError(f"rank_rtol must be in [0, 1); got {rank_rtol}")
        self.scaled = scaled
        self.solver = solver
        self.rank_rtol = float(rank_rtol)

    def params(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {"kind": self.kind, "scaled": str(self.scaled)}
        out["solver"] = getattr(self, "solver_", self.solver)
        if hasattr(self, "rank_"):
            out["rank"] = self.rank_
        if hasattr(self, "scale_"):
            out["scale"] = self.scale_
        return out

    def _fit_centred(self, source: Tensor, target: Tensor) -> None:
        n, k = source.shape[0], min(source.shape[1], target.shape[1])
        if self.solver == "dual" or (self.solver == "auto" and n <= k):
            w, sigma, self.rank_ = _polar_dual(source, target, self.rank_rtol)
            self.solver_ = "dual"
        else:
            c = target.T @ source  # float32 product over the anchors (the one O(N) step)
            polar = None
            if self.solver in ("auto", "eigh") and n > k:
                polar = _polar_eigh(c)
            if polar is None and self.solver == "eigh":
                raise InputError(
                    "the anchors' cross-covariance is too ill-conditioned for solver='eigh'",
                    hint="use solver='svd' or more anchors",
                )
            if polar is not None:
                w, sigma = polar
                self.rank_ = k
                self.solver_ = "eigh"
            else:
                w, sigma, self.rank_ = _polar_svd(c, self.rank_rtol, n)
                self.solver_ = "svd"
        self.weight_ = w.float()
        self.singular_values_ = sigma.float()
        if self.scaled:
            kept = float(sigma[: self.rank_].sum())
            self.scale_ = kept / float((source.double() ** 2).sum())
        else:
            self.scale_ = 1.0

    def _apply(self, centred: Tensor) -> Tensor:
        return self.scale_ * (centred @ self.weight_.T)
