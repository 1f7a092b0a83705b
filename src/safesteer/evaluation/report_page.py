"""A static HTML report of an evaluation run (jinja2 template, PNG plots, no scripts).

The first screen answers "how much safer, at what cost": a headline table at the run's largest
strength α (ASR and CLIP-score with 95% bootstrap intervals over prompts, their change against
the unsteered run, FID — with the reason when it is "–" — and each gated condition's
false-trigger rate on benign prompts), next to the ASR-vs-CLIP trade-off plot (one curve per
condition) and ASR bars against α. Then the gate's rates per prompt set; thumbnails captioned by
prompt (benign prompts by their text, safety prompts by set and category only — unsafe text is
never shown), blurred when flagged unless ``unblur=True``; the remaining plots; and below them
the full tables, the protocol (what every number comes from) and the raw ``summary.json``.

Example:
    >>> page = render_report("runs/demo")  # doctest: +SKIP
    >>> page.name  # doctest: +SKIP
    'index.html'
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from safesteer.atomic import write_bytes_atomic
from safesteer.errors import InputError, SafeSteerWarning
from safesteer.evaluation.protocol import ProtocolRecord
from safesteer.evaluation.report_plots import (
    MIN_CLIP_SPAN,
    plot_asr_bars,
    plot_lines,
    plot_tradeoff,
)
from safesteer.evaluation.store import ResultsStore
from safesteer.evaluation.summary import N_BOOTSTRAP, summarize
from safesteer.templating import render_html

THUMB = 96
#: characters of a benign prompt shown under its thumbnail
CAPTION_CHARS = 60


def _fmt(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(x: Any, ci: Sequence[float] | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def _delta(x: Any, base: Any, scale: float = 1.0, unit: str = "") -> str:
    if x is None or base is None:
        return "–"
    return f"{(x - base) * scale:+.1f}{unit}" if unit else f"{x - base:+.3f}"


def _thumb(src: Path, dst: Path, blur: bool) -> bool:
    """Write a thumbnail of ``src``; False (nothing written) when the image cannot be read."""
    try:
        with Image.open(src) as opened:
            im = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    im = (
        ImageOps.contain(im, (THUMB, THUMB), Image.Resampling.NEAREST)
        if max(im.size) < THUMB
        else ImageOps.contain(im, (THUMB, THUMB))
    )
    im = im.resize((THUMB, THUMB), Image.Resampling.NEAREST)
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(radius=THUMB / 8))
    dst.parent.mkdir(parents=True, exist_ok=True)
    im.save(dst)
    return True


def caption(record: Mapping[str, Any]) -> str:
    """A thumbnail's caption: a benign prompt's text (shortened), or for a safety prompt its
    set and categories only — never unsafe text.

    Example:
        >>> caption({"role": "safety", "prompt_set": "i2p", "prompt_index": 3,
        ...          "categories": ["violence"], "prompt": "(never shown)"})
        'i2p #3 · violence'
    """
    if record.get("role") == "utility":
        text = str(record.get("prompt", ""))
        return text if len(text) <= CAPTION_CHARS else text[: CAPTION_CHARS - 1] + "…"
    cats = ", ".join(record.get("categories") or []) or "no category"
    return f"{record.get('prompt_set')} #{record.get('prompt_index')} · {cats}"


def _pick(records: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` records: half safety, half utility where both exist (in plan order)."""
    safety = [r for r in records if r["role"] == "safety"]
    utility = [r for r in records if r["role"] != "safety"]
    k = min(len(safety), max(n - len(utility), n // 2))
    return safety[:k] + utility[: n - k]


def _headline(summary: Mapping[str, Any], clip_scale: float) -> dict[str, Any]:
    rows = summary["rows"]
    steered = [r for r in rows if r["condition"] != "none"]
    alpha = max((r["alpha"] for r in steered), default=0.0)
    base = next((r for r in rows if r["condition"] == "none"), None)
    false_trigger: dict[str, list[str]] = {}
    for g in summary.get("gate_rates", []):
        if g["role"] == "utility":
            false_trigger.setdefault(g["condition"], []).append(
                f"{_ci(g['rate'], g['rate_ci'], 2)} ({g['prompt_set']})"
            )
    table_rows, sentences = [], []
    for r in ([base] if base else []) + [r for r in steered if r["alpha"] == alpha]:
        is_base = r is base
        table_rows.append(
            [
                r["condition"] + (" (unsteered)" if is_base else ""),
                _ci(r["asr"], r.get("asr_ci")),
                "–" if is_base else _delta(r["asr"], base and base["asr"], 100, " pp"),
                _ci(r["clip_score"], r.get("clip_score_ci")),
                "–" if is_base else _delta(r["clip_score"], base and base["clip_score"]),
                _fmt(r["fid"], 2),
                "; ".join(false_trigger.get(r["condition"], [])) or "–",
            ]
        )
        if not is_base and base and r["asr"] is not None and base["asr"] is not None:
            cost = (
                f", CLIP-score {_fmt(base['clip_score'])} → {_fmt(r['clip_score'])}"
                if r["clip_score"] is not None and base["clip_score"] is not None
                else ""
            )
            sentences.append(
                f"{r['condition']}: ASR {_fmt(base['asr'], 2)} → {_fmt(r['asr'], 2)} "
                f"({(r['asr'] - base['asr']) * 100:+.0f} pp){cost}."
            )
    return {
        "alpha": f"{alpha:g}",
        "head": [
            "condition",
            "ASR [95% CI]",
            "Δ ASR",
            "CLIP-score [95% CI]",
            "Δ CLIP",
            "FID",
            "gate false-trigger on benign [95% CI]",
        ],
        "rows": table_rows,
        "sentences": sentences,
        "n_safety": base["n_safety_prompts"] if base else "–",
    }


def render_report(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    unblur: bool = False,
    per_strength: int = 8,
) -> Path:
    """Write ``index.html`` (+ ``tradeoff.png``, ``asr.png``, ``clip.png``, ``fid.png``,
    thumbnails); its path."""
    store = ResultsStore(run_dir)
    protocol: ProtocolRecord = store.protocol()
    records = list(store.completed().values())
    if not records:
        raise InputError(
            f"{store.run_dir} has no finished items yet",
            hint="run `safesteer evaluate` into it first",
        )
    summary = summarize(records, store.read_json("fid.json"), protocol.fid)
    out_dir = Path(out) if out else store.run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    random_parts = protocol.random_parts()
    tag = " — RANDOM WEIGHTS" if random_parts else ""
    who = f"{protocol.pipeline.get('id')}; {protocol.asr_rule}{tag}"
    clip = protocol.clip_score or {}
    clip_scale = float(clip.get("scale") or 1.0)
    rows = summary["rows"]
    tradeoff = plot_tradeoff(
        rows,
        out_dir / "tradeoff.png",
        title=f"ASR vs CLIP-score per condition (points: α) — {who}",
        clip_scale=clip_scale,
    )
    asr = plot_asr_bars(rows, out_dir / "asr.png", title=f"ASR vs α — {who}")
    clip_plot = plot_lines(
        rows,
        "clip_score",
        out_dir / "clip.png",
        title=f"CLIP-score (utility prompts) vs α — {clip.get('model')}{tag}",
        ylabel="CLIP-score (95% CI)",
        min_span=MIN_CLIP_SPAN * clip_scale,
    )
    fid_plot = plot_lines(
        rows,
        "fid",
        out_dir / "fid.png",
        title=f"FID vs α — {(protocol.fid or {}).get('features')}{tag}",
        ylabel="FID",
    )
    names = sorted({n for r in rows for n in r["asr_by_classifier"]})
    summary_rows = [
        [
            r["condition"],
            f"{r['alpha']:g}",
            str(r["n_safety"]),
            _fmt(r["asr"]),
            _ci(r["asr"], r.get("asr_ci")),
            *[_fmt(r["asr_by_classifier"].get(n)) for n in names],
            str(r["n_utility"]),
            _ci(r["clip_score"], r.get("clip_score_ci")),
            _fmt(r["fid"], 2),
        ]
        for r in rows
    ]
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    missing: list[str] = []
    for r in sorted(
        records,
        key=lambda r: (r["role"] != "safety", r["prompt_set"], r["prompt_index"], r["image_index"]),
    ):
        groups.setdefault((r["condition"], float(r["alpha"])), []).append(r)
    image_groups = []
    for (cond, alpha), rs in sorted(groups.items()):
        images = []
        for r in _pick(rs, per_strength):
            flagged = bool(r["flagged"])
            rel = f"thumbs/{r['id']}.png"
            found = _thumb(store.images_dir / r["files"][0], out_dir / rel, flagged and not unblur)
            if not found:
                missing.append(r["files"][0])
            images.append(
                {"src": rel, "caption": caption(r), "flagged": flagged, "missing": not found}
            )
        image_groups.append({"title": f"{cond}, α = {alpha:g}", "images": images})
    gate_rows = [
        [
            g["condition"],
            g["gate"],
            g["prompt_set"],
            g["role"],
            f"{g['steered']} / {g['n']}",
            _ci(g["rate"], g["rate_ci"]),
            g["meaning"],
        ]
        for g in summary["gate_rates"]
    ]
    figure = [
        {"src": p.name, "alt": alt}
        for p, alt in (
            (tradeoff, "ASR against CLIP-score per condition"),
            (asr, "ASR bars against strength"),
        )
        if p is not None
    ]
    more = [
        {"src": p.name, "alt": alt}
        for p, alt in ((clip_plot, "CLIP-score against strength"), (fid_plot, "FID against α"))
        if p is not None
    ]
    html = render_html(
        "evaluation_report.html.j2",
        pipeline_id=str(protocol.pipeline.get("id")),
        random_parts=random_parts,
        headline=_headline(summary, clip_scale),
        asr_rule=protocol.asr_rule,
        clip_model=clip.get("model") or "no CLIP model",
        n_boot=N_BOOTSTRAP,
        fid_note=summary["fid_note"],
        top_figures=figure,
        more_figures=more,
        gate_rows=gate_rows,
        blur_note=(
            "Flagged thumbnails are shown unblurred (outlined red)."
            if unblur
            else "Thumbnails flagged unsafe are blurred and outlined red "
            "(`safesteer report --unblur` shows them)."
        ),
        thumb=THUMB,
        image_groups=image_groups,
        who=who,
        summary_head=[
            "condition",
            "α",
            "n safety",
            "ASR",
            "ASR [95% CI]",
            *[f"ASR {n}" for n in names],
            "n utility",
            "CLIP [95% CI]",
            "FID",
        ],
        summary_rows=summary_rows,
        category_rows=[
            [c["condition"], f"{c['alpha']:g}", c["category"], str(c["n"]), _fmt(c["asr"])]
            for c in summary["categories"]
        ],
        protocol_lines=protocol.summary_lines(),
        fingerprint=protocol.fingerprint(),
        created=protocol.created,
        summary_json=json.dumps(summary, indent=1, sort_keys=True),
    )
    if missing:
        warnings.warn(
            f"{len(missing)} image(s) under {store.images_dir} are missing or unreadable (e.g. "
            f"{missing[0]}); the page shows 'image missing' in their place",
            SafeSteerWarning,
            stacklevel=2,
        )
    page = out_dir / "index.html"
    write_bytes_atomic(page, html.encode("utf-8"))
    return page
