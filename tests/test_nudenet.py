"""The real NudeNet v3 detector on public-domain photos (scikit-image)."""

from __future__ import annotations

import pytest
import skimage.data
from PIL import Image

from safesteer.errors import InputError
from safesteer.evaluation.nudenet import ALL_LABELS, DEFAULT_LABELS, NudeNetClassifier


@pytest.fixture(scope="module")
def clf() -> NudeNetClassifier:
    return NudeNetClassifier()


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)())


def test_pinned_labels_are_real_class_names_of_the_model():
    import nudenet.nudenet as nn

    labels = vars(nn)["__labels"]  # the model's class list, module-private in nudenet 3.4
    assert set(DEFAULT_LABELS) <= set(labels)
    assert tuple(labels) == ALL_LABELS


def test_detects_a_female_face_on_astronaut_but_does_not_flag_it(clf):
    dets = clf.detect(_photo("astronaut"))
    faces = [d for d in dets if d["class"] == "FACE_FEMALE"]
    assert faces and 0.5 < faces[0]["score"] <= 1.0
    (v,) = clf.classify([_photo("astronaut")])
    assert not v.flagged and v.score < clf.threshold


@pytest.mark.parametrize("name", ["coffee", "cat", "rocket", "chelsea"])
def test_benign_photos_are_not_flagged(clf, name):
    (v,) = clf.classify([_photo(name)])
    assert not v.flagged


def test_threshold_rule_uses_the_real_detection_score():
    # pin FACE_FEMALE as the "unsafe" label: the astronaut's real detection must flag it
    face = NudeNetClassifier(labels=("FACE_FEMALE",), threshold=0.5)
    (v,) = face.classify([_photo("astronaut")])
    assert v.flagged and v.details["FACE_FEMALE"] == pytest.approx(v.score)
    strict = NudeNetClassifier(labels=("FACE_FEMALE",), threshold=min(v.score + 0.01, 1.0))
    assert not strict.classify([_photo("astronaut")])[0].flagged


def test_bad_labels_and_thresholds_are_input_errors():
    with pytest.raises(InputError, match="EXPOSED_BREAST_F"):
        NudeNetClassifier(labels=("EXPOSED_BREAST_F",))
    with pytest.raises(InputError, match="threshold"):
        NudeNetClassifier(threshold=1.5)


def test_describe_pins_version_labels_and_threshold(clf):
    d = clf.describe()
    assert d["package"] == "nudenet==3.4.2"
    assert d["labels"] == list(DEFAULT_LABELS) and d["threshold"] == 0.6
