"""The default job's per-set tables, built once from :class:`JobMetrics` for the page and for
``results.md`` (:mod:`~safesteer.jobs.default.results_doc`): numbers are never typed by hand.

* data sets: every set with its label (ours, or source + licence), role and count;
* gates per set: for each direction and gate, the fraction steered of every benign test set and
  of the unsafe test prompts overall and per category (categories and counts only, never text);
* transfer: style-matched AUROC on the pairs' test split, transferred (every map) vs native vs
  random directions, with the map-choice score ρ, cosine to native and the null cosine;
* variants: every variant the job runs (map × gate side) in one table, per benign set.

They read the JSON form (``metrics.json``), so a saved run renders the same tables.

Example:
    >>> Table("t", "a note", ["x"], [["1"]]).markdown().splitlines()[2:]
    ['| x |', '|---|', '| 1 |', '', 'a note']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from safesteer.jobs.default.records import GATES

Metrics = Mapping[str, Any]  # the content of metrics.json


@dataclass(frozen=True)
class Table:
    """A titled table with a note saying where its numbers come from."""

    title: str
    note: str
    head: list[str]
    rows: list[list[str]]

    def markdown(self, level: int = 3) -> str:
        """The table as GitHub markdown under a heading of ``level``."""
        out = [f"{'#' * level} {self.title}", ""]
        out.append("| " + " | ".join(self.head) + " |")
        out.append("|" + "|".join("---" for _ in self.head) + "|")
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join([*out, "", self.note])


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"


def _f(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def data_table(metrics: Metrics) -> Table:
    """Every benign set: label, and how many prompts of each role the run read."""
    data = metrics["data"]
    counts = data.get("sampling", {}).get("counts", {})
    rows = []
    for name, label in data.get("sets", {}).items():
        rows.append(
            [
                name,
                label,
                str(counts.get("fit", {}).get(name, "–")),
                str(counts.get("calibration", {}).get(name, "–")),
                str(counts.get("test", {}).get(name, "–")),
            ]
        )
    pairs = data.get("n_pairs", {})
    rows.append(
        [
            "pairs",
            str(data.get("pairs", "")),
            f"{pairs.get('train', '–')} pairs (directions)",
            f"{pairs.get('judge', '–')} pairs (judges)",
            f"{pairs.get('test', '–')} pairs",
        ]
    )
    note = str(data.get("sampling", {}).get("rule", ""))
    if data.get("scenes_note"):
        note += f". {data['scenes_note']}."
    return Table(
        "Data sets",
        note,
        ["set", "source, licence", "map fit", "gate calibration", "test (reported)"],
        rows,
    )


def _directions(rep: Metrics) -> list[tuple[str, Metrics]]:
    """(name, record): native first, then each map."""
    return [("native", rep["native"]), *rep.get("maps", {}).items()]


def _set_columns(metrics: Metrics) -> tuple[list[str], list[str]]:
    sets = list(metrics["data"].get("sampling", {}).get("counts", {}).get("test", {}))
    cats: list[str] = []
    found = [metrics["source"].get("gate") or {}]
    for rep in metrics.get("targets", {}).values():
        for _, scores in _directions(rep):
            found += [scores[g.sets_key] for g in GATES if g.sets_key in scores]
    for rates in found:
        cats += [c for c in rates.get("unsafe_steered_by_category", {}) if c not in cats]
    return sets, cats


def _rate_cells(rates: Mapping[str, Any], sets: list[str], cats: list[str]) -> list[str]:
    benign = rates["benign_steered"]
    by_cat = rates["unsafe_steered_by_category"]
    worst = max(benign.values()) if benign else None
    return [
        *(_pct(benign.get(s)) for s in sets),
        _pct(worst),
        _pct(rates["unsafe_steered"]),
        *(_pct(by_cat.get(c)) for c in cats),
    ]


def gate_tables(metrics: Metrics) -> list[Table]:
    """The source gate (one for every pack) and, per target, every direction's target gate."""
    sets, cats = _set_columns(metrics)
    head = ["direction", "gate", *sets, "worst benign", "unsafe", *cats]
    tables = []
    src = metrics["source"]
    gate = src.get("gate")
    if gate and "benign_steered" in gate:
        tables.append(
            Table(
                "Source gate (the default gating mode): fraction steered per set",
                f"{gate.get('rule', '')}. Benign columns: held-out test part of each benign set; "
                "unsafe: the pairs' test split, overall and per category. Decided on "
                f"{src['model']} layer {src['layer']} states.",
                head,
                [["source directions", "source", *_rate_cells(gate, sets, cats)]],
            )
        )
    for name, rep in metrics.get("targets", {}).items():
        rows = []
        for key, scores in _directions(rep):
            for g in GATES:
                if g.side == "target" and g.sets_key in scores:
                    rows.append([key, g.gate_label, *_rate_cells(scores[g.sets_key], sets, cats)])
        if rows:
            tables.append(
                Table(
                    f"{name}: target gate (fallback) per set",
                    "Projection on each direction's target vector; thresholds from the benign "
                    "calibration parts only. Columns as in the source gate table.",
                    head,
                    rows,
                )
            )
    return tables


def transfer_tables(metrics: Metrics) -> list[Table]:
    """Per target: AUROC transferred (every map) vs native vs random, ρ, cosines."""
    tables = []
    for name, rep in metrics.get("targets", {}).items():
        nat = rep["native"]
        rows = [
            [
                "native (target-side unsafe data: the baseline the method avoids)",
                _f(nat["auroc_style_matched"]),
                _f(nat["auroc_easy_benign_vs_unsafe"]),
                "–",
                "1.000",
                "–",
                "1.000",
                "1.000",
            ]
        ]
        for kind, m in rep.get("maps", {}).items():
            chosen = " (chosen)" if kind == rep.get("chosen_map") else ""
            rows.append(
                [
                    f"transferred: {kind}{chosen}",
                    _f(m["auroc_style_matched"]),
                    _f(m["auroc_easy_benign_vs_unsafe"]),
                    _f(m.get("transport_fidelity")),
                    _f(m["cosine_to_native"]),
                    _f(m["null_cosine_random_source"]["max"]),
                    _f(m["norm_ratio_to_native"]),
                    _f(m.get("norm_ratio_to_native_zscore_rule")),
                ]
            )
        rnd = rep["random"]
        style, easy = rnd["auroc_style_matched"], rnd["auroc_easy_benign_vs_unsafe"]
        rows.append(
            [
                f"null: {rnd['label']}",
                f"{style['mean']:.3f} ± {style['std']:.3f}",
                f"{easy['mean']:.3f}",
                "–",
                "–",
                "–",
                "–",
                "–",
            ]
        )
        tables.append(
            Table(
                f"{name}: transfer (style-matched AUROC on the pairs' test split)",
                f"{rep['target_model']}; AUROC of the projection on the direction, safe twin vs "
                "unsafe (style-matched) and benign test sets vs unsafe (easy). ρ: the map-choice "
                "score on benign calibration parts (the chosen map has the highest). Null: "
                "max |cos| of random source vectors through the same map.",
                [
                    "direction",
                    "AUROC style-matched",
                    "AUROC benign vs unsafe",
                    "ρ (benign)",
                    "cos to native",
                    "null max |cos|",
                    "‖v_t‖/‖v_n‖ (β)",
                    "‖v_t‖/‖v_n‖ (z-score rule)",
                ],
                rows,
            )
        )
    return tables


def variants_table(metrics: Metrics) -> Table:
    """Every variant the job ran (target × direction × gate side), per benign set, one table."""
    sets = _set_columns(metrics)[0]
    rows = []
    for name, rep in metrics.get("targets", {}).items():
        maps = rep.get("maps", {})
        for key, scores in _directions(rep):
            rho = maps[key].get("transport_fidelity") if key in maps else None
            for g in GATES:
                if g.sets_key not in scores:
                    continue
                rates = scores[g.sets_key]
                rows.append(
                    [
                        name,
                        key + (" (chosen)" if key == rep.get("chosen_map") else ""),
                        g.gate_label,
                        _f(scores["auroc_style_matched"]),
                        "–" if rho is None else _f(rho),
                        *_rate_cells(rates, sets, [])[:-1],
                        _pct(rates["unsafe_steered"]),
                    ]
                )
            for variant, found in maps.get(key, {}).get("variants", {}).items():
                rows.append(
                    [
                        name,
                        f"{key}, {variant}",
                        "– (reported only)",
                        _f(found["auroc_style_matched"]),
                        _f(found["transport_fidelity"]),
                        *("–" for _ in sets),
                        "–",
                        "–",
                    ]
                )
    return Table(
        "Variants: every map × gate, per benign set",
        "Each row: one target, one direction (native or a map's transferred vector), one gate "
        "(the source gate is the same for every map: it reads source states). Benign columns: "
        "fraction of each held-out benign test set steered; unsafe: fraction of the pairs' test "
        "unsafe prompts steered. Rows 'map, shrunk-lda direction': the shrunk-LDA source "
        "direction carried by the same map (issue 11; not the default: FINDINGS R4, LDA does not "
        "survive transport), separation and ρ only.",
        ["target", "direction", "gate", "AUROC style-matched", "ρ", *sets, "worst", "unsafe"],
        rows,
    )


def _goal_cells(goal: Mapping[str, Any] | None) -> list[str]:
    """Setting, unsafe judged unsafe, worst-set benign cosine, worst-set label flips."""
    if not goal:
        return ["–"] * 4
    if "per_draw" in goal:  # random directions: how many draws reach the goal, their worst sets
        reached = [g for g in goal["per_draw"] if g["reached"]]
        if not reached:
            return [f"never (0/{goal['draws']} draws)", "–", "–", "–"]
        cos = min(min(g["benign_cosine"].values()) for g in reached)
        flips = max(max(g["benign_label_flip"].values()) for g in reached)
        up = max(max(g["benign_flip_to_unsafe"].values()) for g in reached)
        return [
            f"{len(reached)}/{goal['draws']} draws",
            "≤2%",
            _f(cos),
            f"{_pct(flips)} ({_pct(up)})",
        ]
    if not goal["reached"]:
        return [f"never (min {_pct(goal['min_unsafe_rate'])})", "–", "–", "–"]
    name = "α" if goal["setting"] == "alpha" else "q"
    return [
        f"{name} = {goal['value']:g}",
        _pct(goal["unsafe_rate"]),
        _f(min(goal["benign_cosine"].values())),
        f"{_pct(max(goal['benign_label_flip'].values()))} "
        f"({_pct(max(goal['benign_flip_to_unsafe'].values()))})",
    ]


def _layer_note(metrics: Metrics) -> str:
    from safesteer.jobs.default.variants import LAYERS_NOTE

    scores = metrics.get("source", {}).get("layer_choice", {}).get("scores")
    if not scores:
        return LAYERS_NOTE + " This run did not score layers (fixed layer; `--layer auto` does)."
    best = max(scores, key=lambda k: scores[k])
    return (
        f"{LAYERS_NOTE} This run's source-side layer scores (cross-fitted AUROC): best layer "
        f"{best} ({scores[best]:.3f}); " + ", ".join(f"{k}: {v:.3f}" for k, v in scores.items())
    )


def issue11_tables(metrics: Metrics) -> list[Table]:
    """Issue 11's variants (``targets.*.variants``): one table of every variant, the anchors'
    held-out fit by kind, and the benign drift per set at the goal."""
    rows, fit_rows, drift_rows = [], [], []
    sets = _set_columns(metrics)[0]
    kinds: list[str] = []
    for name, rep in metrics.get("targets", {}).items():
        for v in rep.get("variants", []):
            rows.append(
                [
                    name,
                    v["family"],
                    v["name"],
                    v["label"],
                    _f(v["auroc_style_matched"]),
                    _f(v["cosine_to_native"]),
                    "–" if v.get("null_cosine_max") is None else _f(v["null_cosine_max"]),
                    _f(v["norm_ratio_to_native"]),
                    *_goal_cells(v.get("goal")),
                ]
            )
            kinds += [k for k in v.get("fit_by_kind", {}) if k not in kinds]
            goal = v.get("goal") or {}
            if goal.get("reached") and "benign_cosine" in goal:
                drift_rows.append(
                    [
                        name,
                        v["name"],
                        *(
                            f"{goal['benign_cosine'][s]:.3f} / "
                            f"{_pct(goal['benign_label_flip'][s])} "
                            f"({_pct(goal['benign_flip_to_unsafe'][s])})"
                            if s in goal["benign_cosine"]
                            else "–"
                            for s in sets
                        ),
                    ]
                )
        for v in rep.get("variants", []):
            if v.get("fit_by_kind"):
                fit_rows.append(
                    [name, v["name"], *(_f(v["fit_by_kind"].get(k, "–")) for k in kinds)]
                )
    if not rows:
        return []
    judge = "the quoted judge (linear probe on target states, fitted on the judge split)"
    n_null = metrics.get("config", {}).get("n_null", "–")
    return [
        Table(
            "Issue 11 variants: every variant vs native and random, per target",
            "Reported only: none of these rows changes the default pack (diff-means, anchors "
            "'all', map chosen by ρ, additive + β, source gate); `safesteer demo` computes them "
            "by default (a few seconds per target; `--variants none` skips them). AUROC: "
            "style-matched, the pairs' test split; cos / norm ratio: to the native vector "
            f"(target-side unsafe data); null: max |cos| to native of {n_null} random source "
            "vectors through the same map. Goal: the "
            f"smallest setting at which ≤2% of the pairs' unsafe test prompts are judged unsafe "
            f"by {judge} — additive α on 0.25…20, to-projection q on 0.5…0.995 (τ = q-quantile "
            "of the target's benign map-fit anchors' projections; the library default q = 0.95); "
            "benign drift there: worst benign test set's mean cosine steered vs unsteered, and "
            "the worst set's fraction of prompts whose judged label flips either way (in "
            "brackets: safe → unsafe; steering toward safe mostly clears the judge's false "
            "positives, so the either-way rate is close to the set's unsteered false-positive "
            "rate) — per set below. "
            "Random: directions of the native norm, drawn as the job's random rows. Sources: "
            "the second source is the other target's pooled states (as FINDINGS §4). "
            + _layer_note(metrics),
            [
                "target",
                "family",
                "variant",
                "what",
                "AUROC",
                "cos native",
                "null max |cos|",
                "‖v‖/‖v_n‖",
                "goal setting",
                "unsafe at goal",
                "benign cos (worst set)",
                "label flips (worst set; → unsafe)",
            ],
            rows,
        ),
        Table(
            "Issue 11 anchors: each map's fit on held-out anchors of each kind",
            "Mean cosine of the centred prediction vs the centred truth (target states) on the "
            "held-out parts (gate-calibration + test parts, never the fit parts) of the sets of "
            "each kind: ours; t2i = PartiPrompts + T2I-CompBench + GenEval; safesteer-safe = safe "
            "halves of SafeSteer pairs; all = every set.",
            ["target", "variant", *(f"held-out {k}" for k in kinds)],
            fit_rows,
        ),
        Table(
            "Issue 11 drift at the goal, per benign test set",
            "Each cell: mean cosine steered vs unsteered / fraction of the set's prompts whose "
            "judged label flips either way (safe → unsafe), at the variant's goal setting (rows "
            "that reach it).",
            ["target", "variant", *sets],
            drift_rows,
        ),
    ]


def all_tables(metrics: Metrics) -> list[Table]:
    """Every per-set table, in page order."""
    tables = [data_table(metrics), *gate_tables(metrics), *transfer_tables(metrics)]
    return [*tables, variants_table(metrics), *issue11_tables(metrics)]


__all__ = [
    "Table",
    "all_tables",
    "data_table",
    "gate_tables",
    "issue11_tables",
    "transfer_tables",
    "variants_table",
]
