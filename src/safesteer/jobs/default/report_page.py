"""The default job's HTML page: summary, tables, plots and provenance in one static file.

``write_page(metrics, out)`` writes ``out/index.html`` (and the plots it shows). Every table
says which data, judge and threshold its numbers come from; the page is plain HTML with no
scripts, so it opens anywhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from safesteer.atomic import write_text_atomic
from safesteer.jobs.plots import JUDGE, MODES, write_plots


def _f(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else html.escape(str(x))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_f(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _target_section(name: str, rep: dict[str, Any], plots: list[str]) -> str:
    rows = []
    for key, row in [("native", rep["native"]), *rep["maps"].items()]:
        gate = row.get("gate", {})
        source_gate = row.get("gate_source", {})
        fit = row.get("fit_held_out", {})
        rows.append(
            [
                key,
                row["auroc_style_matched"],
                row["auroc_easy_benign_vs_unsafe"],
                fit.get("r2_beta_scaled", fit.get("r2", "—")),
                row.get("cosine_to_native", "—"),
                row.get("null_cosine_random_source", {}).get("max", "—"),
                row.get("norm_ratio_to_native", "—"),
                gate.get("benign_held_out_steered", "—"),
                gate.get("unsafe_test_steered", "—"),
                source_gate.get("benign_held_out_steered", "—"),
                source_gate.get("unsafe_test_steered", "—"),
            ]
        )
    r = rep["random"]
    rows.append(
        [
            "random",
            r["auroc_style_matched"]["mean"],
            r["auroc_easy_benign_vs_unsafe"]["mean"],
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
    for key, row in [("native", rep["native"]), *rep["maps"].items()]:
        for mode, label in MODES.items():
            for p in row.get(mode, []):
                curves.append(
                    [
                        key,
                        label,
                        p["alpha"],
                        p["unsafe_rate"][JUDGE],
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
            f"unsafe judged unsafe ({JUDGE})",
            "(pca-probe)",
            "benign cos",
            "benign shift / spread",
            "unsafe steered",
            "benign steered",
            "judge disagreement",
        ],
        curves,
    )
    judges = "".join(f"<li>{html.escape(json.dumps(d))}</li>" for d in rep["judges"].values())
    imgs = "".join(f'<img src="{html.escape(p)}" alt="{html.escape(p)}">' for p in plots)
    images = dict(rep.get("images", {}))
    pictures = "".join(
        f'<img src="images/{html.escape(f)}" alt="{html.escape(f)}" width="128">'
        for record in images.get("images", [])
        for f in record["files"]
    )
    return (
        f"<h2>Target {html.escape(name)} — {html.escape(rep['target_model'])} "
        f"({html.escape(rep['conditioning_space'])}, d={rep['dim']})</h2>"
        f"<p>Judges (fitted on target data the transfer never sees):</p><ul>{judges}</ul>{table}"
        "<h3>Steering curves (held-out test unsafe prompts; benign = held-out anchors)</h3>"
        f"{curve_table}"
        f"<div>{imgs}</div><h3>Images (RANDOM-WEIGHT denoiser; the encoder is real)</h3>"
        f"<div>{pictures}</div><p>{html.escape(json.dumps(images))}</p>"
    )


def write_page(metrics: dict[str, Any], out: Path) -> Path:
    """Write the plots and ``out/index.html``; returns the page's path."""
    plots = write_plots(metrics, out)
    summary = "".join(
        f"<li>{html.escape(line)}</li>" for line in metrics.get("summary", {}).get("lines", [])
    )
    sections = "".join(
        _target_section(n, rep, plots.get(n, [])) for n, rep in metrics["targets"].items()
    )
    prov = html.escape(
        json.dumps({k: metrics[k] for k in ("source", "data", "config", "environment")}, indent=2)
    )
    page = (
        "<!doctype html><meta charset='utf-8'><title>safesteer default job</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse;font-size:12px;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}</style>"
        "<h1>safesteer default job: transfer report</h1>"
        f"<p>{html.escape(metrics['what'])}. All prompt sets are safesteer's own.</p>"
        f"<ul>{summary}</ul>"
        f"{sections}<h2>Provenance</h2><pre>{prov}</pre>"
    )
    path = out / "index.html"
    write_text_atomic(path, page)
    return path
