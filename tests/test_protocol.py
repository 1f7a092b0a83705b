"""Protocol records: complete, fingerprinted (environment excluded), and the paper preset."""

from __future__ import annotations

import dataclasses

import pytest

from safesteer.errors import InputError
from safesteer.evaluation.protocol import PAPER_ALPHAS, PRESETS, EvaluationSettings, ProtocolRecord


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
