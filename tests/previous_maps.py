"""Frozen copies of ``ProcrustesMap`` and ``RidgeMap`` as they were at commit 2837ee6.

The baseline that tests/test_map_equivalence.py and benchmarks/bench_maps.py compare the current
maps against (results equal within tight tolerances; times and memory as ratios). Not part of
the library; do not edit.
"""

# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.maths.alignment.base import AlignmentMap


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


class PreviousProcrustesMap(AlignmentMap):
    """Semi-orthogonal map ``W = U Vᵀ`` from the SVD of ``H̄_tᵀ H̄_s``.

    Args:
        scaled: also fit a global scale s (off by default, as in the paper).
        solver: ``"svd"``, ``"eigh"`` (polar factor via the smaller Gram; fast) or ``"auto"``
            (eigh when well conditioned, else SVD). The result is the same up to round-off.

    Learned: ``weight_ [dt, ds]``, ``singular_values_``, ``scale_`` (1.0 unless ``scaled``),
    ``solver_`` (the solver used).
    """

    kind = "procrustes-previous"

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


#: default grid, relative to the mean eigenvalue of the training Gram (scale-free)
DEFAULT_RELATIVE_GRID: tuple[float, ...] = tuple(10.0**e for e in range(-6, 4))


class PreviousRidgeMap(AlignmentMap):
    """Closed-form ridge regression from source to target anchors.

    Args:
        lambdas: absolute penalties λ to try (for the sum-of-squares objective above). None:
            mean Gram eigenvalue × 10⁻⁶ … 10³. A single value skips the held-out selection.
        holdout_fraction: fraction of anchors held out to choose λ.
        seed: seed of the held-out split.

    Learned: ``weight_ [dt, ds]``, ``lambda_`` (as applied to all anchors), ``form_``
    (``"primal"``/``"dual"``), ``lambda_grid_`` and ``holdout_r2_`` (R² per grid value),
    ``best_holdout_r2_``.
    """

    kind = "ridge-previous"

    def __init__(
        self,
        lambdas: Sequence[float] | None = None,
        holdout_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        if lambdas is not None and (len(lambdas) == 0 or any(lam < 0 for lam in lambdas)):
            raise InputError(f"lambdas must be non-negative and non-empty; got {lambdas}")
        if not 0.0 < holdout_fraction < 1.0:
            raise InputError(f"holdout_fraction must be in (0, 1); got {holdout_fraction}")
        self.lambdas = None if lambdas is None else [float(lam) for lam in lambdas]
        self.holdout_fraction = float(holdout_fraction)
        self.seed = int(seed)

    def params(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "kind": self.kind,
            "holdout_fraction": self.holdout_fraction,
            "seed": self.seed,
        }
        for name in ("lambda_", "form_", "best_holdout_r2_"):
            if hasattr(self, name):
                out[name.rstrip("_")] = getattr(self, name)
        return out

    # ---- fitting -------------------------------------------------------------------------
    def _fit_centred(self, source: Tensor, target: Tensor) -> None:
        n, ds = source.shape
        self.form_ = "primal" if n >= ds else "dual"
        x, y = source.double(), target.double()  # float64 Grams: small λ needs the bits
        n_val = round(n * self.holdout_fraction)
        select = (self.lambdas is None or len(self.lambdas) > 1) and n_val >= 2 and n - n_val >= 2
        if self.form_ == "primal":
            gram, cross, split = _primal_grams(x, y, n_val, self.seed, select)
        else:
            gram, cross, split = x @ x.T, y, None
        if select:
            g = torch.Generator().manual_seed(self.seed)
            perm = torch.randperm(n, generator=g)
            val, train = perm[:n_val], perm[n_val:]
            lam = self._select_lambda(x, y, train, val, gram, split) * n / len(train)
        else:
            if self.lambdas is None:  # too few anchors to hold any out: a mild default
                lam = 1e-3 * float((x**2).sum()) / max(min(n, ds), 1)
            else:
                lam = self.lambdas[0]
            self.lambda_grid_: list[float] = [lam]
            self.holdout_r2_: list[float] = []
            self.best_holdout_r2_ = float("nan")
        self.lambda_ = float(lam)
        gram.diagonal().add_(self.lambda_)  # in place: the selection no longer needs it
        wt = _spd_solve(gram, cross) if self.form_ == "primal" else x.T @ _spd_solve(gram, y)
        self.weight_ = wt.T.float().contiguous()

    def _select_lambda(
        self,
        x: Tensor,
        y: Tensor,
        train: Tensor,
        val: Tensor,
        gram: Tensor,
        split: tuple[Tensor, Tensor] | None,
    ) -> float:
        xv, yv = x[val], y[val]
        n_tr = len(train)  # training means without copying the training rows
        mx = (x.sum(dim=0) - xv.sum(dim=0)) / n_tr
        my = (y.sum(dim=0) - yv.sum(dim=0)) / n_tr
        xv, yv = xv - mx, yv - my  # validation centred with the training means
        if split is not None:  # primal: training Grams from the split sums
            gram_tr, cross_tr = split
            evals, q = torch.linalg.eigh(gram_tr)
            b = q.T @ cross_tr
        else:  # dual: kernels of train-centred points from the full kernel
            xm = x @ mx
            mm = float(mx @ mx)
            k_tr = gram[train][:, train] - xm[train][:, None] - xm[train][None, :] + mm
            k_vt = gram[val][:, train] - xm[val][:, None] - xm[train][None, :] + mm
            evals, q = torch.linalg.eigh(k_tr)
            xv = k_vt
            b = q.T @ (y[train] - my)
        evals = evals.clamp_min(0.0)
        # the products below only rank λs: float32 halves their cost at 4096 dims, and the
        # R² they give differ from float64 by ~1e-6 (tested against brute-force refits)
        q32, b32 = q.float(), b.float()
        a32 = xv.float() @ q32
        p = ((a32.T @ yv.float()).double() * b).sum(dim=1)
        m = (a32.T @ a32).double() * (b32 @ b32.T).double()
        yy = float((yv**2).sum())
        ss_tot = float(((yv - yv.mean(dim=0)) ** 2).sum())
        if self.lambdas is None:
            mean_eval = max(float(evals.mean()), 1e-30)
            grid = [r * mean_eval for r in DEFAULT_RELATIVE_GRID]
        else:
            grid = list(self.lambdas)
        scores = []
        for lam in grid:
            f = 1.0 / (evals + lam).clamp_min(1e-300)
            ss_res = yy - 2 * float(f @ p) + float(f @ (m @ f))
            scores.append(1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0)
        best = max(range(len(grid)), key=lambda i: scores[i])
        self.lambda_grid_, self.holdout_r2_ = grid, scores
        self.best_holdout_r2_ = float(scores[best])
        return float(grid[best])

    def _apply(self, centred: Tensor) -> Tensor:
        return centred @ self.weight_.T


def _primal_grams(
    x: Tensor, y: Tensor, n_val: int, seed: int, select: bool
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
    """Full centred ``XᵀX``, ``XᵀY`` and, when selecting λ, the train-centred ones.

    One pass over the anchors: the train and validation sums add up to the full ones, and the
    train-centred Grams follow by subtracting ``n_tr · m mᵀ`` (x, y are already centred).
    """
    if not select:
        return x.T @ x, x.T @ y, None
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    val, train = perm[:n_val], perm[n_val:]
    xv, yv = x[val], y[val]  # copy only the small validation part
    gram, cross = x.T @ x, x.T @ y
    gram_tr, cross_tr = gram - xv.T @ xv, cross - xv.T @ yv
    n_tr = len(train)
    mx = (x.sum(dim=0) - xv.sum(dim=0)) / n_tr
    my = (y.sum(dim=0) - yv.sum(dim=0)) / n_tr
    gram_tr -= n_tr * torch.outer(mx, mx)
    cross_tr -= n_tr * torch.outer(mx, my)
    return gram, cross, (gram_tr, cross_tr)


def _solve(x: Tensor, y: Tensor, lam: float, form: str) -> Tensor:
    """``W [dt, ds]`` for centred ``x [N, ds]``, ``y [N, dt]`` (float64), by the given form."""
    x, y = x.double(), y.double()
    if form == "primal":
        gram = x.T @ x
        gram.diagonal().add_(lam)
        return _spd_solve(gram, x.T @ y).T
    gram = x @ x.T
    gram.diagonal().add_(lam)
    return (x.T @ _spd_solve(gram, y)).T


def _spd_solve(a: Tensor, b: Tensor) -> Tensor:
    """Cholesky solve, falling back to a general least-squares solve when λ = 0 is singular."""
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        return torch.cholesky_solve(b, chol)
    return torch.linalg.lstsq(a, b).solution
