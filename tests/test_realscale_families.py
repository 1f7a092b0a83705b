"""Every family in bf16 and fp16, and sequence-length parity: the states a pack was fitted on
are the states the denoiser receives (issue 12 §2, §5). Tiny random-weight pipelines of the
real diffusers classes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import targets_checks as tc
from safesteer.errors import PackError
from safesteer.targets import adapter_for, attach, detach, load_pipeline
from safesteer.targets.encoding import encoding_spec
from safesteer.targets.tiny import tiny_call_defaults
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture
from test_target_families import FAMILIES

NAMES = list(FAMILIES)
WITH_LENGTH = [n for n in NAMES if "max_sequence_length" in tiny_call_defaults(n)]


def _out(pipe, family: tc.Family, **extra):
    images, captured = tc.run(pipe, family, tc.PROMPTS, **extra)
    return images, captured


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", NAMES)
def test_every_family_in_half_precision_attach_steer_detach(name, dtype):
    family = FAMILIES[name][0]
    pipe, adapter = load_pipeline(f"tiny-{name}", dtype=dtype)
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    assert denoiser.dtype == dtype
    base, _ = _out(pipe, family)
    assert torch.isfinite(base.float()).all()  # (SDXL upcasts its VAE in fp16)
    pack = tc.random_pack(adapter)
    attach(pipe, pack, alpha=0.0)
    same, _ = _out(pipe, family)
    detach(pipe)
    assert torch.equal(base, same)  # α = 0: bit-identical in half precision too
    attach(pipe, pack, alpha=4.0)
    steered, captured = _out(pipe, family)
    detach(pipe)
    assert not torch.equal(base, steered)
    positive, _ = tc.branches(family, captured, len(tc.PROMPTS))
    assert positive.dtype == dtype  # the vector is added in the pipeline's dtype
    again, _ = _out(pipe, family)
    assert torch.equal(base, again)  # detach restores the pipeline exactly


def _plain_call(pipe, family: tc.Family):
    """Like targets_checks.run, without max_sequence_length in the call."""
    captured: list = []
    denoiser = getattr(pipe, "transformer", None) or pipe.unet

    def hook(module, args, kwargs):
        value = args[family.arg] if family.arg is not None else kwargs["encoder_hidden_states"]
        captured.append([t.clone() for t in value] if family.arg is not None else value.clone())

    handle = denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    defaults = {k: v for k, v in tiny_call_defaults(family.name).items()}
    defaults.pop("max_sequence_length")
    try:
        pipe(prompt=list(tc.PROMPTS), num_inference_steps=2, output_type="pt", **defaults)
    finally:
        handle.remove()
    return None, captured


def _packed(adapter, **encoding_changes):
    pack = tc.random_pack(adapter)
    return dataclasses.replace(pack, encoding={**encoding_spec(adapter), **encoding_changes})


@pytest.mark.parametrize("name", WITH_LENGTH)
def test_a_call_without_a_length_encodes_at_the_packs_length(name):
    family = FAMILIES[name][0]
    pipe, adapter = load_pipeline(f"tiny-{name}")
    length = tiny_call_defaults(name)["max_sequence_length"]
    assert adapter.max_sequence_length == length
    fitted_on = adapter.encode(list(tc.PROMPTS))  # what a pack built on this pipeline reads
    attach(pipe, _packed(adapter), alpha=0.0)
    # the user's plain call: no max_sequence_length, so __call__ passes its own default
    _, captured = _plain_call(pipe, family)
    detach(pipe)
    positive, _ = tc.branches(family, captured, len(tc.PROMPTS))
    assert positive.shape == fitted_on.states.shape
    torch.testing.assert_close(positive.float(), fitted_on.states, rtol=0, atol=0)


@pytest.mark.parametrize("name", WITH_LENGTH)
def test_a_call_at_another_length_is_refused_naming_both(name):
    family = FAMILIES[name][0]
    pipe, adapter = load_pipeline(f"tiny-{name}")
    attach(pipe, _packed(adapter), alpha=1.0)
    length = adapter.max_sequence_length
    try:
        with pytest.raises(PackError, match=rf"max_sequence_length=24.*{length}"):
            tc.run(pipe, family, tc.PROMPTS, max_sequence_length=24)
    finally:
        detach(pipe)


@pytest.mark.parametrize("name", WITH_LENGTH)
def test_attach_fills_in_or_refuses_the_adapters_length(name):
    pipe, adapter = load_pipeline(f"tiny-{name}")
    pack = _packed(adapter, max_sequence_length=12)
    attach(pipe, pack)  # no adapter given: it takes the pack's length
    detach(pipe)
    other = adapter_for(pipe, max_sequence_length=20)
    with pytest.raises(PackError, match=r"max_sequence_length=12.*max_sequence_length=20"):
        attach(pipe, pack, adapter=other)
    assert "_safesteer_state" not in pipe.__dict__


def test_flux_schnell_is_told_from_dev_by_guidance_embeds():
    from safesteer.targets.flux import FluxAdapter

    pipe, _ = load_pipeline("tiny-flux")
    pipe.transformer.register_to_config(guidance_embeds=False)  # schnell
    assert FluxAdapter(pipe).max_sequence_length == 256
    pipe.transformer.register_to_config(guidance_embeds=True)  # dev
    assert FluxAdapter(pipe).max_sequence_length == 512


def test_other_templates_and_text_encoders_are_refused():
    pipe, adapter = load_pipeline("tiny-qwen_image")
    with pytest.raises(PackError, match="prompt template"):
        attach(pipe, _packed(adapter, template_sha256="sha256:0000"))
    pipe, adapter = load_pipeline("tiny-flux")
    spec = encoding_spec(adapter)
    wrong = {**spec["text_encoders"], "text_encoder_2": "T5EncoderModel:sha256:other"}
    with pytest.raises(PackError, match="other text encoders"):
        attach(pipe, _packed(adapter, text_encoders=wrong))


def test_packs_without_an_encoding_record_still_attach(tmp_path):
    from safesteer.pack import SafetyPack

    pipe, adapter = load_pipeline("tiny-flux")
    pack = tc.random_pack(adapter)  # no encoding record, as packs written before it
    path = pack.save(tmp_path / "old.safetensors")
    loaded = SafetyPack.load(path)
    assert loaded.encoding == {}
    attach(pipe, loaded, alpha=1.0)
    detach(pipe)
    recorded = _packed(adapter)
    assert SafetyPack.load(recorded.save(tmp_path / "new.safetensors")).encoding == (
        recorded.encoding
    )


def test_zimage_and_qwen_masks_are_the_ones_the_denoiser_gets():
    # Qwen-Image: prompt_embeds_mask; Z-Image: per-prompt lists (the mask is their lengths)
    for name in ("qwen_image", "zimage"):
        family = FAMILIES[name][0]
        pipe, adapter = load_pipeline(f"tiny-{name}")
        enc = adapter.encode(list(tc.PROMPTS))
        _, captured = tc.run(pipe, family, tc.PROMPTS)
        positive, _ = tc.branches(family, captured, len(tc.PROMPTS))
        lengths = enc.mask.sum(dim=1)
        assert lengths[0] < lengths[1]
        if name == "zimage":
            assert [int(t.shape[0]) for t in captured[0][:2]] == lengths.tolist()
        torch.testing.assert_close(positive.float(), enc.states, rtol=0, atol=0)
