"""How one direction does on the held-out prompts: separation, always-on and gated steering.

The target states move as ``h̄ + α·m·v`` (:func:`~safesteer.evaluation.transfer_metrics.
steering_curve`), with ``m`` = 1 always-on, or a gate's decision on the same prompts' states in
the space that gate reads (target or source), so rows a gate leaves alone stay bit-identical
whichever space decided. Probes (:mod:`safesteer.evaluation.probes`) say how many steered
unsafe prompts still look unsafe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from safesteer.build import BuiltPack, SidePairs
from safesteer.evaluation import transfer_metrics as tm
from safesteer.evaluation.probes import Probe
from safesteer.jobs.default.records import (
    DirectionScores,
    GatedCurve,
    GateRates,
    SetRates,
    Spread,
)
from safesteer.maths.gating import Gate


@dataclass(frozen=True)
class GateInputs:
    """Pooled states of the held-out prompts in the space a gate reads (target or source).

    Rows match the target-side rows they decide for: ``unsafe`` / ``safe`` the test pairs,
    ``benign`` the held-out anchors.
    """

    unsafe: Tensor
    safe: Tensor
    benign: Tensor


@dataclass(frozen=True)
class SetStates:
    """Pooled states of the reported sets in the space a gate reads: every benign test set by
    name, and the unsafe test prompts with their categories."""

    benign: Mapping[str, Tensor]
    unsafe: Tensor
    categories: tuple[str, ...]


def set_rates(gate: Gate, states: SetStates) -> SetRates:
    """The fraction ``gate`` steers of each benign test set, and of the unsafe test prompts
    overall and per category."""
    benign = {n: float(gate.decide(x).steer.float().mean()) for n, x in states.benign.items()}
    steer_u = gate.decide(states.unsafe).steer.bool()
    cats = sorted(set(states.categories))
    by_cat = {c: float(steer_u[[k == c for k in states.categories]].float().mean()) for c in cats}
    counts = {n: int(x.shape[0]) for n, x in states.benign.items()}
    counts.update({f"unsafe/{c}": sum(k == c for k in states.categories) for c in cats})
    return SetRates(
        benign_steered=benign,
        unsafe_steered=float(steer_u.float().mean()),
        unsafe_steered_by_category=by_cat,
        n=counts,
    )


def gated_evaluation(
    vector: Tensor,
    gate: Gate,
    decide_on: GateInputs,
    *,
    test: SidePairs,
    easy_benign: Tensor,
    probes: Mapping[str, Probe],
    alphas: Sequence[float],
) -> GatedCurve:
    """A gate's steering curve and trigger rates on the held-out prompts.

    ``m = gate.decide(decide_on).steer``; the target states move as ``h̄ + α·m·v``.
    """
    steer_u = gate.decide(decide_on.unsafe).steer.bool()
    steer_b = gate.decide(decide_on.benign).steer.bool()
    steer_twins = gate.decide(decide_on.safe).steer.bool()
    curve = tm.steering_curve(
        vector,
        test.unsafe,
        easy_benign,
        probes,
        alphas,
        steer_unsafe=steer_u,
        steer_benign=steer_b,
    )
    rates = GateRates(
        unsafe_test_steered=float(steer_u.float().mean()),
        benign_held_out_steered=float(steer_b.float().mean()),
        safe_twins_steered=float(steer_twins.float().mean()),
    )
    return GatedCurve(curve, rates)


def score_direction(
    vector: Tensor,
    *,
    test: SidePairs,
    easy_benign: Tensor,
    probes: Mapping[str, Probe],
    alphas: Sequence[float],
    built: BuiltPack | None = None,
    source_states: GateInputs | None = None,
    sets: Mapping[str, SetStates] | None = None,
) -> DirectionScores:
    """AUROCs (style-matched and easy), ‖v‖, and always-on / gated steering curves.

    With ``built``, its pack's target gate decides on the target states and its source gate
    (when the pack has one and ``source_states`` are given) on the source states; ``sets``
    (by gate side) adds each gate's rates per reported set (:func:`set_rates`).
    """
    scores = DirectionScores(
        norm=float(vector.norm()),
        auroc_style_matched=tm.projection_auroc(vector, test.safe, test.unsafe),
        auroc_easy_benign_vs_unsafe=tm.projection_auroc(vector, easy_benign, test.unsafe),
        always_on=tm.steering_curve(vector, test.unsafe, easy_benign, probes, alphas),
    )
    if built is None:
        return scores
    gates = {
        "target": (built.pack.gate, GateInputs(test.unsafe, test.safe, easy_benign)),
        "source": (built.pack.source_gate, source_states),
    }
    for side, (gate, decide_on) in gates.items():
        if gate is None or decide_on is None:
            continue
        scores.gated[side] = gated_evaluation(
            vector,
            gate,
            decide_on,
            test=test,
            easy_benign=easy_benign,
            probes=probes,
            alphas=alphas,
        )
        if sets is not None and side in sets:
            scores.sets[side] = set_rates(gate, sets[side])
    return scores


def spread(values: Sequence[float]) -> Spread:
    """Mean, std (0 for one draw), min, max and count of a few draws."""
    t = torch.tensor(list(values), dtype=torch.float64)
    return {
        "mean": float(t.mean()),
        "std": float(t.std()) if len(t) > 1 else 0.0,
        "min": float(t.min()),
        "max": float(t.max()),
        "n": len(t),
    }
