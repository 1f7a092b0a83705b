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
