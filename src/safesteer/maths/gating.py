"""Gating: decide per prompt whether to steer and along which categories (method.md §5, §9).

Fitted on **benign** pooled target states only, so the benign false-trigger rate is bounded
without ever seeing unsafe target data [ours].

Sign convention: every vector points to the **safe** side (safe − unsafe), so an unsafe prompt
has a LOW projection on it. Scores are therefore negated projections, *higher = more unsafe*::

    score_c(h) = −⟨h − μ, u_c⟩ / σ_c

with μ the benign mean, σ_c the benign standard deviation of the projection (scores are in
benign standard deviations), and

* ``score="projection"``: ``u_c = v_c / ‖v_c‖``;
* ``score="whitened"`` (default): ``u_c = unit(Σ⁻¹ v_c)``, Σ the shrinkage covariance of the
  benign anchors, ``Σ = (1−γ)·S + γ·(tr S / D)·I`` with γ by Ledoit–Wolf unless given
  (LDA-like, using the benign covariance only).

The scores are the entries of :data:`GATE_SCORES` (one function each, giving the ``u_c``).

A name *triggers* when its score exceeds its threshold. Thresholds, one per name, are the same
benign quantile q of each name's benign scores, with q found by bisection so that the fraction
of benign anchors on which **any** name triggers equals ``false_trigger_rate``.

Cross-fitting [ours]: the benign anchors are split once (seeded). μ, Σ and the directions u_c
are fitted on one part; σ_c and the thresholds on the other, held-out *calibration* part
(``calibration_fraction``, default 0.3). Thresholds set on the anchors that also fitted Σ⁻¹v
are optimistic: in high dimensions with few anchors the whitened projection has a smaller
spread in-sample than on new prompts, and a 5% target became 10–27% on held-out benign
prompts with real 384/640-d encoder states. Held-out thresholds keep the rate honest.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> benign = torch.randn(2000, 8, generator=g)
    >>> v = torch.zeros(8); v[0] = 1.0                       # safe side is +x0
    >>> gate = Gate(false_trigger_rate=0.05).fit(benign, {"global": v})
    >>> rate = float(gate.decide(benign).steer.float().mean())  # thresholds held out: ≈ 5%
    >>> abs(rate - 0.05) < 0.02
    True
    >>> unsafe = benign[:100] - 6 * v                        # pushed to the unsafe side
    >>> bool(gate.decide(unsafe).steer.float().mean() > 0.9)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

import torch
from torch import Tensor

from safesteer.errors import InputError, PackError

__all__ = ["GATE_SCORES", "GLOBAL", "Gate", "GateDecision", "ledoit_wolf_shrinkage"]

GLOBAL = "global"


@dataclass
class GateDecision:
    """What the gate decided for a batch of B prompts.

    Attributes:
        steer: ``[B]`` bool, True where any name triggered.
        active: per prompt, the triggered **category** names (``"global"`` excluded), in the
            gate's order. A prompt with ``steer`` True and no active category triggered on the
            global vector only: steer it with the global vector
            (:meth:`safesteer.SafetyPack.vector` does this for an empty list).
        scores: name → ``[B]`` scores (higher = more unsafe, in benign standard deviations).
    """

    steer: Tensor
    active: list[list[str]]
    scores: dict[str, Tensor]


def ledoit_wolf_shrinkage(centred: Tensor) -> float:
    """Ledoit–Wolf (2004) shrinkage γ ∈ [0, 1] towards ``(tr S / D)·I`` for centred ``[N, D]``.

    ``γ = min(b̄², d²) / d²`` with ``d² = ‖S − μI‖²_F``,
    ``b̄² = (1/N²) Σ_k ‖x_k x_kᵀ − S‖²_F``, ``S = XᵀX/N``, ``μ = tr S / D``.
    Works in the N×N Gram form when N < D.
    """
    x = centred.double()
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


def _shrunk_solve(centred: Tensor, v: Tensor, gamma: float) -> Tensor:
    """Σ⁻¹v for Σ = (1−γ)XᵀX/N + γμI (v: [D] or [D, K]), via Woodbury when N < D."""
    x = centred.double()
    n, d = x.shape
    mu = float((x * x).sum()) / (n * d)
    c = max(gamma * mu, 1e-12 * max(mu, 1e-300))  # keeps Σ invertible when γ = 0 and N < D
    a = (1.0 - gamma) / n
    vd = v.double()
    if n < d:
        # (cI + a XᵀX)⁻¹ v = (v − a Xᵀ (cI + a XXᵀ)⁻¹ X v) / c
        inner = c * torch.eye(n, dtype=torch.float64) + a * (x @ x.T)
        return (vd - a * x.T @ torch.linalg.solve(inner, x @ vd)) / c
    sigma = a * (x.T @ x) + c * torch.eye(d, dtype=torch.float64)
    return torch.linalg.solve(sigma, vd)


def projection_directions(
    centred: Tensor, vectors: Tensor, shrinkage: float | None
) -> tuple[Tensor, float]:
    """``score="projection"``: ``u_c ∝ v_c`` (no covariance; γ reported as 0)."""
    return vectors, 0.0


def whitened_directions(
    centred: Tensor, vectors: Tensor, shrinkage: float | None
) -> tuple[Tensor, float]:
    """``score="whitened"``: ``u_c ∝ Σ⁻¹ v_c``, one factorisation for every name.

    ``Σ = (1−γ)·S + γ·(tr S / D)·I``; γ is ``shrinkage`` or, when None, Ledoit–Wolf's.
    """
    gamma = float(shrinkage) if shrinkage is not None else ledoit_wolf_shrinkage(centred)
    return _shrunk_solve(centred, vectors, gamma), gamma


#: how a gate scores a prompt, by name: ``(centred benign states [N, D], vectors [D, K],
#: shrinkage asked for) → (unnormalised score directions [D, K], shrinkage used)``.
#: The one list of gate scores: ``Gate(score=...)`` and every ``--gate-score`` read it.
ScoreDirections = Callable[[Tensor, Tensor, float | None], tuple[Tensor, float]]
GATE_SCORES: dict[str, ScoreDirections] = {
    "projection": projection_directions,
    "whitened": whitened_directions,
}


class Gate:
    """Per-prompt steering gate, thresholds from benign pooled target states only.

    Args:
        false_trigger_rate: intended fraction of benign prompts on which any name triggers.
        score: ``"whitened"`` (default) or ``"projection"`` — see the module docstring.
        shrinkage: covariance shrinkage γ for ``"whitened"``; None picks it by Ledoit–Wolf.
        calibration_fraction: share of the benign anchors held out to set σ_c and thresholds
            (0 fits everything on all anchors, the optimistic variant).
        seed: seed of the fit / calibration split.

    Learned attributes: ``centre_`` [D], ``directions_`` name → u [D], ``scales_`` name → σ,
    ``thresholds_`` name → float, ``quantile_``, ``shrinkage_``, ``benign_rate_`` (the union
    trigger rate measured on the calibration anchors), ``n_benign_``, ``n_calibration_``.
    """

    def __init__(
        self,
        false_trigger_rate: float = 0.05,
        score: str = "whitened",
        shrinkage: float | None = None,
        calibration_fraction: float = 0.3,
        seed: int = 0,
    ) -> None:
        if not 0.0 < false_trigger_rate < 1.0:
            raise InputError(
                f"false_trigger_rate must be in (0, 1); got {false_trigger_rate}",
                hint="e.g. 0.05 for 5% of benign prompts",
            )
        if score not in GATE_SCORES:
            raise InputError(
                f"unknown gate score {score!r}", hint=f"choose one of {tuple(GATE_SCORES)}"
            )
        if shrinkage is not None and not 0.0 <= shrinkage <= 1.0:
            raise InputError(f"shrinkage must be in [0, 1]; got {shrinkage}")
        if not 0.0 <= calibration_fraction < 1.0:
            raise InputError(
                f"calibration_fraction must be in [0, 1); got {calibration_fraction}",
                hint="e.g. 0.3 to set thresholds on 30% of the benign anchors held out",
            )
        self.calibration_fraction = float(calibration_fraction)
        self.seed = int(seed)
        self.false_trigger_rate = float(false_trigger_rate)
        self.score = score
        self.shrinkage = shrinkage

    # ---- fitting -------------------------------------------------------------------------
    def fit(self, benign_pooled: Tensor, vectors: Mapping[str, Tensor]) -> Self:
        """Fit centre, score directions and thresholds on benign pooled states ``[N, D]``."""
        if benign_pooled.ndim != 2 or benign_pooled.shape[0] < 10:
            raise InputError(
                f"benign_pooled must be [N >= 10, D]; got {tuple(benign_pooled.shape)}",
                hint="pass pooled target states of many benign anchors",
            )
        if not vectors:
            raise InputError("no vectors to gate on", hint="pass {'global': v, ...}")
        dim = int(benign_pooled.shape[1])
        for name, v in vectors.items():
            if v.shape != (dim,):
                raise PackError(
                    f"gate vector {name!r} has shape {tuple(v.shape)}; benign states have dim {dim}"
                )
        fit_part, calibration = self._split(benign_pooled)
        x = fit_part.double()
        self.centre_ = x.mean(dim=0)
        xc = x - self.centre_
        self.directions_: dict[str, Tensor] = {}
        self.scales_: dict[str, float] = {}
        names = list(vectors)
        stacked = torch.stack([vectors[n].double() for n in names], dim=1)  # [D, K]
        stacked, self.shrinkage_ = GATE_SCORES[self.score](xc, stacked, self.shrinkage)
        for k, name in enumerate(names):
            u = stacked[:, k]
            norm = torch.linalg.vector_norm(u)
            if not torch.isfinite(norm) or norm == 0:
                raise InputError(f"gate vector {name!r} is zero or not finite")
            self.directions_[name] = u / norm
        self.centre_ = self.centre_.float()
        self.directions_ = {k: u.float() for k, u in self.directions_.items()}
        # σ_c on the calibration part, so scores are in held-out benign standard deviations
        calib_c = calibration.float() - self.centre_
        self.scales_ = {
            n: max(float((calib_c @ u).std()), 1e-12) for n, u in self.directions_.items()
        }
        benign_scores = self.scores(calibration)
        self.quantile_, self.thresholds_ = self._fit_thresholds(benign_scores)
        self.benign_rate_ = float(self._triggered(benign_scores).any(dim=0).double().mean())
        self.n_benign_ = int(benign_pooled.shape[0])
        self.n_calibration_ = int(calibration.shape[0])
        return self

    def _split(self, benign: Tensor) -> tuple[Tensor, Tensor]:
        """(fit part, calibration part); both are all anchors when calibration_fraction is 0."""
        n_cal = round(self.calibration_fraction * benign.shape[0])
        if n_cal == 0:
            return benign, benign
        if n_cal < 10 or benign.shape[0] - n_cal < 10:
            raise InputError(
                f"{benign.shape[0]} benign anchors are too few to hold out "
                f"{self.calibration_fraction:.0%} for the gate's thresholds",
                hint="pass more benign anchors (hundreds) or calibration_fraction=0",
            )
        order = torch.randperm(benign.shape[0], generator=torch.Generator().manual_seed(self.seed))
        return benign[order[n_cal:]], benign[order[:n_cal]]

    def _fit_thresholds(self, scores: dict[str, Tensor]) -> tuple[float, dict[str, float]]:
        names = list(scores)
        stacked = torch.stack([scores[n].double() for n in names])  # [K, N]

        def thresholds(q: float) -> Tensor:
            return torch.quantile(stacked, q, dim=1)

        def union_rate(q: float) -> float:
            return float((stacked > thresholds(q)[:, None]).any(dim=0).double().mean())

        # union rate falls as q rises; with one name q = 1 − rate, with K names q ∈ [1−rate, 1]
        lo, hi = 1.0 - self.false_trigger_rate, 1.0
        if union_rate(lo) > self.false_trigger_rate:
            for _ in range(50):
                mid = 0.5 * (lo + hi)
                if union_rate(mid) > self.false_trigger_rate:
                    lo = mid
                else:
                    hi = mid
            q = hi
        else:
            q = lo
        thr = thresholds(q)
        return q, {n: float(t) for n, t in zip(names, thr, strict=True)}

    # ---- applying ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "directions_"):
            raise InputError("the gate is not fitted", hint="call Gate.fit(benign_pooled, vectors)")

    @property
    def names(self) -> list[str]:
        """Gated names, in fitting order."""
        self._check_fitted()
        return list(self.directions_)

    def scores(self, pooled: Tensor) -> dict[str, Tensor]:
        """name → ``[B]`` scores ``−⟨h − μ, u⟩ / σ`` (higher = more unsafe)."""
        self._check_fitted()
        if pooled.ndim != 2 or pooled.shape[1] != self.centre_.shape[0]:
            raise PackError(
                f"gate expects pooled states [B, {self.centre_.shape[0]}]; "
                f"got {tuple(pooled.shape)}",
                hint="pool the states of the pipeline the gate was fitted for",
            )
        xc = (pooled.float() - self.centre_).double()
        # a float64 product rounded to float32: a row's score does not depend on how many rows
        # are scored with it (float32 matrix-vector kernels differ in the last bits by row count)
        return {
            n: (-(xc @ u.double())).float() / self.scales_[n] for n, u in self.directions_.items()
        }

    def _triggered(self, scores: Mapping[str, Tensor]) -> Tensor:
        return torch.stack([scores[n] > self.thresholds_[n] for n in self.directions_])

    def decide(self, pooled: Tensor) -> GateDecision:
        """Steer where any name's score exceeds its threshold; list the triggered categories."""
        scores = self.scores(pooled)
        hits = self._triggered(scores)  # [K, B]
        names = list(self.directions_)
        active = [
            [n for k, n in enumerate(names) if n != GLOBAL and bool(hits[k, b])]
            for b in range(pooled.shape[0])
        ]
        return GateDecision(steer=hits.any(dim=0), active=active, scores=scores)

    # ---- persistence (the pack stores these) ---------------------------------------------
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Tensors (``"centre"``, ``"u/<name>"``) and JSON-ready metadata."""
        self._check_fitted()
        tensors = {"centre": self.centre_.contiguous()}
        tensors.update({f"u/{n}": u.contiguous() for n, u in self.directions_.items()})
        meta: dict[str, Any] = {
            "score": self.score,
            "false_trigger_rate": self.false_trigger_rate,
            "shrinkage": self.shrinkage,
            "shrinkage_used": self.shrinkage_,
            "names": list(self.directions_),
            "scales": dict(self.scales_),
            "thresholds": dict(self.thresholds_),
            "quantile": self.quantile_,
            "benign_rate": self.benign_rate_,
            "n_benign": self.n_benign_,
            "calibration_fraction": self.calibration_fraction,
            "n_calibration": self.n_calibration_,
            "seed": self.seed,
        }
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> Gate:
        """Rebuild a fitted gate from :meth:`state` output (refuses an incomplete state)."""
        try:
            gate = cls(
                float(meta["false_trigger_rate"]),
                str(meta["score"]),
                meta["shrinkage"],
                calibration_fraction=float(meta.get("calibration_fraction", 0.0)),
                seed=int(meta.get("seed", 0)),
            )
            gate.n_calibration_ = int(meta.get("n_calibration", meta["n_benign"]))
            names = [str(n) for n in meta["names"]]
            gate.centre_ = tensors["centre"]
            gate.directions_ = {n: tensors[f"u/{n}"] for n in names}
            gate.scales_ = {n: float(meta["scales"][n]) for n in names}
            gate.thresholds_ = {n: float(meta["thresholds"][n]) for n in names}
            gate.shrinkage_ = float(meta["shrinkage_used"])
            gate.quantile_ = float(meta["quantile"])
            gate.benign_rate_ = float(meta["benign_rate"])
            gate.n_benign_ = int(meta["n_benign"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PackError(
                f"gate state is incomplete or malformed: {exc!r}",
                hint="rebuild the pack with this safesteer version",
            ) from exc
        dims = {int(gate.centre_.shape[-1])} | {int(u.shape[-1]) for u in gate.directions_.values()}
        if len(dims) != 1:
            raise PackError(f"gate tensors have inconsistent dimensions {sorted(dims)}")
        return gate
