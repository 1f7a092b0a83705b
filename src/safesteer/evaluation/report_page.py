"""A static HTML report of an evaluation run, with PNG plots (matplotlib, Agg).

The page shows, top to bottom: the protocol summary (what every number comes from) and a red
banner when any weights were random; ASR bars and CLIP-score lines against α for each
condition (like the paper's figures); the summary table (ASR per classifier, CLIP, FID); the
per-category ASR table; image grids per condition and strength, where thumbnails flagged unsafe
are blurred (PIL Gaussian blur) unless ``unblur=True``.

Example:
    >>> page = render_report("runs/demo")  # doctest: +SKIP
    >>> page.name  # doctest: +SKIP
    'index.html'
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from safesteer.atomic import write_bytes_atomic
from safesteer.errors import InputError
from safesteer.evaluation.protocol import ProtocolRecord
from safesteer.evaluation.store import ResultsStore
from safesteer.evaluation.summary import summarize

THUMB = 96
_CSS = """
body{font-family:sans-serif;margin:24px;max-width:1150px;color:#222}
.banner{background:#b00020;color:#fff;padding:10px 14px;font-weight:bold;margin:8px 0}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}
th{background:#eee} td.l,th.l{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:4px;margin:4px 0 12px}
.grid figure{margin:0;text-align:center;font-size:10px}
.flag img{outline:3px solid #b00020}
.src{font-size:12px;color:#555}
ul.protocol{font-size:13px}
"""


def _fmt(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _plot_lines_or_bars(
    rows: Sequence[Mapping[str, Any]], key: str, path: Path, *, title: str, ylabel: str, bars: bool
) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [r for r in rows if r.get(key) is not None]
    if not data:
        return None
    conds = sorted({r["condition"] for r in data if r["condition"] != "none"})
    alphas = sorted({r["alpha"] for r in data if r["condition"] != "none"}) or [0.0]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    width = 0.8 / max(len(conds), 1)
    for j, cond in enumerate(conds):
        pts = sorted((r["alpha"], r[key]) for r in data if r["condition"] == cond)
        xs = [alphas.index(a) for a, _ in pts]
        ys = [v for _, v in pts]
        if bars:
            ax.bar([x + (j - (len(conds) - 1) / 2) * width for x in xs], ys, width, label=cond)
        else:
            ax.plot(xs, ys, marker="o", label=cond)
    base = [r[key] for r in data if r["condition"] == "none"]
    if base:
        ax.axhline(base[0], color="k", linestyle="--", linewidth=1, label="none (unsteered)")
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_xlabel("strength α")
    ax.set_ylabel(ylabel)
    ax.set_title(textwrap.fill(title, 90), fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _thumb(src: Path, dst: Path, blur: bool) -> None:
    im = Image.open(src).convert("RGB")
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


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    def cell(tag: str, i: int, v: str) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{html.escape(v)}</{tag}>"

    out = ["<table><tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + "</tr>"]
    out += ["<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows]
    return "\n".join(out) + "</table>"


def render_report(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    unblur: bool = False,
    per_strength: int = 8,
) -> Path:
    """Write ``index.html`` (+ ``asr.png``, ``clip.png``, ``fid.png``, thumbnails); its path."""
    store = ResultsStore(run_dir)
    protocol: ProtocolRecord = store.protocol()
    records = list(store.completed().values())
    if not records:
        raise InputError(
            f"{store.run_dir} has no finished items yet",
            hint="run `safesteer evaluate` into it first",
        )
    summary = summarize(records, store.read_json("fid.json"))
    out_dir = Path(out) if out else store.run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    random_parts = protocol.random_parts()
    tag = " — RANDOM WEIGHTS" if random_parts else ""
    who = f"{protocol.pipeline.get('id')}; {protocol.asr_rule}{tag}"
    rows = summary["rows"]
    plots = [
        _plot_lines_or_bars(
            rows, "asr", out_dir / "asr.png", bars=True, ylabel="ASR", title=f"ASR vs α — {who}"
        ),
        _plot_lines_or_bars(
            rows,
            "clip_score",
            out_dir / "clip.png",
            bars=False,
            ylabel="CLIP-score",
            title=f"CLIP-score (utility prompts) vs α — "
            f"{(protocol.clip_score or {}).get('model')}{tag}",
        ),
        _plot_lines_or_bars(
            rows,
            "fid",
            out_dir / "fid.png",
            bars=False,
            ylabel="FID",
            title=f"FID vs α — {(protocol.fid or {}).get('features')}{tag}",
        ),
    ]
    names = sorted({n for r in rows for n in r["asr_by_classifier"]})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>safesteer evaluation</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>safesteer evaluation: {html.escape(str(protocol.pipeline.get('id')))}</h1>",
    ]
    if random_parts:
        parts.append(
            "<div class='banner' id='random-banner'>Random weights: "
            + html.escape(", ".join(random_parts))
            + ". These numbers test the code path; they say nothing about safety.</div>"
        )
    parts.append(
        "<h2>Protocol</h2><ul class='protocol'>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in protocol.summary_lines())
        + f"<li>protocol fingerprint {protocol.fingerprint()}; created "
        f"{html.escape(protocol.created)}</li></ul>"
    )
    parts.append("<h2>Figures</h2>")
    parts += [f"<img src='{p.name}' alt='{p.stem} plot' width='700'><br>" for p in plots if p]
    parts.append(
        "<h2>Summary</h2><p class='src'>ASR: fraction of the safety prompts' images "
        f"flagged ({html.escape(protocol.asr_rule)}). CLIP-score: mean over utility "
        "images. FID: utility images vs the reference folder. Source: "
        f"{html.escape(who)}.</p>"
    )
    parts.append(
        _table(
            [
                "condition",
                "α",
                "n safety",
                "ASR",
                *[f"ASR {n}" for n in names],
                "n utility",
                "CLIP",
                "FID",
            ],
            [
                [
                    r["condition"],
                    f"{r['alpha']:g}",
                    str(r["n_safety"]),
                    _fmt(r["asr"]),
                    *[_fmt(r["asr_by_classifier"].get(n)) for n in names],
                    str(r["n_utility"]),
                    _fmt(r["clip_score"]),
                    _fmt(r["fid"], 2),
                ]
                for r in rows
            ],
            left=1,
        )
    )
    if summary["categories"]:
        parts.append(
            "<h2>ASR per category</h2><p class='src'>Same rule, restricted to prompts "
            "carrying the category (n = images).</p>"
        )
        parts.append(
            _table(
                ["condition", "α", "category", "n", "ASR"],
                [
                    [c["condition"], f"{c['alpha']:g}", c["category"], str(c["n"]), _fmt(c["asr"])]
                    for c in summary["categories"]
                ],
                left=3,
            )
        )
    parts.append(
        "<h2>Images</h2><p class='src'>"
        + (
            "Flagged thumbnails are shown unblurred (outlined red)."
            if unblur
            else "Thumbnails flagged unsafe are blurred and outlined red "
            "(`safesteer report --unblur` shows them)."
        )
        + "</p>"
    )
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in sorted(
        records,
        key=lambda r: (r["role"] != "safety", r["prompt_set"], r["prompt_index"], r["image_index"]),
    ):
        groups.setdefault((r["condition"], float(r["alpha"])), []).append(r)
    for (cond, alpha), rs in sorted(groups.items()):
        parts.append(f"<h3>{html.escape(cond)}, α = {alpha:g}</h3><div class='grid'>")
        for r in rs[:per_strength]:
            flagged = bool(r["flagged"])
            rel = f"thumbs/{r['id']}.png"
            _thumb(store.images_dir / r["files"][0], out_dir / rel, flagged and not unblur)
            cap = f"{r['prompt_set']}#{r['prompt_index']}" + (" FLAGGED" if flagged else "")
            parts.append(
                f"<figure class='{'flag' if flagged else ''}'><img src='{rel}' "
                f"width='{THUMB}' height='{THUMB}' alt='{html.escape(r['prompt'])}'>"
                f"<figcaption>{html.escape(cap)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    page = out_dir / "index.html"
    write_bytes_atomic(page, "\n".join(parts).encode("utf-8"))
    return page
