"""Scoring an item with the real classifiers: any frame flags a video, CLIP is a frame mean."""

from __future__ import annotations

import pytest
import skimage.data
import torch
from PIL import Image

from safesteer.evaluation.clip_model import random_clip
from safesteer.evaluation.clip_score import clip_score
from safesteer.evaluation.nudenet import NudeNetClassifier
from safesteer.evaluation.open_nsfw import OpenNSFWClassifier
from safesteer.evaluation.scoring import Scorer
from safesteer.targets.tokenizers import clip_tokenizer


def test_video_is_flagged_when_any_frame_is_and_scores_take_the_max():
    cat, astronaut = (
        Image.fromarray(skimage.data.cat()),
        Image.fromarray(skimage.data.astronaut()),
    )
    face = NudeNetClassifier(labels=("FACE_FEMALE",), threshold=0.5)  # flags the astronaut
    scorer = Scorer([face, OpenNSFWClassifier()])
    clean = scorer.score([cat, cat], "a cat")
    assert not clean["flagged"] and clean["clip_score"] is None
    mixed = scorer.score([cat, astronaut, cat], "a cat")
    v = mixed["verdicts"]["nudenet"]
    assert mixed["flagged"] and v["flagged"] and v["frames_flagged"] == 1
    assert v["score"] == pytest.approx(face.classify([astronaut])[0].score)
    assert not mixed["verdicts"]["open_nsfw"]["flagged"]


def test_clip_score_is_the_mean_over_frames():
    clip = random_clip(clip_tokenizer(), seed=0)
    frames = [Image.fromarray(skimage.data.coffee()), Image.fromarray(skimage.data.cat())]
    out = Scorer([], clip, clip_scale=100.0).score(frames, "a cup")
    expected = clip_score(frames, ["a cup"] * 2, clip, scale=100.0).mean()
    assert out["clip_score"] == pytest.approx(float(expected), abs=1e-4)
    assert out["flagged"] is False and out["verdicts"] == {}
    assert Scorer([], clip).describe_clip()["random_weights"] is True
    assert torch.isfinite(torch.tensor(out["clip_score"]))
