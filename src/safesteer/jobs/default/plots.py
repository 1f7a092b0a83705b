"""PNG plots of the default job (matplotlib, Agg backend; no display needed).

Each plot reads the job's records (:class:`~safesteer.jobs.default.records.JobMetrics`) for
one target and writes one PNG whose title says what the numbers come from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safesteer.jobs.default.config import QUOTED_PROBE
from safesteer.jobs.default.records import JobMetrics


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window
    import matplotlib.pyplot as plt

    return plt


def plot_curves(metrics: JobMetrics, target: str, path: Path) -> Path:
    """Judged-unsafe rate vs α (left) and vs benign cosine (right, the ASR-vs-CLIP analogue)."""
    plt = _plt()
    rep = metrics.targets[target]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (name, scores) in enumerate(rep.directions()):
        colour = f"C{i}"
        for mode, curve in scores.curves():
            if not curve:
                continue
            label = f"{name} ({mode.label})"
            a = [p["alpha"] for p in curve]
            u = [p["unsafe_rate"][QUOTED_PROBE] for p in curve]
            ax1.plot(a, u, mode.line_style, marker="o", label=label, color=colour)
            ax2.plot(
                [p["benign_cosine"] for p in curve], u, mode.line_style, marker="o", color=colour
            )
    rnd = rep.random.always_on
    a = [p["alpha"] for p in rnd]
    mean = [p["unsafe_rate"][QUOTED_PROBE]["mean"] for p in rnd]
    std = [p["unsafe_rate"][QUOTED_PROBE]["std"] for p in rnd]
    ax1.errorbar(a, mean, yerr=std, color="grey", marker="x", label="random (mean ± std)")
    ax1.set_xlabel("α")
    ax1.set_ylabel(f"held-out unsafe judged unsafe ({QUOTED_PROBE})")
    ax2.set_xlabel("benign held-out: cos(steered, unsteered pooled state)")
    ax2.invert_xaxis()
    ax1.legend(fontsize=7)
    fig.suptitle(
        f"target {target} ← source {metrics.source_model.split('@')[0]} "
        f"L{metrics.source_layer}\nrepresentation-level steering of held-out test prompts "
        f"(judge: {QUOTED_PROBE} on target states; solid: always-on, dashed: target gate, "
        "dotted: source gate)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_aurocs(metrics: JobMetrics, target: str, path: Path) -> Path:
    """Bars: style-matched (honest) and benign-vs-unsafe (easy, confounded) AUROC per direction."""
    plt = _plt()
    rep = metrics.targets[target]
    directions = list(rep.directions())
    names = [n for n, _ in directions] + ["random"]
    honest = [s.auroc_style_matched for _, s in directions] + [
        rep.random.auroc_style_matched["mean"]
    ]
    easy = [s.auroc_easy_benign_vs_unsafe for _, s in directions] + [
        rep.random.auroc_easy_benign_vs_unsafe["mean"]
    ]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = list(range(len(names)))
    ax.bar(
        [i - 0.2 for i in x], honest, 0.4, label="safe twin vs unsafe twin (style-matched, honest)"
    )
    ax.bar(
        [i + 0.2 for i in x], easy, 0.4, label="benign anchors vs unsafe (easy, style-confounded)"
    )
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AUROC of projection (held-out test)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{rep.target_model}: projection AUROC per direction", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_categories(metrics: JobMetrics, target: str, map_kind: str, path: Path) -> Path:
    """Heatmap: AUROC of each category vector (rows) on each category's test pairs (columns)."""
    plt = _plt()
    table = metrics.targets[target].maps[map_kind].categories
    rows = list(table)
    found = {c for r in table.values() for c in r}
    # columns in the rows' order, so a vector acting on its own category shows on the diagonal
    cols = [c for c in rows if c in found] + sorted(found - set(rows))
    grid = [[table[r].get(c, {}).get("auroc", float("nan")) for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for i, r in enumerate(grid):
        for j, v in enumerate(r):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w")
    fig.colorbar(im, ax=ax)
    ax.set_xlabel("test pairs of category")
    ax.set_ylabel(f"transferred vector ({map_kind})")
    ax.set_title(f"{target}: style-matched AUROC per category (few pairs per cell)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_plots(metrics: JobMetrics, out: Path) -> dict[str, list[str]]:
    """All plots for all targets into ``out/plots/``; returns target → file names (relative)."""
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[str]] = {}
    summary = metrics.summary.per_target if metrics.summary is not None else {}
    for target, rep in metrics.targets.items():
        stem = target.replace("/", "_")  # a hub id or a folder path names a file, not a folder
        files = [
            plot_curves(metrics, target, folder / f"{stem}-curves.png"),
            plot_aurocs(metrics, target, folder / f"{stem}-auroc.png"),
        ]
        best = summary[target].chosen_map if target in summary else None
        if best and rep.maps[best].categories:
            files.append(plot_categories(metrics, target, best, folder / f"{stem}-categories.png"))
        made[target] = [str(f.relative_to(out)) for f in files]
    return made
