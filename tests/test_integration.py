"""The diffusers integration: steering lives on the denoiser (docs/integration.md).

Checked on tiny random-weight pipelines of the real diffusers classes: ``from_pipe`` copies and
variant pipelines are steered and detached together; text and ``prompt_embeds`` are steered
exactly once with the same gate decision; a steered denoiser refuses to run outside an observed
call; ``save_pretrained`` refuses while steered and ``safesteer.save_pretrained`` reloads
steered; model CPU offload keeps the steering; ``attach`` defaults to the pack's α.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import targets_checks as tc
from safesteer.errors import InputError, SteeringError
from safesteer.targets import attach, detach, is_steered, last_steering, steered
from safesteer.targets.tiny import tiny_call_defaults
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture
from test_attach import BENIGN, PLANTED, gated_pack

SD = tc.Family("sd", "cat", {"guidance_scale": 7.5})


def _conditioning(pipe: Any, family: str, **call: Any) -> list[Any]:
    """What the denoiser received at each call of a 2-step run (after the steering hook)."""
    seen: list[Any] = []
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    arg = 2 if family == "zimage" else None

    def capture(module: Any, args: Any, kwargs: Any) -> None:
        if arg is not None:
            seen.append([t.clone() for t in args[arg]])
        else:
            seen.append(kwargs["encoder_hidden_states"].clone())

    handle = denoiser.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        pipe(
            num_inference_steps=2,
            output_type="pt",
            generator=torch.Generator().manual_seed(0),
            **{**tiny_call_defaults(family), **call},
        )
    finally:
        handle.remove()
    return seen


def _images(pipe: Any, family: str, **call: Any) -> torch.Tensor:
    out = pipe(
        num_inference_steps=2,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
        **{**tiny_call_defaults(family), **call},
    )
    return out.images


def test_from_pipe_and_variant_pipelines_share_the_steering() -> None:
    from diffusers import AutoPipelineForImage2Image, FluxImg2ImgPipeline, FluxInpaintPipeline

    pipe, adapter = tc.make("flux")
    pack = tc.random_pack(adapter)
    image = torch.rand(1, 3, 32, 32)
    i2i = FluxImg2ImgPipeline.from_pipe(pipe)
    base = _conditioning(i2i, "flux", prompt="a cat", image=image, strength=0.9)[0]
    attach(pipe, pack, alpha=2.0)
    auto = AutoPipelineForImage2Image.from_pipe(pipe)  # made after attach: shares the denoiser
    inpaint = FluxInpaintPipeline(**pipe.components)
    assert type(auto).__name__ == "FluxImg2ImgPipeline"
    assert all(is_steered(p) for p in (i2i, auto, inpaint))
    for variant in (i2i, auto):
        got = _conditioning(variant, "flux", prompt="a cat", image=image, strength=0.9)[0]
        torch.testing.assert_close(got - base, 2.0 * pack.global_vector.expand_as(base))
        assert last_steering(variant)[0].prompt == "a cat"
    detach(auto)  # detaching any of them detaches the shared denoiser
    assert not any(is_steered(p) for p in (pipe, i2i, auto, inpaint))
    again = _conditioning(i2i, "flux", prompt="a cat", image=image, strength=0.9)[0]
    assert torch.equal(again, base)


def test_a_variant_pipeline_can_be_attached_directly() -> None:
    from diffusers import FluxImg2ImgPipeline

    from safesteer.targets import adapter_for

    pipe, adapter = tc.make("flux")
    i2i = FluxImg2ImgPipeline(**pipe.components)
    assert type(adapter_for(i2i)).__name__ == "FluxAdapter"  # by components, not class name
    pack = tc.random_pack(adapter)
    image = torch.rand(1, 3, 32, 32)
    base = _conditioning(i2i, "flux", prompt="a cat", image=image, strength=0.9)[0]
    with steered(i2i, pack, alpha=1.5):
        got = _conditioning(i2i, "flux", prompt="a cat", image=image, strength=0.9)[0]
    torch.testing.assert_close(got - base, 1.5 * pack.global_vector.expand_as(base))


def test_embeddings_from_encode_prompt_are_steered_once_with_the_same_gate_decision() -> None:
    pipe, adapter = tc.make("sd")
    pack = gated_pack(adapter)
    prompts = [PLANTED, BENIGN[0]]
    attach(pipe, pack, alpha=2.0, gated=True)
    by_text = _conditioning(pipe, "sd", prompt=prompts, guidance_scale=7.5)[0]
    text_record = last_steering(pipe)
    pos, neg = pipe.encode_prompt(prompts, "cpu", 1, True)
    plain = pos.clone()
    by_embeds = _conditioning(
        pipe, "sd", prompt_embeds=pos, negative_prompt_embeds=neg, guidance_scale=7.5
    )[0]
    embeds_record = last_steering(pipe)
    detach(pipe)
    assert torch.equal(pos, plain), "encode_prompt's output is never steered"
    assert torch.equal(by_embeds, by_text)  # bit for bit: steered once, same rows
    assert [r.steered for r in text_record] == [True, False]
    assert embeds_record == text_record  # same scores, same mask ("real tokens"), same prompts
    assert text_record[0].gate_mask == "real tokens"


def test_foreign_embeddings_are_steered_once_and_say_how_the_gate_pooled() -> None:
    pipe, adapter = tc.make("sd")
    pack = tc.random_pack(adapter)
    pos, neg = pipe.encode_prompt(["a cat"], "cpu", 1, True)
    base = _conditioning(
        pipe, "sd", prompt_embeds=pos.clone(), negative_prompt_embeds=neg, guidance_scale=7.5
    )[0]
    attach(pipe, pack, alpha=1.0)
    got = _conditioning(
        pipe, "sd", prompt_embeds=pos.clone(), negative_prompt_embeds=neg, guidance_scale=7.5
    )[0]
    assert last_steering(pipe)[0].prompt is None
    detach(pipe)
    shift = got - base
    torch.testing.assert_close(shift[1], pack.global_vector.expand_as(shift[1]))  # once
    assert torch.equal(shift[0], torch.zeros_like(shift[0]))  # negative row untouched
    gated = gated_pack(adapter)
    with steered(pipe, gated, alpha=1.0, gated=True):
        _conditioning(pipe, "sd", prompt_embeds=pos.clone(), negative_prompt_embeds=neg)
        assert last_steering(pipe)[0].gate_mask == "all positions"


def test_list_family_embeddings_without_an_encode_are_steered_once() -> None:
    pipe, adapter = tc.make("zimage")
    pack = tc.random_pack(adapter)
    embeds = [t.clone() for t in adapter.encode(["a cat"]).states[:, :5]]  # one [5, D] prompt
    base = _conditioning(pipe, "zimage", prompt_embeds=list(embeds), guidance_scale=0.0)[0]
    with steered(pipe, pack, alpha=2.0):
        got = _conditioning(pipe, "zimage", prompt_embeds=list(embeds), guidance_scale=0.0)[0]
    torch.testing.assert_close(got[0] - base[0], 2.0 * pack.global_vector.expand_as(base[0]))


def test_a_steered_denoiser_refuses_to_run_outside_an_observed_call() -> None:
    pipe, adapter = tc.make("sd")
    attach(pipe, tc.random_pack(adapter))
    latents = torch.zeros(1, 4, 4, 4)
    states = adapter.encode(["a cat"]).states
    with pytest.raises(SteeringError, match="outside a pipeline call"):
        pipe.unet(latents, 1, encoder_hidden_states=states)
    detach(pipe)
    pipe.unet(latents, 1, encoder_hidden_states=states)  # plain again


def test_a_pipeline_that_encodes_differently_is_refused() -> None:
    pipe, adapter = tc.make("qwen_image")
    attach(pipe, tc.random_pack(adapter))
    other = type(pipe)(**pipe.components)
    other.prompt_template_encode_start_idx = 64  # as Qwen-Image-Edit's template
    with pytest.raises(SteeringError, match="prompt_template_encode_start_idx 64 vs 34"):
        _images(other, "qwen_image", prompt="a cat")
    detach(pipe)


def test_save_pretrained_refuses_while_steered_and_writes_nothing(tmp_path: Path) -> None:
    pipe, adapter = tc.make("sd")
    attach(pipe, tc.random_pack(adapter))
    with pytest.raises(SteeringError, match=r"safesteer\.save_pretrained"):
        pipe.save_pretrained(tmp_path / "pipe")
    with pytest.raises(SteeringError, match="unsteered"):
        pipe.unet.save_pretrained(tmp_path / "unet")
    assert not (tmp_path / "pipe").exists() and not (tmp_path / "unet").exists()
    detach(pipe)
    assert "save_pretrained" not in pipe.unet.__dict__
    pipe.save_pretrained(tmp_path / "plain")  # allowed again once detached
    assert (tmp_path / "plain" / "model_index.json").is_file()


def test_safesteer_save_pretrained_reloads_steered(tmp_path: Path) -> None:
    from diffusers import DiffusionPipeline

    import safesteer

    pipe, adapter = tc.make("flux")
    pack = tc.random_pack(adapter)
    attach(pipe, pack, alpha=2.5, tokens="real")
    folder = safesteer.save_pretrained(pipe, tmp_path / "steered")
    detach(pipe)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["transformer"] == ["safesteer", "SteeredDenoiser"]
    record = json.loads((folder / "transformer" / "safesteer" / "steering.json").read_text())
    assert record["settings"]["alpha"] == 2.5 and record["settings"]["tokens"] == "real"
    reloaded = DiffusionPipeline.from_pretrained(folder)
    assert is_steered(reloaded)
    assert reloaded.config["transformer"] == ("diffusers", "FluxTransformer2DModel")
    steered_images = _images(reloaded, "flux", prompt="a cat")
    detach(reloaded)
    plain = _images(reloaded, "flux", prompt="a cat")
    attach(reloaded, pack, alpha=2.5, tokens="real")  # the same steering, attached by hand
    by_hand = _images(reloaded, "flux", prompt="a cat")
    detach(reloaded)
    assert torch.equal(steered_images, by_hand) and not torch.equal(steered_images, plain)


def test_plain_diffusers_refuses_a_steered_folder(tmp_path: Path) -> None:
    import safesteer

    pipe, adapter = tc.make("sd")
    with steered(pipe, tc.random_pack(adapter), alpha=1.0):
        folder = safesteer.save_pretrained(pipe, tmp_path / "steered")
    code = (
        "from diffusers import DiffusionPipeline\n"
        f"DiffusionPipeline.from_pretrained({str(folder)!r})\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode != 0
    assert "import safesteer before calling `from_pretrained`" in run.stderr


def test_model_cpu_offload_keeps_the_steering_on_every_call() -> None:
    pipe, adapter = tc.make("sd")
    pack = tc.random_pack(adapter)
    base = _conditioning(pipe, "sd", prompt="a cat")[0]
    pipe.enable_model_cpu_offload(device="cpu")  # before attach: accelerate wraps forward first
    attach(pipe, pack, alpha=1.0)
    for _ in range(2):  # the 2nd call runs after accelerate restored its saved forward
        got = _conditioning(pipe, "sd", prompt="a cat")[0]
        torch.testing.assert_close(got[1:] - base[1:], pack.global_vector.expand_as(base[1:]))
    detach(pipe)
    pipe.remove_all_hooks()


def test_attach_defaults_to_the_packs_calibrated_alpha() -> None:
    pipe, adapter = tc.make("sd")
    pack = tc.random_pack(adapter)
    pack.calibration["alpha_default"] = 4.0
    attach(pipe, pack)
    _conditioning(pipe, "sd", prompt="a cat")
    assert last_steering(pipe)[0].alpha == 4.0
    detach(pipe)
    del pack.calibration["alpha_default"]
    with steered(pipe, pack):  # no alpha anywhere: the paper's 5
        _conditioning(pipe, "sd", prompt="a cat")
        assert last_steering(pipe)[0].alpha == 5.0
    with pytest.raises(InputError, match="not steered"):
        last_steering(pipe)


def test_detach_leaves_no_class_patches_behind() -> None:
    from safesteer.targets import hook

    pipe, adapter = tc.make("sd")
    before = type(pipe).__dict__["__call__"]
    attach(pipe, tc.random_pack(adapter))
    assert type(pipe).__dict__["__call__"] is not before
    detach(pipe)
    assert type(pipe).__dict__["__call__"] is before and not hook._PATCHED
