"""The evaluation report's figures (matplotlib, Agg): trade-off, ASR bars, CLIP and FID lines.

Read at a glance, and honest about noise:

- :func:`plot_tradeoff`: ASR (y) against CLIP-score (x; FID when the run has no CLIP) with one
  curve per condition through its strengths α (labelled), 95% CIs as error bars, the unsteered
  run as a black star. Down is safer, right (CLIP) is better kept.
- :func:`plot_asr_bars`: ASR per α and condition with CIs; a bar at 0 is drawn as a visible
  stub and every bar carries its value.
- :func:`plot_lines`: CLIP-score or FID against α with CIs; the CLIP axis spans at least
  :data:`MIN_CLIP_SPAN` (×scale), so differences of 0.001 do not look like a cliff.

Every title names where the numbers come from (pipeline, ASR rule, models, random weights).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: the smallest CLIP-score axis span (cosine units, times the run's CLIP scale)
MIN_CLIP_SPAN = 0.1


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window
    import matplotlib.pyplot as plt

    return plt


def _conditions(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({str(r["condition"]) for r in rows if r["condition"] != "none"})


def _err(value: float | None, ci: Sequence[float] | None) -> list[float]:
    if value is None or not ci:
        return [0.0, 0.0]
    return [max(value - ci[0], 0.0), max(ci[1] - value, 0.0)]


def _title(ax: Any, text: str) -> None:
    ax.set_title(textwrap.fill(text, 80), fontsize=8)


def _finish(plt: Any, fig: Any, ax: Any, title: str, path: Path) -> Path:
    """Title, legend, layout; the figure saved to ``path`` and closed."""
    _title(ax, title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _padded_limits(values: Sequence[float], min_span: float) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = max(hi - lo, min_span)
    mid = (lo + hi) / 2
    return mid - span * 0.6, mid + span * 0.6


def plot_tradeoff(
    rows: Sequence[Mapping[str, Any]], path: Path, *, title: str, clip_scale: float = 1.0
) -> Path | None:
    """ASR against CLIP-score (or FID), one curve per condition through its α; None if no ASR."""
    plt = _plt()
    key, label, ci_key = (
        "clip_score",
        "CLIP-score on utility prompts (higher: kept)",
        "clip_score_ci",
    )
    if not any(r.get(key) is not None for r in rows):
        key, label, ci_key = "fid", "FID on utility prompts (lower: kept)", ""
    data = [r for r in rows if r.get("asr") is not None and r.get(key) is not None]
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 4.2), dpi=100)
    for i, cond in enumerate(_conditions(data)):
        pts = sorted((r for r in data if r["condition"] == cond), key=lambda r: r["alpha"])
        xs, ys = [r[key] for r in pts], [r["asr"] for r in pts]
        xerr = [_err(r[key], r.get(ci_key)) for r in pts] if ci_key else None
        yerr = [_err(r["asr"], r.get("asr_ci")) for r in pts]
        ax.errorbar(
            xs,
            ys,
            xerr=list(zip(*xerr, strict=True)) if xerr else None,
            yerr=list(zip(*yerr, strict=True)),
            marker="o",
            color=f"C{i}",
            capsize=2,
            label=cond,
        )
        for r in pts:
            ax.annotate(
                f"α={r['alpha']:g}",
                (r[key], r["asr"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=f"C{i}",
            )
    base = [r for r in data if r["condition"] == "none"]
    if base:
        ax.plot([base[0][key]], [base[0]["asr"]], "k*", markersize=12, label="none (unsteered)")
    xs = [r[key] for r in data]
    if key == "clip_score":
        ax.set_xlim(*_padded_limits(xs, MIN_CLIP_SPAN * clip_scale))
    ax.set_ylim(-0.04, 1.04)
    ax.set_xlabel(label)
    ax.set_ylabel("ASR on safety prompts (lower: safer)")
    ax.grid(alpha=0.3)
    return _finish(plt, fig, ax, title, path)


def plot_asr_bars(rows: Sequence[Mapping[str, Any]], path: Path, *, title: str) -> Path | None:
    """ASR bars per α and condition with 95% CIs; zeros visible as stubs; values on the bars."""
    plt = _plt()
    data = [r for r in rows if r.get("asr") is not None]
    if not data:
        return None
    conds = _conditions(data)
    alphas = sorted({float(r["alpha"]) for r in data if r["condition"] != "none"}) or [0.0]
    fig, ax = plt.subplots(figsize=(5.6, 4.2), dpi=100)
    width = 0.8 / max(len(conds), 1)
    for j, cond in enumerate(conds):
        pts = sorted((r for r in data if r["condition"] == cond), key=lambda r: r["alpha"])
        xs = [alphas.index(float(r["alpha"])) + (j - (len(conds) - 1) / 2) * width for r in pts]
        ys = [r["asr"] for r in pts]
        yerr = [_err(r["asr"], r.get("asr_ci")) for r in pts]
        ax.bar(xs, ys, width, color=f"C{j}", label=cond, yerr=list(zip(*yerr, strict=True)))
        for x, y in zip(xs, ys, strict=True):
            if y == 0:  # an empty bar: a visible stub on the axis
                ax.plot([x - width / 2, x + width / 2], [0.004, 0.004], color=f"C{j}", lw=4)
            ax.text(x, y + 0.02, f"{y:.2f}", ha="center", va="bottom", fontsize=6)
    base = [r for r in data if r["condition"] == "none"]
    if base:
        ax.axhline(base[0]["asr"], color="k", linestyle="--", linewidth=1, label="none (unsteered)")
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_ylim(-0.02, 1.1)
    ax.set_xlabel("strength α")
    ax.set_ylabel("ASR (95% CI over prompts)")
    return _finish(plt, fig, ax, title, path)


def plot_lines(
    rows: Sequence[Mapping[str, Any]],
    key: str,
    path: Path,
    *,
    title: str,
    ylabel: str,
    min_span: float | None = None,
) -> Path | None:
    """``key`` (CLIP-score or FID) against α per condition, CIs where the rows have them."""
    plt = _plt()
    data = [r for r in rows if r.get(key) is not None]
    if not data:
        return None
    alphas = sorted({float(r["alpha"]) for r in data if r["condition"] != "none"}) or [0.0]
    fig, ax = plt.subplots(figsize=(5.6, 3.6), dpi=100)
    for j, cond in enumerate(_conditions(data)):
        pts = sorted((r for r in data if r["condition"] == cond), key=lambda r: r["alpha"])
        xs = [alphas.index(float(r["alpha"])) for r in pts]
        yerr = [_err(r[key], r.get(f"{key}_ci")) for r in pts]
        ax.errorbar(
            xs,
            [r[key] for r in pts],
            yerr=list(zip(*yerr, strict=True)),
            marker="o",
            capsize=2,
            color=f"C{j}",
            label=cond,
        )
    base = [r for r in data if r["condition"] == "none"]
    if base:
        ax.axhline(base[0][key], color="k", linestyle="--", linewidth=1, label="none (unsteered)")
    if min_span is not None:
        ax.set_ylim(*_padded_limits([r[key] for r in data], min_span))
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_xlabel("strength α")
    ax.set_ylabel(ylabel)
    return _finish(plt, fig, ax, title, path)
