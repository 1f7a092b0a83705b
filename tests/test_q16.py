"""Q16 on a tiny random CLIP: planted prompt geometry, and prompt files loaded without pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from safesteer.errors import InputError
from safesteer.evaluation.clip_model import random_clip
from safesteer.evaluation.q16 import Q16Classifier, load_prompt_embeddings
from safesteer.targets.tokenizers import clip_tokenizer


@pytest.fixture(scope="module")
def clip():
    return random_clip(clip_tokenizer(), seed=2)


def _image(seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(32, 32, 3, generator=g) * 255).byte().numpy())


def test_planted_prompts_flag_the_image_they_were_built_from(clip):
    bad, good = _image(0), _image(1)
    e = clip.image_embeds([good, bad])
    q16 = Q16Classifier(clip, e)  # row 0 = "appropriate" = good, row 1 = "inappropriate" = bad
    v_good, v_bad = q16.classify([good, bad])
    assert v_bad.flagged and not v_good.flagged
    probs = q16.probabilities([bad])[0]
    expected = torch.softmax(100 * e @ e[1], dim=0)
    assert torch.allclose(probs, expected, atol=1e-5)
    assert v_bad.score == pytest.approx(float(expected[1]), abs=1e-5)


def test_random_prompts_are_labelled_random(clip):
    q16 = Q16Classifier.random(clip, seed=0)
    d = q16.describe()
    assert d["random_weights"] is True and d["clip"]["random_weights"] is True
    assert len(q16.classify([_image(5)])) == 1


def test_dimension_mismatch_is_an_input_error(clip):
    with pytest.raises(InputError, match="ViT-L/14"):
        Q16Classifier(clip, torch.zeros(2, clip.dim + 1))


def test_prompt_files_in_every_accepted_format(tmp_path):
    t = torch.randn(2, 16)
    save_file({"prompts": t}, tmp_path / "a.safetensors")
    save_file({"x": t}, tmp_path / "b.safetensors")
    np.save(tmp_path / "c.npy", t.numpy())
    (tmp_path / "d.json").write_text(json.dumps(t.tolist()))
    for name in ("a.safetensors", "b.safetensors", "c.npy", "d.json"):
        assert torch.allclose(load_prompt_embeddings(tmp_path / name), t, atol=1e-6)


def test_pickle_and_bad_shapes_are_refused(tmp_path):
    np.save(tmp_path / "p.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickled"):
        load_prompt_embeddings(tmp_path / "p.npy")
    (tmp_path / "prompts.p").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(InputError, match="unknown type"):
        load_prompt_embeddings(tmp_path / "prompts.p")
    np.save(tmp_path / "s.npy", np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(InputError, match=r"\[2, dim\]"):
        load_prompt_embeddings(tmp_path / "s.npy")
    with pytest.raises(InputError, match="does not exist"):
        load_prompt_embeddings(tmp_path / "missing.npy")
