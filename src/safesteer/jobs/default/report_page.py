"""The default job's HTML page: summary, tables, plots and provenance in one static file.

``write_page(metrics, out)`` writes ``out/index.html`` (and the plots it shows) from the job's
records. Every table says which data, probe and threshold its numbers come from; the page is
plain HTML with no scripts, so it opens anywhere.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safesteer.atomic import write_text_atomic
from safesteer.jobs.default.config import QUOTED_PROBE
from safesteer.jobs.default.plots import write_plots
from safesteer.jobs.default.records import JobMetrics, TargetReport


def _f(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else html.escape(str(x))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_f(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _target_section(name: str, rep: TargetReport, plots: list[str]) -> str:
    rows = []
    for key, scores in rep.directions():
        gate: Mapping[str, Any] = scores.rates("target") or {}
        source_gate: Mapping[str, Any] = scores.rates("source") or {}
        row = rep.maps.get(key) if key != "native" else None
        rows.append(
            [
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
            ]
        )
    rows.append(
        [
            "random",
            rep.random.auroc_style_matched["mean"],
            rep.random.auroc_easy_benign_vs_unsafe["mean"],
            *["—"] * 8,
        ]
    )
    table = _table(
        [
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
        rows,
    )
    curves = []
    for key, scores in rep.directions():
        for mode, curve in scores.curves():
            for p in curve:
                curves.append(
                    [
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
                    ]
                )
    curve_table = _table(
        [
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
        curves,
    )
    probes = "".join(f"<li>{html.escape(json.dumps(d))}</li>" for d in rep.probes.values())
    imgs = "".join(f'<img src="{html.escape(p)}" alt="{html.escape(p)}">' for p in plots)
    images = dict(rep.images or rep.image_evaluation or {})
    pictures = "".join(
        f'<img src="images/{html.escape(f)}" alt="{html.escape(f)}" width="128">'
        for record in images.get("images", [])
        for f in record["files"]
    )
    return (
        f"<h2>Target {html.escape(name)} — {html.escape(rep.target_model)} "
        f"({html.escape(rep.conditioning_space)}, d={rep.dim})</h2>"
        f"<p>Judges (fitted on target data the transfer never sees):</p><ul>{probes}</ul>{table}"
        "<h3>Steering curves (held-out test unsafe prompts; benign = held-out anchors)</h3>"
        f"{curve_table}"
        f"<div>{imgs}</div><h3>Images (RANDOM-WEIGHT denoiser; the encoder is real)</h3>"
        f"<div>{pictures}</div><p>{html.escape(json.dumps(images))}</p>"
    )


def write_page(metrics: JobMetrics, out: Path) -> Path:
    """Write the plots and ``out/index.html``; returns the page's path."""
    plots = write_plots(metrics, out)
    lines = metrics.summary.lines if metrics.summary is not None else []
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    sections = "".join(
        _target_section(n, rep, plots.get(n, [])) for n, rep in metrics.targets.items()
    )
    prov = html.escape(json.dumps(metrics.provenance(), indent=2))
    page = (
        "<!doctype html><meta charset='utf-8'><title>safesteer default job</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse;font-size:12px;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}</style>"
        "<h1>safesteer default job: transfer report</h1>"
        f"<p>{html.escape(metrics.what)}. All prompt sets are safesteer's own.</p>"
        f"<ul>{summary}</ul>"
        f"{sections}<h2>Provenance</h2><pre>{prov}</pre>"
    )
    path = out / "index.html"
    write_text_atomic(path, page)
    return path
