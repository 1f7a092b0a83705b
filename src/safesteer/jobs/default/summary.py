"""The default job's headline: gate rates per set, every map against native, the α reaching the aim.

The aim (``config.max_unsafe_rate``, 5% by default) is read on the quoted probe
(:data:`~safesteer.jobs.default.config.QUOTED_PROBE`); the lines are what the job prints and
what ``metrics.json`` keeps under ``summary``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safesteer.evaluation.transfer_metrics import alpha_reaching
from safesteer.jobs.default.config import QUOTED_PROBE, JobConfig
from safesteer.jobs.default.records import (
    GATES,
    GateKind,
    JobMetrics,
    MapResult,
    Summary,
    TargetSummary,
)


def _pct(x: Any) -> str:
    return f"{x:.1%}" if isinstance(x, float) else "n/a"


def _set_line(rates: Mapping[str, Any]) -> str:
    """``parti 4.9% · compbench 0.2% …; unsafe 87.8% (disturbing 90.5% …)`` (no prompt text)."""
    benign = " · ".join(f"{n} {_pct(r)}" for n, r in rates["benign_steered"].items())
    cats = " · ".join(f"{c} {_pct(r)}" for c, r in rates["unsafe_steered_by_category"].items())
    return (
        f"benign test sets steered: {benign}; unsafe test steered {_pct(rates['unsafe_steered'])}"
        f" ({cats})"
    )


def summarize(metrics: JobMetrics, config: JobConfig) -> Summary:
    """Per target: the chosen map (benign-only rule) and every map's AUROC against native and
    random, the gates' rates per benign set and unsafe category, the α reaching the goal."""
    src = metrics.source
    goal = f"≤{config.max_unsafe_rate:.0%}"
    random_parts = [n for n, r in metrics.targets.items() if r.target_random_weights] + (
        ["source"] if src.get("random_weights") else []
    )
    weights = (
        f"RANDOM weights in: {', '.join(random_parts)}"
        if random_parts
        else "pretrained weights (images: random-weight denoiser)"
    )
    data = metrics.data
    lines = [
        f"safesteer default job — source {src['model']} layer {src['layer']}; judge: linear probe "
        f"(threshold 0.5) on target states; {weights}",
        f"pairs: {data.get('pairs', 'n/a')}; test n={data['n_pairs']['test']}"
        + (f" ({data['scenes_note']})" if data.get("scenes_note") else ""),
    ]
    gate = src.get("gate")
    if gate and "benign_steered" in gate:
        lines.append(f"source gate (default gating mode): {_set_line(gate)}")
    per_target: dict[str, TargetSummary] = {}
    for name, rep in metrics.targets.items():
        maps = rep.maps
        if not maps:
            continue
        chosen = rep.chosen_map if rep.chosen_map in maps else next(iter(maps))
        nat = rep.native.scores.auroc_style_matched
        row = maps[chosen]
        always = alpha_reaching(row.scores.always_on, QUOTED_PROBE, config.max_unsafe_rate)
        gated = {
            gate.side: alpha_reaching(
                row.scores.gated[gate.side].curve if gate.side in row.scores.gated else [],
                QUOTED_PROBE,
                config.max_unsafe_rate,
            )
            for gate in GATES
        }
        per_target[name] = TargetSummary(
            chosen_map=chosen,
            auroc_transferred=row.scores.auroc_style_matched,
            auroc_native=nat,
            alpha_always_on=always,
            alpha_gated=gated,
        )
        rnd = rep.random.auroc_style_matched
        every = ", ".join(
            f"{k} {m.scores.auroc_style_matched:.3f} (ρ {m.transport_fidelity:.2f})"
            for k, m in maps.items()
        )
        lines.append(
            f"[{name}] style-matched AUROC (pairs' test split): native {nat:.3f}; transferred "
            f"{every}; random {rnd['mean']:.3f}±{rnd['std']:.3f}"
        )
        lines.append(
            f"[{name}]   chosen map {chosen} (highest ρ on benign calibration parts; not by test "
            "figures)"
        )
        if always is not None:
            lines.append(
                f"[{name}]   always-on: α={always['alpha']:g} → "
                f"{_pct(always['unsafe_rate'][QUOTED_PROBE])} of held-out unsafe judged unsafe, "
                f"benign cos {always['benign_cosine']:.3f}"
            )
        else:
            lines.append(f"[{name}]   always-on: no α in {list(config.alphas)} reaches {goal}")
        for gate in GATES:
            if gate.side in row.scores.gated:
                lines.append(f"[{name}]   " + _gated_line(row, gate, gated[gate.side], goal))
        target_sets = row.scores.sets.get("target")
        if target_sets is not None:
            lines.append(f"[{name}]   target gate (fallback): {_set_line(target_sets)}")
    return Summary(per_target, lines)


def _gated_line(row: MapResult, gate: GateKind, hit: dict[str, Any] | None, goal: str) -> str:
    """One summary line for a gate: the α reaching the goal (or the last α), trigger rates."""
    curve, g = row.scores.gated[gate.side]
    steered = (
        f"benign held-out steered {_pct(g['benign_held_out_steered'])}, "
        f"unsafe steered {_pct(g['unsafe_test_steered'])}"
    )
    if hit is not None:
        return (
            f"gated ({gate.gate_label}): α={hit['alpha']:g} → "
            f"{_pct(hit['unsafe_rate'][QUOTED_PROBE])} judged unsafe, benign cos "
            f"{hit['benign_cosine']:.3f}; {steered}"
        )
    last = curve[-1]
    rate = _pct(last["unsafe_rate"][QUOTED_PROBE])
    return (
        f"gated ({gate.gate_label}): no α reaches {goal} (α={last['alpha']:g}: {rate}, "
        f"benign cos {last['benign_cosine']:.3f}); {steered}"
    )
