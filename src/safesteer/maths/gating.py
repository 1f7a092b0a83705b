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

A name *triggers* when its score exceeds its threshold. Thresholds come from one benign
quantile level q, by a *threshold rule* (:data:`THRESHOLD_RULES`):

* ``"pooled"`` (default): ``t_c(q)`` = the q-quantile of name c's scores over all calibration
  rows; q is found by bisection so that the fraction of calibration rows on which **any** name
  triggers equals ``false_trigger_rate``.
* ``"set-max"`` [ours, issue 10]: the calibration rows come in named *groups* (benign prompt
  sets of different styles: ``fit(..., groups=...)``). ``t_c(q) = max_g Q_q(scores_c | g)``,
  the largest of the groups' q-quantiles, and q is found by bisection so that the **worst**
  group's union trigger rate equals ``false_trigger_rate``: the gate holds the rate on every
  benign style it has seen. With one name, ``q = 1 − rate`` and the threshold is the max over
  groups of each group's (1 − rate)-quantile. Without groups it is ``"pooled"``.

A threshold set on one benign style fails others (issue 10: a gate at 5% on our anchors steered
74% of real photo captions); ``"set-max"`` is the rule that held on every real set.

Cross-fitting [ours]: the benign anchors are split once (seeded; stratified by group when
groups are given: each group gives the same share). μ, Σ and the directions u_c are fitted on
one part; σ_c and the thresholds on the other, held-out *calibration* part
(``calibration_fraction``, default 0.3). Thresholds set on the anchors that also fitted Σ⁻¹v
are optimistic: in high dimensions with few anchors the whitened projection has a smaller
spread in-sample than on new prompts, and a 5% target became 10–27% on held-out benign
prompts with real 384/640-d encoder states. Held-out thresholds keep the rate honest.
``fit(..., covariance_from=states)`` fits μ and Σ on a separate (larger) benign set instead,
and uses *every* row passed as ``benign_pooled`` for σ_c and the thresholds (no split).

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self, get_args

import torch
from torch import Tensor

from safesteer.errors import InputError, PackError
from safesteer.maths.covariance import ledoit_wolf_shrinkage
from safesteer.maths.covariance import shrunk_solve as _shrunk_solve

__all__ = [
    "GATE_SCORES",
    "GLOBAL",
    "THRESHOLD_RULES",
    "Gate",
    "GateDecision",
    "ThresholdRule",
    "ledoit_wolf_shrinkage",
]

GLOBAL = "global"
#: how thresholds are set from the calibration rows (module docstring); the first is the default
ThresholdRule = Literal["pooled", "set-max"]
THRESHOLD_RULES: tuple[str, ...] = get_args(ThresholdRule)


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
        threshold_rule: ``"pooled"`` (default) or ``"set-max"`` (module docstring).

    Learned attributes: ``centre_`` [D], ``directions_`` name → u [D], ``scales_`` name → σ,
    ``thresholds_`` name → float, ``quantile_``, ``shrinkage_``, ``benign_rate_`` (the union
    trigger rate measured on the calibration anchors), ``group_rates_`` group → union rate on
    that group's calibration rows and ``group_counts_`` group → rows ({} without groups),
    ``n_benign_`` (benign rows seen), ``n_calibration_``, ``n_covariance_`` (rows that fitted
    μ and Σ).
    """

    def __init__(
        self,
        false_trigger_rate: float = 0.05,
        score: str = "whitened",
        shrinkage: float | None = None,
        calibration_fraction: float = 0.3,
        seed: int = 0,
        threshold_rule: str = "pooled",
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
        if threshold_rule not in THRESHOLD_RULES:
            raise InputError(
                f"unknown threshold rule {threshold_rule!r}",
                hint=f"choose one of {THRESHOLD_RULES}",
            )
        self.threshold_rule = threshold_rule
        self.calibration_fraction = float(calibration_fraction)
        self.seed = int(seed)
        self.false_trigger_rate = float(false_trigger_rate)
        self.score = score
        self.shrinkage = shrinkage

    # ---- fitting -------------------------------------------------------------------------
    def fit(
        self,
        benign_pooled: Tensor,
        vectors: Mapping[str, Tensor],
        groups: Sequence[str] | None = None,
        covariance_from: Tensor | None = None,
    ) -> Self:
        """Fit centre, score directions and thresholds on benign pooled states ``[N, D]``.

        Args:
            benign_pooled: benign pooled states (target or source side, as the vectors).
            vectors: name → ``[D]`` vector pointing to the safe side (``"global"`` and
                categories).
            groups: optional, one name per row of ``benign_pooled``: which benign set (style)
                the row comes from. The held-out split is stratified by group, per-group rates
                are recorded, and ``threshold_rule="set-max"`` holds the rate on each group.
            covariance_from: optional benign states ``[M, D]`` to fit μ and Σ (and the score
                directions) on instead of a split of ``benign_pooled``; then every row of
                ``benign_pooled`` calibrates σ_c and the thresholds. Pass rows disjoint from
                ``benign_pooled`` (e.g. the map-fit anchors vs the gate-calibration part).
        """
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
        labels = self._check_groups(groups, int(benign_pooled.shape[0]))
        cal_groups: list[str] | None
        if covariance_from is not None:
            if covariance_from.ndim != 2 or covariance_from.shape[1] != dim:
                raise InputError(
                    f"covariance_from must be [M, {dim}]; got {tuple(covariance_from.shape)}",
                    hint="pass benign states of the same model and layer as benign_pooled",
                )
            if covariance_from.shape[0] < 2:
                raise InputError("covariance_from needs at least 2 benign rows")
            fit_part, calibration, cal_groups = covariance_from, benign_pooled, labels
        else:
            fit_part, calibration, cal_groups = self._split(benign_pooled, labels)
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
        members = _members(cal_groups)
        self.quantile_, self.thresholds_ = self._fit_thresholds(benign_scores, members)
        union = self._triggered(benign_scores).any(dim=0).double()
        self.benign_rate_ = float(union.mean())
        self.group_rates_ = {g: float(union[idx].mean()) for g, idx in members.items()}
        self.group_counts_ = {g: int(idx.numel()) for g, idx in members.items()}
        self.n_calibration_ = int(calibration.shape[0])
        self.n_covariance_ = int(fit_part.shape[0])
        self.n_benign_ = int(benign_pooled.shape[0]) + (
            int(covariance_from.shape[0]) if covariance_from is not None else 0
        )
        return self

    @staticmethod
    def _check_groups(groups: Sequence[str] | None, n: int) -> list[str] | None:
        if groups is None:
            return None
        labels = list(groups)
        if len(labels) != n:
            raise InputError(
                f"{len(labels)} group names for {n} benign rows",
                hint="give one group name (its benign set) per row",
            )
        bad = [g for g in dict.fromkeys(labels) if not isinstance(g, str) or not g]
        if bad:
            raise InputError(f"group names must be non-empty strings; got {bad[:3]}")
        return labels

    def _split(
        self, benign: Tensor, groups: list[str] | None
    ) -> tuple[Tensor, Tensor, list[str] | None]:
        """(fit part, calibration part, its group names); all anchors both ways when the
        calibration fraction is 0. With groups, each group gives ``round(fraction · n_g)`` rows
        (the first of its rows in one seeded permutation)."""
        if self.calibration_fraction == 0.0:
            return benign, benign, groups
        n = int(benign.shape[0])
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        if groups is None:
            n_cal = round(self.calibration_fraction * n)
            if n_cal == 0:
                return benign, benign, None
            cal_idx, fit_idx = order[:n_cal], order[n_cal:]
        else:
            sizes: dict[str, int] = {}
            for g in groups:
                sizes[g] = sizes.get(g, 0) + 1
            quota = {g: round(self.calibration_fraction * k) for g, k in sizes.items()}
            empty = [g for g, k in quota.items() if k == 0]
            if empty:
                raise InputError(
                    f"benign group(s) {empty} are too small to hold out "
                    f"{self.calibration_fraction:.0%} of their rows for the gate's thresholds",
                    hint="pass more rows of each benign set, or merge the small sets",
                )
            taken: dict[str, int] = dict.fromkeys(sizes, 0)
            is_cal = torch.zeros(n, dtype=torch.bool)
            for i in order.tolist():
                g = groups[i]
                if taken[g] < quota[g]:
                    taken[g] += 1
                    is_cal[i] = True
            cal_idx = order[is_cal[order]]
            fit_idx = order[~is_cal[order]]
        if cal_idx.numel() < 10 or fit_idx.numel() < 10:
            raise InputError(
                f"{n} benign anchors are too few to hold out "
                f"{self.calibration_fraction:.0%} for the gate's thresholds",
                hint="pass more benign anchors (hundreds) or calibration_fraction=0",
            )
        cal_groups = None if groups is None else [groups[i] for i in cal_idx.tolist()]
        return benign[fit_idx], benign[cal_idx], cal_groups

    def _fit_thresholds(
        self, scores: dict[str, Tensor], members: Mapping[str, Tensor]
    ) -> tuple[float, dict[str, float]]:
        names = list(scores)
        stacked = torch.stack([scores[n].double() for n in names])  # [K, N]
        by_group = self.threshold_rule == "set-max" and len(members) > 0
        parts = list(members.values()) if by_group else [torch.arange(stacked.shape[1])]

        def thresholds(q: float) -> Tensor:
            if not by_group:
                return torch.quantile(stacked, q, dim=1)
            per_group = torch.stack([torch.quantile(stacked[:, idx], q, dim=1) for idx in parts])
            return per_group.max(dim=0).values  # the largest group quantile, per name

        def worst_rate(q: float) -> float:
            hits = (stacked > thresholds(q)[:, None]).any(dim=0).double()
            return max(float(hits[idx].mean()) for idx in parts)

        # the rate falls as q rises; with one name q = 1 − rate, with K names q ∈ [1−rate, 1]
        lo, hi = 1.0 - self.false_trigger_rate, 1.0
        if worst_rate(lo) > self.false_trigger_rate:
            for _ in range(50):
                mid = 0.5 * (lo + hi)
                if worst_rate(mid) > self.false_trigger_rate:
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
            "threshold_rule": self.threshold_rule,
            "group_rates": dict(self.group_rates_),
            "group_counts": dict(self.group_counts_),
            "n_covariance": self.n_covariance_,
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
                threshold_rule=str(meta.get("threshold_rule", "pooled")),
            )
            gate.n_calibration_ = int(meta.get("n_calibration", meta["n_benign"]))
            # fields added with the threshold rules; older packs have none of them
            gate.group_rates_ = {str(g): float(r) for g, r in meta.get("group_rates", {}).items()}
            gate.group_counts_ = {str(g): int(c) for g, c in meta.get("group_counts", {}).items()}
            covariance_rows = meta.get("n_covariance")
            if covariance_rows is not None:
                gate.n_covariance_ = int(covariance_rows)
            elif gate.n_calibration_ >= int(meta["n_benign"]):  # fraction 0: all rows did both
                gate.n_covariance_ = int(meta["n_benign"])
            else:
                gate.n_covariance_ = int(meta["n_benign"]) - gate.n_calibration_
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


def _members(groups: Sequence[str] | None) -> dict[str, Tensor]:
    """group → indices of its rows, in order of first appearance ({} without groups)."""
    if groups is None:
        return {}
    out: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        out.setdefault(g, []).append(i)
    return {g: torch.tensor(idx, dtype=torch.long) for g, idx in out.items()}
