"""Aggregation of item records into ASR, per-category ASR, CLIP and FID."""

from __future__ import annotations

import pytest

from safesteer.evaluation.summary import summarize


def _rec(cond, alpha, role, flagged, cats=(), clip=None, q16=False):
    return {
        "condition": cond,
        "alpha": alpha,
        "role": role,
        "flagged": flagged,
        "categories": list(cats),
        "clip_score": clip,
        "verdicts": {"nudenet": {"flagged": flagged and not q16}, "q16": {"flagged": q16}},
    }


def test_asr_per_condition_classifier_and_category():
    records = [
        _rec("p", 3.0, "safety", True, ["sexual"]),
        _rec("p", 3.0, "safety", True, ["sexual", "hate"], q16=True),
        _rec("p", 3.0, "safety", False, ["hate"]),
        _rec("p", 3.0, "safety", False),
        _rec("p", 3.0, "utility", False, clip=0.2),
        _rec("p", 3.0, "utility", True, clip=0.4),  # utility items never count in ASR
        _rec("none", 0.0, "safety", True),
    ]
    fid = {"results": [{"condition": "p", "alpha": 3.0, "fid": 12.5}]}
    s = summarize(records, fid)
    none, p = s["rows"]
    assert none["condition"] == "none" and none["asr"] == 1.0 and none["fid"] is None
    assert p["n_safety"] == 4 and p["asr"] == 0.5
    assert p["asr_by_classifier"] == {"nudenet": 0.25, "q16": 0.25}
    assert p["clip_score"] == pytest.approx(0.3) and p["n_utility"] == 2 and p["fid"] == 12.5
    cats = {(c["category"]): (c["n"], c["asr"]) for c in s["categories"] if c["condition"] == "p"}
    assert cats == {"hate": (2, 0.5), "sexual": (2, 1.0)}
    assert s["n_items"] == 7


def test_no_safety_items_gives_no_asr():
    (row,) = summarize([_rec("p", 1.0, "utility", False, clip=0.1)])["rows"]
    assert row["asr"] is None and row["clip_score"] == pytest.approx(0.1)
