"""The default job's HTML page (jinja2 template, no scripts): headline, plots, then tables.

``write_page(metrics, out)`` writes ``out/index.html`` (and the plots it shows). The first
screen answers "how much safer, at what cost" per target: the best map's style-matched AUROC
against native, the strength at which always-on and gated steering reach ≤5% of held-out unsafe
prompts judged unsafe with the benign cosine it costs, and each gate's false-trigger rate on
held-out benign anchors; then the plots. The per-direction and 36-row curve tables, the
judges, the images (named by id and category — never by prompt text) and the provenance JSON
follow below. Every table says which data, probe and threshold its numbers come from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safesteer.atomic import write_text_atomic
from safesteer.jobs.default.config import QUOTED_PROBE
from safesteer.jobs.default.plots import write_plots
from safesteer.jobs.default.records import GATES, JobMetrics, TargetReport
from safesteer.jobs.default.tables import all_tables
from safesteer.templating import render_html


def _f(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"


def _reach(point: Mapping[str, Any] | None) -> str:
    if not point:
        return "no α ≤ 5%"
    rate = point["unsafe_rate"][QUOTED_PROBE]
    return f"α={point['alpha']:g}: {_pct(rate)} (benign cos {point['benign_cosine']:.3f})"


def _headline(metrics: JobMetrics) -> list[list[str]]:
    rows = []
    per_target = metrics.summary.per_target if metrics.summary is not None else {}
    for name, s in per_target.items():
        rep = metrics.targets[name]
        scores = rep.maps[s.chosen_map].scores if s.chosen_map in rep.maps else None
        row = [
            name,
            s.chosen_map,
            f"{s.auroc_transferred:.3f} vs {s.auroc_native:.3f} (random "
            f"{rep.random.auroc_style_matched['mean']:.3f})",
            _reach(s.alpha_always_on),
        ]
        for gate in GATES:
            found = scores.rates(gate.side) if scores is not None else None
            rates: Mapping[str, Any] = found or {}
            row.append(_reach(s.alpha_gated.get(gate.side)))
            row.append(
                f"{_pct(rates.get('benign_held_out_steered'))} / "
                f"{_pct(rates.get('unsafe_test_steered'))}"
            )
        rows.append(row)
    return rows


def _directions(rep: TargetReport) -> list[list[str]]:
    rows = []
    for key, scores in rep.directions():
        gate: Mapping[str, Any] = scores.rates("target") or {}
        source_gate: Mapping[str, Any] = scores.rates("source") or {}
        row = rep.maps.get(key) if key != "native" else None
        rows.append(
            [
                _f(v)
                for v in (
                    key,
                    scores.auroc_style_matched,
                    scores.auroc_easy_benign_vs_unsafe,
                    "—" if row is None else row.held_out_r2,
                    "—" if row is None else row.cosine_to_native,
                    "—" if row is None else row.null_cosine_random_source["max"],
                    "—" if row is None else row.norm_ratio_to_native,
                    gate.get("benign_held_out_steered", "—"),
                    gate.get("unsafe_test_steered", "—"),
                    source_gate.get("benign_held_out_steered", "—"),
                    source_gate.get("unsafe_test_steered", "—"),
                )
            ]
        )
    rows.append(
        [
            "random",
            _f(rep.random.auroc_style_matched["mean"]),
            _f(rep.random.auroc_easy_benign_vs_unsafe["mean"]),
            *["—"] * 8,
        ]
    )
    return rows


def _curves(rep: TargetReport) -> list[list[str]]:
    rows = []
    for key, scores in rep.directions():
        for mode, curve in scores.curves():
            for p in curve:
                rows.append(
                    [
                        _f(v)
                        for v in (
                            key,
                            mode.label,
                            p["alpha"],
                            p["unsafe_rate"][QUOTED_PROBE],
                            p["unsafe_rate"].get("pca-probe", "—"),
                            p["benign_cosine"],
                            p.get("benign_shift_in_spread", "—"),
                            p.get("unsafe_steered_fraction", "—"),
                            p.get("benign_steered_fraction", "—"),
                            p.get("judge_disagreement", "—"),
                        )
                    ]
                )
    return rows


def _images(rep: TargetReport) -> tuple[list[dict[str, str]], str, str]:
    images = dict(rep.images or rep.image_evaluation or {})
    shown = []
    for record in images.get("images", []):
        label = f"{record.get('id', '')} · {record.get('category') or 'no category'}"
        for f in record.get("files", []):
            tag = "unsteered" if "unsteered" in f else f"α={images.get('alpha', '?')}"
            shown.append({"file": f, "caption": f"{label} · {tag}"})
    note = str(images.get("note", "RANDOM-WEIGHT denoiser; the encoder is real"))
    return shown, note, json.dumps(images, indent=1) if images else ""


def write_page(metrics: JobMetrics, out: Path) -> Path:
    """Write the plots and ``out/index.html``; returns the page's path."""
    plots = write_plots(metrics, out)
    targets = []
    for name, rep in metrics.targets.items():
        shown, note, images_json = _images(rep)
        targets.append(
            {
                "name": name,
                "model": rep.target_model,
                "space": rep.conditioning_space,
                "dim": rep.dim,
                "plots": plots.get(name, []),
                "direction_rows": _directions(rep),
                "curve_rows": _curves(rep),
                "probes": json.dumps(rep.probes, indent=1),
                "images": shown,
                "images_note": note,
                "images_json": images_json,
            }
        )
    html = render_html(
        "default_job.html.j2",
        what=metrics.what,
        quoted_probe=QUOTED_PROBE,
        headline_head=[
            "target",
            "map (chosen by ρ, benign only)",
            "style-matched AUROC: transferred vs native",
            "always-on: reaches ≤5% judged unsafe",
            "target gate: reaches ≤5%",
            "target gate steers benign / unsafe",
            "source gate: reaches ≤5%",
            "source gate steers benign / unsafe",
        ],
        headline_rows=_headline(metrics),
        set_tables=all_tables(metrics.to_json()),
        summary_lines=metrics.summary.lines if metrics.summary is not None else [],
        targets=targets,
        direction_head=[
            "direction",
            "AUROC style-matched (honest)",
            "AUROC benign vs unsafe (easy)",
            "held-out R² (Procrustes: β-scaled)",
            "cos(v_t, v_n)",
            "null max |cos|",
            "‖v_t‖/‖v_n‖",
            "target gate: benign steered",
            "target gate: unsafe steered",
            "source gate: benign steered",
            "source gate: unsafe steered",
        ],
        curve_head=[
            "direction",
            "mode",
            "α",
            f"unsafe judged unsafe ({QUOTED_PROBE})",
            "(pca-probe)",
            "benign cos",
            "benign shift / spread",
            "unsafe steered",
            "benign steered",
            "judge disagreement",
        ],
        provenance=json.dumps(metrics.provenance(), indent=2),
    )
    path = out / "index.html"
    write_text_atomic(path, html)
    return path
