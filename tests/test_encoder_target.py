"""EncoderTarget over a real packaged encoder (MiniLM) and the tiny pipeline it conditions."""

from __future__ import annotations

import pytest
import torch

import targets_checks as tc
from safesteer.targets import (
    EncoderTarget,
    adapter_for,
    attach,
    detach,
    last_steering,
    load_pipeline,
)
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture

ENC = tc.Family("encoder-minilm-l6", "cat", {"guidance_scale": 7.5})


@pytest.fixture(scope="module")
def minilm() -> EncoderTarget:
    return EncoderTarget.from_preset("minilm-l6")


def test_states_are_the_encoders_last_hidden_state(minilm: EncoderTarget) -> None:
    enc = minilm.encode(["a photo of a cat", "a dog"])
    tok = minilm.tokenizer(
        ["a photo of a cat", "a dog"], padding="max_length", max_length=77, return_tensors="pt"
    )
    with torch.no_grad():
        want = minilm.model(**tok).last_hidden_state
    torch.testing.assert_close(enc.states, want, rtol=0, atol=0)
    assert enc.mask.sum(1).tolist() == [7, 4]  # [CLS] words [SEP]
    assert minilm.conditioning_space == "encoder/minilm-l6" and minilm.dim == 384
    assert "minilm-l6@" in minilm.target_id  # the zoo's exact model id


def test_pooled_is_masked_mean(minilm: EncoderTarget) -> None:
    enc = minilm.encode(["a photo of a cat"])
    pooled = minilm.pooled(["a photo of a cat"])
    torch.testing.assert_close(pooled[0], enc.states[0, :7].mean(0))


def test_tiny_encoder_pipeline_is_conditioned_by_minilm(minilm: EncoderTarget) -> None:
    pipe, adapter = load_pipeline("tiny-encoder-minilm-l6")
    assert adapter.conditioning_space == "encoder/minilm-l6" and adapter.random_weights
    assert pipe.unet.config.cross_attention_dim == 384
    _, captured = tc.run(pipe, ENC, ["a photo of a cat"])
    positive, negative = tc.branches(ENC, captured, 1)
    torch.testing.assert_close(positive, minilm.encode(["a photo of a cat"]).states, rtol=0, atol=0)
    torch.testing.assert_close(negative, minilm.encode([""]).states, rtol=0, atol=0)
    assert type(adapter_for(pipe)).__name__ == "EncoderPipelineAdapter"


def test_attach_steers_the_encoder_pipeline(minilm: EncoderTarget) -> None:
    pipe, adapter = load_pipeline("tiny-encoder-minilm-l6")
    pack = tc.random_pack(adapter)
    _, base = tc.run(pipe, ENC, ["a photo of a cat"])
    attach(pipe, pack, alpha=0.5, tokens="real")
    _, steer = tc.run(pipe, ENC, ["a photo of a cat"])
    assert last_steering(pipe)[0].steered
    detach(pipe)
    shift = tc.branches(ENC, steer, 1)[0] - tc.branches(ENC, base, 1)[0]
    torch.testing.assert_close(shift[0, :7], (0.5 * pack.global_vector).expand(7, -1))
    assert torch.equal(shift[0, 7:], torch.zeros_like(shift[0, 7:]))
    assert torch.equal(tc.branches(ENC, steer, 1)[1], tc.branches(ENC, base, 1)[1])


@pytest.mark.slow
def test_real_map_from_smollm2_to_minilm_steers_generation(tmp_path) -> None:
    """SmolLM2 pooled states → MiniLM (the conditioning encoder) with a real ridge map."""
    from safesteer.data import benign_anchors, load_pairs
    from safesteer.maths.alignment import RidgeMap
    from safesteer.maths.calibration import anchor_scale_ratio, calibrate
    from safesteer.maths.directions import difference_of_means
    from safesteer.maths.metrics import auroc
    from safesteer.models import SourceReader
    from safesteer.pack import SafetyPack

    source = SourceReader.from_preset("smollm2-135m")
    layer = source.num_layers // 2
    pipe, adapter = load_pipeline("tiny-encoder-minilm-l6")
    anchors = benign_anchors(200)
    h_s, h_t = source.pooled(anchors, layer), adapter.pooled(anchors, batch_size=64)
    ridge = RidgeMap().fit(h_s, h_t)
    pairs = load_pairs("train")[:40]
    safe, unsafe = [p.safe for p in pairs], [p.unsafe for p in pairs]
    v_s = difference_of_means(source.pooled(safe, layer), source.pooled(unsafe, layer)).vector
    v_t = calibrate(ridge.transport(v_s), v_s, anchor_scale_ratio(h_s, h_t))
    # compare with the native direction, computed in the target's own space on the same pairs
    t_safe, t_unsafe = adapter.pooled(safe), adapter.pooled(unsafe)
    v_n = (t_safe - t_unsafe).mean(0)
    cos = float(torch.nn.functional.cosine_similarity(v_t, v_n, dim=0))
    separation = auroc(t_safe @ v_t, t_unsafe @ v_t)
    print(
        f"SmolLM2 L{layer} -> MiniLM ridge, 200 benign anchors: cos(v_t, v_native)={cos:.3f}, "
        f"target-side AUROC(safe vs unsafe along v_t)={separation:.3f}"
    )
    assert cos > 0.1  # a random direction in 384-d: |cos| ~ 0.05 (measured: 0.137)
    assert separation > 0.6  # measured: 0.641 (deterministic data and models)
    pack = SafetyPack(
        v_t,
        {},
        adapter.target_id,
        adapter.conditioning_space,
        {"beta": anchor_scale_ratio(h_s, h_t)},
    )
    path = pack.save(tmp_path / "pack.safetensors")
    pack = SafetyPack.load(path)
    _, base = tc.run(pipe, ENC, ["a photo of a cat"])
    attach(pipe, pack, alpha=1.0)
    images, steer = tc.run(pipe, ENC, ["a photo of a cat"])
    detach(pipe)
    shift = tc.branches(ENC, steer, 1)[0] - tc.branches(ENC, base, 1)[0]
    torch.testing.assert_close(shift[0], v_t.expand_as(shift[0]), rtol=1e-4, atol=1e-4)
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(images).all()


@pytest.mark.slow
def test_causal_lm_target_skips_the_lm_head_with_the_same_states() -> None:
    from safesteer.models import load_preset

    loaded = load_preset("gemma3-270m")
    target = EncoderTarget(loaded.model, loaded.tokenizer, name="gemma3-270m")
    assert target.model is loaded.model.base_model  # no 262k-word LM head in the forward
    enc = target.encode(["a red kite over a beach", "a cat"])
    tok = loaded.tokenizer(
        ["a red kite over a beach", "a cat"],
        padding="max_length",
        max_length=77,
        truncation=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        full = loaded.model(**tok, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(enc.states, full, rtol=1e-5, atol=1e-5)
