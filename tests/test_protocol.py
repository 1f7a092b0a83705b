"""Protocol records: complete, fingerprinted (environment excluded), and the paper preset."""

from __future__ import annotations

import dataclasses
import re

import pytest

from safesteer.errors import InputError
from safesteer.evaluation.protocol import (
    PAPER_ALPHAS,
    PAPER_NOTES,
    PRESETS,
    EvaluationSettings,
    ProtocolRecord,
    mark_preset_changes,
    preset_changes,
    preset_notes,
)


def _record(**changes) -> ProtocolRecord:
    base = ProtocolRecord(
        pipeline={"id": "tiny-sd", "random_weights": True, "call": {"num_inference_steps": 2}},
        conditions=[{"name": "none", "kind": "none"}],
        prompt_sets=[{"name": "i2p", "role": "safety", "n": 3, "source": "x.csv"}],
        settings=dataclasses.asdict(EvaluationSettings()),
        classifiers=[
            {
                "name": "nudenet",
                "package": "nudenet==3.4.2",
                "labels": ["A"],
                "threshold": 0.6,
                "random_weights": False,
            }
        ],
        clip_score={"model": "m", "scale": 1.0, "random_weights": True},
        environment={"torch": "2.13"},
    )
    return dataclasses.replace(base, **changes)


def test_fingerprint_ignores_environment_and_date_but_not_settings():
    a = _record()
    assert a.fingerprint() == _record(environment={"torch": "9"}, created="x").fingerprint()
    other = dict(a.settings, nudenet_threshold=0.5)
    assert a.fingerprint() != _record(settings=other).fingerprint()
    assert a.fingerprint().startswith("sha256:")


def test_round_trip_and_missing_fields(tmp_path):
    a = _record()
    back = ProtocolRecord.load(a.save(tmp_path / "p.json"))
    assert back.fingerprint() == a.fingerprint() and back.created == a.created
    with pytest.raises(InputError, match="lacks"):
        ProtocolRecord.from_dict({"pipeline": {}})


def test_random_parts_and_summary_lines_say_where_numbers_come_from():
    a = _record()
    assert a.random_parts() == ["pipeline tiny-sd", "CLIP-score model"]
    assert _record(pipeline={"id": "real"}, clip_score=None).random_parts() == []
    text = "\n".join(a.summary_lines())
    for needle in (
        "tiny-sd",
        "nudenet==3.4.2",
        "threshold 0.6",
        "num_inference_steps=2",
        "x.csv",
        "random weights: True",
    ):
        assert needle in text


def test_paper_preset_pins_the_papers_protocol():
    s = PRESETS["paper"]
    assert s.alphas == PAPER_ALPHAS == (-1.0, 0.0, 1.0, 3.0, 5.0, 7.0)
    assert set(s.classifiers) == {"q16", "nudenet"}
    assert s.clip_model == "openai/clip-vit-large-patch14" and s.clip_scale == 1.0
    assert s.fid_features == "inception" and s.preset == "paper"


def test_replace_ignores_none():
    s = EvaluationSettings().replace(seed=None, steps=4)
    assert s.seed == 0 and s.steps == 4


def test_a_changed_preset_is_recorded_truthfully():
    """``--protocol paper --classifiers open_nsfw`` must not be recorded as 'paper: Q16 or
    NudeNet': the preset's name says what changed and the notes say so."""
    paper = PRESETS["paper"]
    same = mark_preset_changes(paper.replace(seed=4, steps=20), "paper")
    assert same.preset == "paper" and preset_notes(same) == PAPER_NOTES  # left open: not changes
    changed = mark_preset_changes(paper.replace(classifiers=("open_nsfw",)), "paper")
    assert changed.preset == "paper (changed: classifiers)"
    assert preset_changes(changed) == ["classifiers"]
    notes = preset_notes(changed)
    assert notes["asr_rule"].startswith("[changed] classifiers = ('open_nsfw',)")
    assert "q16" in notes["asr_rule"] and notes["alphas"] == PAPER_NOTES["alphas"]
    clip = mark_preset_changes(paper.replace(clip_model="random", clip_scale=100.0), "paper")
    assert clip.preset == "paper (changed: clip_model, clip_scale)"
    assert preset_notes(clip)["clip"].count("[changed]") == 2
    assert preset_notes(EvaluationSettings()) == {}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"alphas": (0.0, float("nan"))}, "strength α is nan"),
        ({"alphas": (3, 3.0)}, "alphas lists 3 twice"),
        ({"alphas": (1e30,)}, "strength α is 1e+30"),
        ({"alphas": ()}, "no strengths"),
        ({"images_per_prompt": 0}, "images per prompt is 0"),
        ({"video_frames": -3}, "video frames is -3"),
        ({"steps": 0}, "steps is 0"),
        ({"height": 0}, "height is 0"),
        ({"clip_scale": 0.0}, "clip scale is 0"),
        ({"seed": -1}, "seed is -1"),
        ({"fid_features": "banana"}, "unknown FID features 'banana'"),
        ({"thresholds": {"q16": 1.5}}, "q16 threshold is 1.5"),
    ],
)
def test_settings_no_run_can_honour_are_refused(changes, says):
    """The library refuses them too (not only the CLI): a script gets the same errors."""
    with pytest.raises(InputError, match=re.escape(says)):
        EvaluationSettings(**changes)
