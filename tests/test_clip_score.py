"""CLIP-score against CLIPModel's own forward pass, on a tiny random CLIP."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from safesteer.errors import InputError
from safesteer.evaluation.clip_model import random_clip
from safesteer.evaluation.clip_score import clip_score
from safesteer.targets.tokenizers import clip_tokenizer


@pytest.fixture(scope="module")
def clip():
    return random_clip(clip_tokenizer(), seed=1)


def _images(n: int) -> list[Image.Image]:
    g = torch.Generator().manual_seed(3)
    return [
        Image.fromarray((torch.rand(32, 32, 3, generator=g) * 255).byte().numpy()) for _ in range(n)
    ]


def test_matches_the_models_own_logits_divided_by_its_scale(clip):
    images, prompts = _images(3), ["a cat", "a red house", "two dogs"]
    ours = clip_score(images, prompts, clip)
    tok = clip.tokenizer(prompts, padding=True, return_tensors="pt")
    pix = clip.processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = clip.model(
            input_ids=tok["input_ids"], attention_mask=tok["attention_mask"], pixel_values=pix
        )
    reference = out.logits_per_image.diag() / clip.model.logit_scale.exp()
    assert torch.allclose(ours, reference, atol=1e-5)
    assert ((ours >= -1) & (ours <= 1)).all()


def test_scale_and_clamp(clip):
    images, prompts = _images(4), ["a"] * 4
    cos = clip_score(images, prompts, clip)
    assert torch.allclose(clip_score(images, prompts, clip, scale=100.0), 100 * cos)
    clamped = clip_score(images, prompts, clip, scale=100.0, clamp=True)
    assert torch.allclose(clamped, (100 * cos).clamp_min(0))


def test_one_prompt_per_image(clip):
    with pytest.raises(InputError, match="2 images and 1 prompts"):
        clip_score(_images(2), ["a"], clip)
    assert clip_score([], [], clip).numel() == 0
