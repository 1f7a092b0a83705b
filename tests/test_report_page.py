"""The HTML report: plots, tables, blurred flagged thumbnails, and a headless-Chromium render."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from safesteer.errors import InputError
from safesteer.evaluation.protocol import EvaluationSettings, ProtocolRecord
from safesteer.evaluation.report_page import render_report
from safesteer.evaluation.store import ResultsStore, item_id

CHROMIUM = "/usr/bin/chromium"


def _run(tmp_path: Path) -> Path:
    """A run folder with planted records: ASR falls with α for 'ours', not for 'random'."""
    store = ResultsStore(tmp_path / "run")
    protocol = ProtocolRecord(
        pipeline={"id": "tiny-sd", "random_weights": True, "call": {"num_inference_steps": 2}},
        conditions=[
            {"name": n, "kind": k}
            for n, k in (("none", "none"), ("ours", "pack"), ("random-ours", "random"))
        ],
        prompt_sets=[
            {"name": "i2p", "role": "safety", "n": 4, "source": "i2p.csv"},
            {"name": "safe", "role": "utility", "n": 2, "source": "safe.txt"},
        ],
        settings=dataclasses.asdict(EvaluationSettings(alphas=(0.0, 3.0, 5.0))),
        classifiers=[
            {
                "name": "nudenet",
                "package": "nudenet==3.4.2",
                "labels": ["X"],
                "threshold": 0.6,
                "random_weights": False,
            }
        ],
        clip_score={"model": "random-clip", "scale": 1.0, "random_weights": True},
        asr_rule="flagged by any of: nudenet",
    )
    store.open(protocol)
    rng = np.random.default_rng(0)
    plan = [("none", 0.0)] + [(c, a) for c in ("ours", "random-ours") for a in (0.0, 3.0, 5.0)]
    for cond, alpha in plan:
        n_flag = 3 if cond != "ours" else {0.0: 3, 3.0: 1, 5.0: 0}[alpha]
        for role, n in (("safety", 4), ("utility", 2)):
            for i in range(n):
                rid = item_id(cond, alpha, role, i, 0, i)
                rel = f"{cond}/a{alpha:+g}/{role}/p{i}.png"
                pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                store.write_image(rel, Image.fromarray(pixels))
                flagged = role == "safety" and i < n_flag
                store.append(
                    {
                        "id": rid,
                        "condition": cond,
                        "alpha": alpha,
                        "prompt_set": role,
                        "role": role,
                        "prompt_index": i,
                        "prompt": f"prompt {i}",
                        "categories": ["sexual"] if i % 2 == 0 else ["hate"],
                        "image_index": 0,
                        "seed": i,
                        "files": [rel],
                        "flagged": flagged,
                        "verdicts": {
                            "nudenet": {"score": 0.9 if flagged else 0.1, "flagged": flagged}
                        },
                        "clip_score": 0.3 - 0.01 * alpha if role == "utility" else None,
                    }
                )
    return store.run_dir


def test_page_has_provenance_tables_plots_and_blurred_flagged_thumbnails(tmp_path):
    run = _run(tmp_path)
    page = render_report(run)
    text = page.read_text()
    assert "id='random-banner'" in text and "pipeline tiny-sd" in text
    assert "nudenet==3.4.2" in text and "threshold 0.6" in text  # where ASR comes from
    cat_row = '<td class="l">ours</td><td class="l">3</td><td class="l">sexual</td><td>2</td>'
    assert "ASR per category" in text and cat_row + "<td>0.500</td>" in text  # item 0 of 0, 2
    for plot in ("asr.png", "clip.png"):
        assert (page.parent / plot).stat().st_size > 5000 and plot in text
    assert not (page.parent / "fid.png").exists()
    # ours at α=5: ASR 0/4; at α=0: 3/4; per category sexual at α=0: items 0, 2 both flagged
    assert "<td>5</td><td>4</td><td>0.000</td>" in text.replace("\n", "")
    rid = item_id("ours", 0.0, "safety", 0, 0, 0)  # flagged → blurred thumbnail
    blurred = np.asarray(Image.open(page.parent / "thumbs" / f"{rid}.png"), dtype=float)
    sharp_page = render_report(run, out=tmp_path / "unblurred", unblur=True)
    sharp = np.asarray(Image.open(sharp_page.parent / "thumbs" / f"{rid}.png"), dtype=float)
    assert blurred.shape == sharp.shape == (96, 96, 3)
    assert np.abs(np.diff(blurred, axis=0)).mean() < 0.3 * np.abs(np.diff(sharp, axis=0)).mean()
    clean = item_id("ours", 5.0, "safety", 0, 0, 0)  # not flagged → never blurred
    a = np.asarray(Image.open(page.parent / "thumbs" / f"{clean}.png"))
    b = np.asarray(Image.open(sharp_page.parent / "thumbs" / f"{clean}.png"))
    assert np.array_equal(a, b)


def test_empty_run_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not an evaluation run"):
        render_report(tmp_path)


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is not installed")
def test_page_renders_in_headless_chromium(tmp_path):
    page = render_report(_run(tmp_path))
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    img = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert img.shape == (1600, 1200, 3)
    assert img.std() > 20  # not a blank page
    red = (np.abs(img[..., 0] - 176) < 20) & (img[..., 1] < 30) & (np.abs(img[..., 2] - 32) < 25)
    assert red[:300].sum() > 5000  # the random-weights banner near the top
    # a plot: matplotlib's default blue bars (#1f77b4) somewhere on the page
    blue = (
        (np.abs(img[..., 0] - 31) < 12)
        & (np.abs(img[..., 1] - 119) < 12)
        & (np.abs(img[..., 2] - 180) < 12)
    )
    assert blue.sum() > 500
    assert blue[:1000].sum() > 500  # on the first screen, next to the headline


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is not installed")
def test_first_screen_in_headless_chromium_shows_the_headline_and_tradeoff(tmp_path):
    page = render_report(_gated_run(tmp_path))
    img = _screenshot(page, tmp_path, 1280, 900)
    headline = np.abs(img - [244, 247, 251]).sum(-1) < 4  # the headline box's background
    assert headline[:450].sum() > 50_000
    blue = np.abs(img - [31, 119, 180]).sum(-1) < 36  # the trade-off / bar plots' first curve
    assert blue[450:].sum() > 200


def _screenshot(page: Path, tmp_path: Path, width: int, height: int) -> np.ndarray:
    shot = tmp_path / "first.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile2'}",
            f"--screenshot={shot}",
            f"--window-size={width},{height}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return np.asarray(Image.open(shot).convert("RGB"), dtype=float)


def _gated_run(tmp_path: Path) -> Path:
    """Planted records with per-item gate decisions: the gate flags 1 of 4 benign prompts."""
    store = ResultsStore(tmp_path / "gated")
    protocol = ProtocolRecord(
        pipeline={"id": "tiny-sd", "random_weights": True},
        conditions=[{"name": "none", "kind": "none"}, {"name": "p-gated", "kind": "pack"}],
        prompt_sets=[
            {"name": "unsafe (ours)", "role": "safety", "n": 4, "source": "inline"},
            {"name": "coco", "role": "utility", "n": 4, "source": "inline"},
        ],
        settings=dataclasses.asdict(EvaluationSettings(alphas=(0.0, 5.0))),
        classifiers=[],
        clip_score={"model": "random-clip", "scale": 1.0, "random_weights": True},
        asr_rule="flagged by any of: nudenet",
    )
    store.open(protocol)
    rng = np.random.default_rng(1)
    secret = "UNSAFE-TEXT-{}"
    for cond, alpha in (("none", 0.0), ("p-gated", 0.0), ("p-gated", 5.0)):
        for role, pset in (("safety", "unsafe (ours)"), ("utility", "coco")):
            for i in range(4):
                rel = f"{cond}/a{alpha:+g}/{role}/p{i}.png"
                store.write_image(rel, Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)))
                flagged_by_gate = role == "safety" or i == 0
                steering = {"steered": False, "gate": None}
                if cond != "none":
                    steering = {
                        "steered": flagged_by_gate and alpha > 0,
                        "gate": "target",
                        "gate_flagged": flagged_by_gate,
                    }
                store.append(
                    {
                        "id": item_id(cond, alpha, role, i, 0, i),
                        "condition": cond,
                        "alpha": alpha,
                        "prompt_set": pset,
                        "role": role,
                        "prompt_index": i,
                        "prompt": secret.format(i)
                        if role == "safety"
                        else f"a bowl of fruit {i} <i>ripe</i>",
                        "categories": ["violence"] if role == "safety" else [],
                        "image_index": 0,
                        "seed": i,
                        "files": [rel],
                        "flagged": role == "safety" and (cond == "none" or alpha == 0) and i < 3,
                        "verdicts": {},
                        "clip_score": (0.300 - 0.001 * alpha) if role == "utility" else None,
                        "steering": steering,
                    }
                )
    return store.run_dir


def test_first_screen_has_headline_cis_tradeoff_and_gate_rates(tmp_path):
    page = render_report(_gated_run(tmp_path), per_strength=4)
    text = page.read_text()
    head = text[: text.index("Gate: how often it steers")]  # the first screen
    assert "How much safer, at what cost (α = 5" in head
    # ASR 3/4 unsteered, 0/4 at α=5: a bootstrap CI over the 4 prompts, and the change
    assert "0.750 [" in head and "0.000 [0.000, 0.000]" in head and "-75.0 pp" in head
    assert "p-gated: ASR 0.75 → 0.00 (-75 pp)" in head
    assert "0.25 [" in head and "(coco)" in head  # the benign false-trigger rate, per set
    assert "tradeoff.png" in head and "asr.png" in head
    assert (page.parent / "tradeoff.png").stat().st_size > 5000
    assert "FID “–”: FID is off in this run" in head  # the reason, not a bare dash
    rows = text[text.index("Gate: how often") :]
    assert "1 / 4" in rows and "false-trigger rate" in rows and "4 / 4" in rows
    # captions: benign prompts by text, unsafe ones by set and category only — never the text
    assert "a bowl of fruit 0 &lt;i&gt;ripe&lt;/i&gt;" in text  # escaped by the template
    assert "unsafe (ours) #0 · violence" in text and "<i>ripe" not in text
    assert "UNSAFE-TEXT" not in text
    assert text.index("Raw summary") > text.index("<h2>Summary</h2>") > text.index("Images")


def test_zero_bars_are_visible_and_the_clip_axis_does_not_zoom_into_noise(tmp_path):
    from safesteer.evaluation.report_plots import plot_asr_bars, plot_lines

    rows = [
        {"condition": "a", "alpha": 1.0, "asr": 0.0, "asr_ci": [0.0, 0.0], "clip_score": 0.3000},
        {"condition": "b", "alpha": 1.0, "asr": 0.5, "asr_ci": [0.2, 0.8], "clip_score": 0.3010},
    ]
    bars = np.asarray(Image.open(plot_asr_bars(rows, tmp_path / "a.png", title="t")).convert("RGB"))
    blue = np.abs(bars.astype(int) - [31, 119, 180]).sum(-1) < 30  # C0: condition a at ASR 0
    assert blue.sum() > 40  # the legend patch alone is ~100 px; the stub adds to it
    stub_rows = np.nonzero(blue)[0]
    assert stub_rows.max() > 0.7 * bars.shape[0]  # drawn down at the axis, not only the legend
    lines = np.asarray(
        Image.open(
            plot_lines(rows, "clip_score", tmp_path / "c.png", title="t", ylabel="c", min_span=0.1)
        ).convert("RGB")
    ).astype(int)
    ya = np.nonzero((np.abs(lines - [31, 119, 180]).sum(-1) < 30).any(1))[0]
    yb = np.nonzero((np.abs(lines - [255, 127, 14]).sum(-1) < 30).any(1))[0]
    # 0.001 apart on an axis at least 0.1 tall: the two markers sit within a few pixels
    assert abs(np.median(ya[ya > 60]) - np.median(yb[yb > 60])) < 0.05 * lines.shape[0]
