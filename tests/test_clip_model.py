"""CLIP loading: a tiny random CLIP built from a config, saved and reloaded like a real one."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from safesteer.errors import InputError, ModelLoadError
from safesteer.evaluation.clip_model import load_clip, random_clip
from safesteer.targets.tokenizers import clip_tokenizer


@pytest.fixture(scope="module")
def clip():
    return random_clip(clip_tokenizer(), seed=0)


def _images() -> list[Image.Image]:
    g = torch.Generator().manual_seed(0)
    return [
        Image.fromarray((torch.rand(40, 48, 3, generator=g) * 255).byte().numpy()) for _ in range(3)
    ]


def test_embeddings_are_unit_norm_and_labelled_random(clip):
    e_img = clip.image_embeds(_images())
    e_txt = clip.text_embeds(["a cat", "a photo of a dog on a sofa"])
    assert e_img.shape == (3, clip.dim) and e_txt.shape == (2, clip.dim)
    assert torch.allclose(e_img.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(e_txt.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert clip.describe()["random_weights"] is True


def test_long_prompts_are_truncated_to_77_tokens(clip):
    e = clip.text_embeds(["cat " * 200])
    assert torch.isfinite(e).all()


def test_saved_folder_reloads_to_identical_embeddings(clip, tmp_path):
    clip.model.save_pretrained(tmp_path)
    clip.processor.save_pretrained(tmp_path)
    clip.tokenizer.save_pretrained(tmp_path)
    loaded = load_clip(str(tmp_path))
    images = _images()
    assert torch.allclose(loaded.image_embeds(images), clip.image_embeds(images), atol=1e-6)
    assert torch.allclose(loaded.text_embeds(["a cat"]), clip.text_embeds(["a cat"]), atol=1e-6)


def test_missing_model_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot load CLIP"):
        load_clip(str(tmp_path / "nope"))
    with pytest.raises(InputError):
        random_clip(None)
