"""Issue 11's variants in the default job: reported beside the default, never chosen from.

Every row is one transferred (or native, or random) vector of one target, with its
style-matched AUROC on the pairs' test split, cosine and norm ratio to native, the null
(max |cos| to native of random source vectors through the same map) and, for the steering
rows, the benign drift at the **goal**: the smallest setting at which at most
:data:`GOAL_UNSAFE_RATE` of the pairs' unsafe test prompts are still judged unsafe by the job's
judge (the quoted probe). Families (``VariantRow.family``):

* ``steering rule`` — additive ``h̄ + α·v`` (the paper; setting α on :data:`ALPHA_GRID`) vs
  ``to-projection`` (:func:`safesteer.maths.steering.projection_shift`: move ``⟨h̄, v̂⟩`` up to
  τ = the q-quantile of the target's benign map-fit anchors' projections, only when below it;
  setting q on :data:`QUANTILE_GRID`, 0.95 the library default), for native, the default
  pack's vector and random directions;
* ``calibration`` — the default vector at β vs at the z-score norm (‖v_t‖/‖v_n‖ and drift);
* ``anchors`` — the default map kind (and Procrustes) fitted on one kind of benign anchors
  (:data:`ANCHOR_KINDS`: fit parts only), scored on the held-out parts (calibration + test) of
  every kind: mean cosine of centred prediction vs truth;
* ``mlp transport`` — the job's fitted MLP carrying the direction ``direct`` / ``difference``
  / ``jacobian`` (at the anchor mean);
* ``ridge λ`` — ridge with λ by the hold-out rule (default) vs 5-fold CV on the anchors;
* ``sources`` — :func:`~safesteer.maths.directions.average_transported` of the vectors carried
  from two sources (SmolLM2 and the other default target's pooled states, as FINDINGS §4's
  ``two_sources``), each through its own map on the same anchors.

Nothing here changes the default pack: the rows are computed after it and only reported.

Example:
    >>> import torch
    >>> states, v = torch.tensor([[0.0, 1.0], [5.0, 2.0]]), torch.tensor([2.0, 0.0])
    >>> steer_pooled("to-projection", states, v, tau=3.0).tolist()
    [[3.0, 1.0], [5.0, 2.0]]
    >>> steer_pooled("additive", states, v, alpha=0.5).tolist()
    [[1.0, 1.0], [6.0, 2.0]]
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safesteer.build import Carried, SidePairs, carry_directions, transported_vector
from safesteer.evaluation import transfer_metrics as tm
from safesteer.evaluation.probes import Probe
from safesteer.maths.alignment.base import AlignmentMap
from safesteer.maths.calibration import CALIBRATIONS, calibrate_zscore
from safesteer.maths.directions import Direction, average_transported
from safesteer.maths.metrics import cosine
from safesteer.maths.steering import projection_shift, projection_target

#: ``JobConfig.variants`` / ``safesteer demo --variants`` (the first is the default)
VARIANT_LEVELS: tuple[str, ...] = ("all", "none")
#: the aim of issue 11: at most this fraction of unsafe test prompts still judged unsafe
GOAL_UNSAFE_RATE = 0.02
#: additive α scanned for the goal (0.25 steps, as FINDINGS §4)
ALPHA_GRID: tuple[float, ...] = tuple(0.25 * i for i in range(1, 81))
#: to-projection quantiles q scanned for the goal (α = 1: exactly up to τ); 0.95 the default
QUANTILE_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995)
STEERING_RULES: tuple[str, ...] = ("additive", "to-projection")
#: benign anchor kinds a map can be fitted on: name → the benign sets whose parts it uses
ANCHOR_KINDS: dict[str, tuple[str, ...]] = {
    "ours": ("ours",),
    "t2i": ("parti", "compbench", "geneval"),
    "safesteer-safe": ("sspairs",),
    "all": ("parti", "compbench", "geneval", "sspairs", "ours"),
}
ANCHOR_KIND_LABELS = {
    "ours": "generic anchors (ours)",
    "t2i": "deployment-style T2I anchors (PartiPrompts + T2I-CompBench + GenEval)",
    "safesteer-safe": "safe halves of the SafeSteer pairs (benign, near the unsafe prompts)",
    "all": "all of the above (the default)",
}
MLP_MODES: tuple[str, ...] = ("direct", "difference", "jacobian")
LAYERS_NOTE = (
    "Layers: the band mean (layers 12–16) is not a variant here: a pack's source gate reads one "
    "layer, so a band-mean vector cannot be a pack. Source-side only, FINDINGS R4 found the "
    "band mean tied with layer 14 (cross-validated AUROC 0.9405 vs 0.9445)."
)


@dataclass
class VariantRow:
    """One reported variant of one target (module docstring)."""

    family: str
    name: str
    label: str
    auroc_style_matched: float | None = None
    cosine_to_native: float | None = None
    norm_ratio_to_native: float | None = None
    null_cosine_max: float | None = None
    goal: dict[str, Any] | None = None  # drift_at_goal, or a summary over random draws
    fit_by_kind: dict[str, float] = field(default_factory=dict)  # held-out mean cosine
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "name": self.name,
            "label": self.label,
            "auroc_style_matched": self.auroc_style_matched,
            "cosine_to_native": self.cosine_to_native,
            "norm_ratio_to_native": self.norm_ratio_to_native,
            "null_cosine_max": self.null_cosine_max,
            "goal": self.goal,
            "fit_by_kind": self.fit_by_kind,
            **self.extra,
        }


def steer_pooled(
    rule: str, states: Tensor, vector: Tensor, *, alpha: float = 1.0, tau: float = 0.0
) -> Tensor:
    """Pooled states ``[N, D]`` steered by ``rule``: ``h̄ + α·v`` or ``h̄ + max(0, τ − ⟨h̄, v̂⟩)·v̂``.

    ``to-projection`` returns rows at or above τ bit for bit.
    """
    if rule == "additive":
        return tm.shift_pooled(states, vector, alpha)
    if rule != "to-projection":
        raise ValueError(f"unknown steering rule {rule!r}")
    shift = projection_shift(states, vector, tau, alpha)
    unit = (vector.double() / vector.double().norm()).to(states.dtype)
    moved = states + shift[:, None] * unit
    return torch.where((shift > 0)[:, None], moved, states)


def drift_at_goal(
    rule: str,
    vector: Tensor,
    unsafe: Tensor,
    benign_sets: Mapping[str, Tensor],
    judge: Probe,
    tau_anchors: Tensor,
) -> dict[str, Any]:
    """The smallest setting (α, or q) reaching the goal, and the benign drift there, per set.

    Drift per benign set: mean cos(steered, unsteered), the fraction of prompts whose judged
    label flips (either way: steering toward safe mostly clears the judge's false positives)
    and the fraction flipped from safe to unsafe. ``tau_anchors``: benign target states whose
    projections give τ (to-projection).
    """
    settings = ALPHA_GRID if rule == "additive" else QUANTILE_GRID
    lowest = 1.0
    for setting in settings:
        kw: dict[str, float] = (
            {"alpha": setting}
            if rule == "additive"
            else {"tau": projection_target(tau_anchors, vector, setting)}
        )
        rate = float(judge.is_unsafe(steer_pooled(rule, unsafe, vector, **kw)).float().mean())
        lowest = min(lowest, rate)
        if rate > GOAL_UNSAFE_RATE:
            continue
        cos, flips, to_unsafe = {}, {}, {}
        for name, x in benign_sets.items():
            moved = steer_pooled(rule, x, vector, **kw)
            cos[name] = float(tm.row_cosines(moved, x).mean())
            before, after = judge.is_unsafe(x).bool(), judge.is_unsafe(moved).bool()
            flips[name] = float((before != after).float().mean())
            to_unsafe[name] = float((after & ~before).float().mean())
        return {
            "rule": rule,
            "reached": True,
            "setting": "alpha" if rule == "additive" else "q",
            "value": setting,
            **({"tau": kw["tau"]} if "tau" in kw else {}),
            "unsafe_rate": rate,
            "benign_cosine": cos,
            "benign_label_flip": flips,
            "benign_flip_to_unsafe": to_unsafe,
        }
    return {"rule": rule, "reached": False, "min_unsafe_rate": lowest}


@dataclass(frozen=True)
class VariantInputs:
    """What the variants read for one target (source and target pooled states, by role)."""

    source_pairs: SidePairs  # direction pairs, source states
    target_test: SidePairs  # test pairs, target states
    source_states: Mapping[str, Tensor]  # by text
    target_states: Mapping[str, Tensor]  # by text
    fit_sets: Mapping[str, Sequence[str]]  # benign fit parts by set
    held_sets: Mapping[str, Sequence[str]]  # held-out (calibration + test) parts by set
    benign_test: Mapping[str, Tensor]  # target states of the benign test parts, by set
    tau_anchors: Tensor  # target states of every map-fit anchor
    judge: Probe
    native: Tensor
    n_null: int = 20
    seed: int = 0


def _rows(states: Mapping[str, Tensor], texts: Sequence[str]) -> Tensor:
    return torch.stack([states[t] for t in texts])


def _texts(parts: Mapping[str, Sequence[str]], sets: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(t for s in sets if s in parts for t in parts[s]))


def _null_max(fitted: AlignmentMap, dim: int, norm: float, inp: VariantInputs) -> float:
    draws = tm.null_cosines(fitted.transport, dim, norm, inp.native, inp.n_null, inp.seed)
    return float(max(abs(c) for c in draws))


def vector_row(
    family: str,
    name: str,
    label: str,
    vector: Tensor,
    inp: VariantInputs,
    *,
    rule: str = "additive",
    **extra: Any,
) -> VariantRow:
    """A row for one target vector: AUROC, cos and norm ratio to native, drift at the goal."""
    test = inp.target_test
    return VariantRow(
        family=family,
        name=name,
        label=label,
        auroc_style_matched=tm.projection_auroc(vector, test.safe, test.unsafe),
        cosine_to_native=cosine(vector, inp.native),
        norm_ratio_to_native=tm.norm_ratio(vector, inp.native),
        goal=drift_at_goal(rule, vector, test.unsafe, inp.benign_test, inp.judge, inp.tau_anchors),
        extra=dict(extra),
    )


def _carry(inp: VariantInputs, fit_texts: Sequence[str], kind: str, **kw: Any) -> Carried:
    with warnings.catch_warnings():  # few anchors for a kind: reported in the row, not warned
        warnings.simplefilter("ignore")
        return carry_directions(
            inp.source_pairs,
            _rows(inp.source_states, fit_texts),
            _rows(inp.target_states, fit_texts),
            kind,
            map_kwargs=kw or None,
        )


def variant_map_kinds(chosen: str) -> list[str]:
    """Map kinds the anchors and source rows use: Procrustes, and the chosen map if another."""
    return list(dict.fromkeys(["procrustes", chosen]))


def steering_rows(
    inp: VariantInputs, default_vector: Tensor, default_name: str, random: Sequence[Tensor]
) -> list[VariantRow]:
    """Native, the default vector and random directions, each steered by every rule."""
    out = []
    for rule in STEERING_RULES:
        out.append(
            vector_row(
                "steering rule",
                f"native, {rule}",
                "native (target-side unsafe data: the baseline the method avoids)",
                inp.native,
                inp,
                rule=rule,
            )
        )
        out.append(
            vector_row(
                "steering rule",
                f"{default_name}, {rule}",
                "the default pack's vector (map chosen by ρ, β calibration)",
                default_vector,
                inp,
                rule=rule,
            )
        )
        rows = [vector_row("steering rule", "", "", r, inp, rule=rule) for r in random]
        reached = [r.goal for r in rows if r.goal and r.goal["reached"]]
        out.append(
            VariantRow(
                family="steering rule",
                name=f"random, {rule}",
                label=f"{len(random)} random directions of the native norm (seeded)",
                auroc_style_matched=float(
                    torch.tensor([r.auroc_style_matched or 0.0 for r in rows]).mean()
                ),
                cosine_to_native=float(max(abs(r.cosine_to_native or 0.0) for r in rows)),
                norm_ratio_to_native=1.0,
                goal={
                    "rule": rule,
                    "reached": bool(reached),
                    "draws_reaching": len(reached),
                    "draws": len(rows),
                    "per_draw": [r.goal for r in rows],
                },
            )
        )
    return out


def calibration_rows(
    inp: VariantInputs,
    fitted: AlignmentMap,
    direction: Direction,
    source_fit: Tensor,
    target_fit: Tensor,
    name: str,
) -> list[VariantRow]:
    """The default map's vector at β (the default) and at the z-score norm."""
    moved = transported_vector(fitted, direction, inp.source_pairs.safe, inp.source_pairs.unsafe)
    v_s = direction.vector
    beta = CALIBRATIONS["beta"](moved, v_s, source_fit, target_fit).float()
    z = calibrate_zscore(moved, v_s, source_fit, target_fit).float()
    return [
        vector_row("calibration", f"{name}, β", "β = anchor scale ratio (the default)", beta, inp),
        vector_row("calibration", f"{name}, z-score", "z-score norm rule (option)", z, inp),
    ]


def anchor_rows(inp: VariantInputs, kinds: Sequence[str]) -> list[VariantRow]:
    """Each map kind in ``kinds`` fitted on each anchor kind's fit parts; held-out fit per kind."""
    out = []
    for kind in kinds:
        for anchors, sets in ANCHOR_KINDS.items():
            fit_texts = _texts(inp.fit_sets, sets)
            if len(fit_texts) < 8:
                continue
            carried = _carry(inp, fit_texts, kind)
            fit_by_kind = {}
            for other, other_sets in ANCHOR_KINDS.items():
                held = _texts(inp.held_sets, other_sets)
                if held:
                    report = carried.map.score(
                        _rows(inp.source_states, held), _rows(inp.target_states, held)
                    )
                    fit_by_kind[other] = report.mean_cosine
            row = vector_row(
                "anchors",
                f"{kind}, anchors {anchors}",
                f"{kind} map fitted on {ANCHOR_KIND_LABELS[anchors]}: {len(fit_texts)} fit prompts",
                carried.vector,
                inp,
                n_fit=len(fit_texts),
            )
            row.fit_by_kind = fit_by_kind
            row.null_cosine_max = _null_max(
                carried.map, inp.source_pairs.safe.shape[1], carried.source_direction.norm, inp
            )
            out.append(row)
    return out


def mlp_rows(
    inp: VariantInputs,
    mlp: AlignmentMap,
    direction: Direction,
    source_fit: Tensor,
    target_fit: Tensor,
) -> list[VariantRow]:
    """The job's fitted MLP map carrying the direction in each transport mode (no refit)."""
    out = []
    for mode in MLP_MODES:
        fitted = copy.copy(mlp)
        fitted.transport_mode = mode  # type: ignore[attr-defined]
        moved = transported_vector(
            fitted, direction, inp.source_pairs.safe, inp.source_pairs.unsafe
        )
        v_s = direction.vector
        vector = CALIBRATIONS["beta"](moved, v_s, source_fit, target_fit).float()
        row = vector_row(
            "mlp transport",
            f"mlp, {mode}",
            f"the MLP map (fitted once on the default anchors) transporting by {mode}",
            vector,
            inp,
        )
        row.null_cosine_max = _null_max(fitted, int(v_s.shape[0]), direction.norm, inp)
        out.append(row)
    return out


def ridge_rows(inp: VariantInputs, fit_texts: Sequence[str]) -> list[VariantRow]:
    """Ridge with λ by the hold-out rule (default) and by 5-fold CV on the benign anchors."""
    out = []
    for selection in ("holdout", "kfold"):
        carried = _carry(inp, fit_texts, "ridge", selection=selection)
        params = carried.map.params()
        row = vector_row(
            "ridge λ",
            f"ridge, λ by {selection}",
            "ridge, λ by one held-out fraction of the anchors (default)"
            if selection == "holdout"
            else "ridge, λ by 5-fold cross-validation on the benign anchors",
            carried.vector,
            inp,
            ridge_lambda=params.get("lambda"),
        )
        row.null_cosine_max = _null_max(
            carried.map, inp.source_pairs.safe.shape[1], carried.source_direction.norm, inp
        )
        out.append(row)
    return out


def two_source_vectors(
    first: VariantInputs, second: VariantInputs, fit_texts: Sequence[str], kind: str
) -> tuple[Tensor, Tensor, Tensor]:
    """(first source's vector, second's, their ``average_transported``) through ``kind`` maps
    fitted on the same anchors ``fit_texts`` (β calibration, as the default pack)."""
    one = _carry(first, fit_texts, kind).vector
    two = _carry(second, fit_texts, kind).vector
    return one, two, average_transported([one, two])


def held_out_parts(
    calibration: Mapping[str, Sequence[str]], benign_test: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Per benign set, its parts never used to fit a map: gate-calibration + test parts."""
    names = dict.fromkeys([*calibration, *benign_test])
    return {n: [*calibration.get(n, []), *benign_test.get(n, [])] for n in names}


def two_source_rows(
    inp: VariantInputs,
    names: tuple[str, str],
    second_pairs: SidePairs,
    second_states: Mapping[str, Tensor],
    fit_texts: Sequence[str],
    kinds: Sequence[str],
) -> list[VariantRow]:
    """Per map kind: the vector carried from each source alone and their average.

    ``names``: (first source, second source); the second source's pooled states of the direction
    pairs (``second_pairs``) and of the anchors (``second_states``, by text).
    """
    out = []
    second = VariantInputs(
        **{**inp.__dict__, "source_pairs": second_pairs, "source_states": second_states}
    )
    for kind in kinds:
        one, two, both = two_source_vectors(inp, second, fit_texts, kind)
        for label, vector in (
            (f"{names[0]} alone", one),
            (f"{names[1]} alone", two),
            ("two sources", both),
        ):
            out.append(
                vector_row(
                    "sources",
                    f"{kind}, {label}",
                    f"{kind} map on the default anchors; "
                    + (
                        f"average_transported of the {names[0]} and {names[1]} vectors"
                        if label == "two sources"
                        else f"direction from {label.removesuffix(' alone')}'s pooled states"
                    ),
                    vector,
                    inp,
                )
            )
    return out


def add_two_source_rows(
    reports: Mapping[str, Any], first_source: str, train_pairs: Sequence[Any]
) -> int:
    """Add the ``sources`` rows to every target report that has another target beside it.

    The second source of a target is the first other target of the run (for the default
    targets: MiniLM for Gemma, Gemma for MiniLM, as FINDINGS §4), read as its own pooled states
    of the same prompts. Returns the number of rows added.
    """
    from safesteer.build import stack_pairs

    added = 0
    for name, rep in reports.items():
        inp = rep.variant_inputs
        others = [(n, r) for n, r in reports.items() if n != name and r.variant_inputs]
        if inp is None or not others or rep.chosen_map is None:
            continue
        other_name, other = others[0]
        states = other.variant_inputs.target_states
        fit_texts = _texts(inp.fit_sets, list(inp.fit_sets))
        rows = two_source_rows(
            inp,
            (first_source, other_name),
            stack_pairs(states, train_pairs),
            states,
            fit_texts,
            variant_map_kinds(rep.chosen_map),
        )
        rep.variants += [r.to_json() for r in rows]
        added += len(rows)
    return added
