"""Tiny random-weight pipelines of the real diffusers classes, and their offline tokenizers."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.targets import load_pipeline
from safesteer.targets.tiny import TINY_FAMILIES, tiny_call_defaults, tiny_pipeline
from safesteer.targets.tokenizers import clip_tokenizer, llama_tokenizer, t5_tokenizer
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture

CLASSES = {
    "sd": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
    "qwen_image": "QwenImagePipeline",
    "zimage": "ZImagePipeline",
    "wan": "WanPipeline",
    "cogvideox": "CogVideoXPipeline",
    "sana": "SanaPipeline",
}


def test_clip_tokenizer_gives_openai_ids() -> None:
    tok = clip_tokenizer()
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tok) == 49408 and tok.model_max_length == 77


def test_t5_tokenizer_is_deterministic_and_lossless() -> None:
    tok = t5_tokenizer()
    ids = tok("a photo of a cat").input_ids
    assert ids[-1] == 1 and 2 not in ids  # ends with </s>, no unknown pieces
    assert tok.decode(ids, skip_special_tokens=True) == "a photo of a cat"
    assert len(tok) == 1100  # 1000 pieces + 100 sentinels, as T5
    assert t5_tokenizer.__wrapped__()("a photo of a cat").input_ids == ids  # reload from cache


def test_llama_tokenizer_is_smollm2() -> None:
    tok = llama_tokenizer()
    assert tok("a photo of a cat").input_ids == [81, 8003, 282, 253, 2644]
    assert tok.convert_tokens_to_ids("<|im_start|>") == 1 and len(tok) == 49152


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_each_family_builds_the_real_class_and_runs(family: str) -> None:
    pipe = tiny_pipeline(family)
    assert type(pipe).__name__ == CLASSES[family]
    out = pipe(
        "a photo of a cat",
        num_inference_steps=2,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
        **tiny_call_defaults(family),
    )
    images = out.images if hasattr(out, "images") else out.frames
    assert torch.isfinite(images).all() and images.float().std() > 0


def test_same_seed_same_weights_other_seed_differs() -> None:
    a, b, c = tiny_pipeline("sd", seed=0), tiny_pipeline("sd", seed=0), tiny_pipeline("sd", seed=1)
    wa, wb, wc = (p.unet.conv_in.weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_load_pipeline_marks_random_weights() -> None:
    _, adapter = load_pipeline("tiny-wan")
    assert adapter.random_weights and adapter.target_id == "tiny-wan"
    assert adapter.max_sequence_length == tiny_call_defaults("wan")["max_sequence_length"]


def test_unknown_names_are_refused() -> None:
    with pytest.raises(InputError, match="tiny-nope"):
        load_pipeline("tiny-nope")
    with pytest.raises(InputError, match="unknown tiny pipeline family"):
        tiny_pipeline("nope")


def test_load_pipeline_without_a_model_says_how_to_fix(tmp_path) -> None:
    from safesteer.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="offline") as info:
        load_pipeline(str(tmp_path))
    assert str(tmp_path) in str(info.value)
