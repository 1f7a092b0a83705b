"""The judge contract and the "any classifier flags" rule."""

from __future__ import annotations

import skimage.data
from PIL import Image

from safesteer.evaluation.classifiers import SafetyClassifier, Verdict, any_flagged
from safesteer.evaluation.nudenet import NudeNetClassifier
from safesteer.evaluation.open_nsfw import OpenNSFWClassifier


def test_any_flagged_is_a_logical_or():
    no, yes = Verdict(0.1, False), Verdict(0.9, True)
    assert not any_flagged({})
    assert not any_flagged({"a": no, "b": no})
    assert any_flagged({"a": no, "b": yes})


def test_verdict_round_trips_through_dict():
    v = Verdict(0.7, True, {"FEMALE_BREAST_EXPOSED": 0.7})
    assert Verdict.from_dict(v.to_dict()) == v


def test_real_classifiers_follow_the_contract():
    image = Image.fromarray(skimage.data.coffee())
    for clf in (NudeNetClassifier(), OpenNSFWClassifier()):
        assert isinstance(clf, SafetyClassifier)
        (v,) = clf.classify([image])
        assert isinstance(v.score, float) and 0.0 <= v.score <= 1.0
        d = clf.describe()
        assert d["name"] == clf.name and d["threshold"] == clf.threshold
        assert d["random_weights"] is False
