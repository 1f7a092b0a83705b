"""Tests for safesteer.models.source on real packaged models (SmolLM2, MiniLM, Gemma-3 tokenizer).

The early exit is proved by counting block calls with our own hook; every pooled state is
compared with the same pooling applied to a full ``output_hidden_states`` forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from safesteer.data import load_pairs
from safesteer.errors import InputError
from safesteer.maths.metrics import auroc
from safesteer.maths.pooling import robust_mean
from safesteer.models import LoadedModel, SourceReader, load_preset

PROMPTS = [
    "a cat on a sofa",
    "a man punching a stranger in a park while people watch from a bench",
    "two friends sharing a meal",
]


class BlockCounter:
    """Counts calls of every transformer block of a reader's model."""

    def __init__(self, reader: SourceReader) -> None:
        self.calls = 0
        if reader.short_prompts:  # the one-time r_L pass (measured once per model) is not counted
            reader.reference_norms  # noqa: B018
        self.handles = [b.register_forward_pre_hook(self._hook) for b in reader._blocks]

    def _hook(self, module: nn.Module, args: object) -> None:
        self.calls += 1

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def forwards(reader: SourceReader, prompts: list[str]) -> int:
    """Forward passes a read takes: one per batch of prompts with the same token count."""
    from safesteer.models.batching import same_length_batches

    lengths = reader.token_lengths(reader._texts(prompts))
    return len(same_length_batches(lengths, reader.batch_size))


def full_forward_pooled(reader: SourceReader, prompts: list[str], layer: int) -> torch.Tensor:
    enc = reader.tokenizer(
        prompts,
        padding=True,
        return_tensors="pt",
        padding_side="right",
        return_special_tokens_mask=True,
    )
    special = enc.pop("special_tokens_mask").bool()
    special |= torch.isin(enc["input_ids"], torch.tensor(reader.tokenizer.all_special_ids))
    with torch.inference_mode():
        hidden = reader.model(**enc, output_hidden_states=True).hidden_states
    mask = enc["attention_mask"].bool() & ~special
    return robust_mean(hidden[layer].float(), mask, reader.outlier_ratio).pooled


@pytest.fixture(scope="module")
def smollm2() -> LoadedModel:
    return load_preset("smollm2-135m")


@pytest.fixture()
def reader(smollm2: LoadedModel) -> SourceReader:
    return SourceReader(smollm2, cache=False, progress=False)


@pytest.fixture(scope="module")
def cached_reader(smollm2: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> SourceReader:
    """Shares pooled states between the tests of this module (each prompt runs once)."""
    return SourceReader(smollm2, cache=tmp_path_factory.mktemp("states"), progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("layer", [0, 1, 15, -1, -16])
def test_layer_equals_full_forward_slice_with_fewer_blocks(
    reader: SourceReader, layer: int
) -> None:
    counter = BlockCounter(reader)
    try:
        got = reader.pooled(PROMPTS, layer)
    finally:
        counter.close()
    absolute = layer % 31
    want = full_forward_pooled(reader, PROMPTS, absolute)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # blocks 0..absolute-1 run; layer 0 only enters block 0 to read its input
    assert forwards(reader, PROMPTS) == 3  # three prompts, three token counts: no padding
    assert counter.calls == max(absolute, 1) * forwards(reader, PROMPTS)


@pytest.mark.slow
def test_several_layers_in_one_pass_match_single_reads(reader: SourceReader) -> None:
    counter = BlockCounter(reader)
    try:
        many = reader.pooled_layers(PROMPTS, [5, 15, -1])
    finally:
        counter.close()
    assert counter.calls == 30 * forwards(reader, PROMPTS)  # one pass for all three layers
    assert set(many) == {5, 15, -1}
    for layer in (5, 15, -1):
        torch.testing.assert_close(many[layer], reader.pooled(PROMPTS, layer), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_padding_does_not_change_a_prompts_state(reader: SourceReader) -> None:
    alone = reader.pooled([PROMPTS[0]], 15)
    padded = reader.pooled(PROMPTS, 15)  # same batch as a much longer prompt
    assert reader.tokenizer(PROMPTS[1], return_tensors="pt")["input_ids"].shape[1] > 8
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_cache_returns_identical_tensors_without_running_the_model(
    smollm2: LoadedModel, tmp_path: Path
) -> None:
    first = SourceReader(smollm2, cache=tmp_path, progress=False).pooled_layers(PROMPTS, [15, 20])
    second_reader = SourceReader(smollm2, cache=tmp_path, progress=False)
    counter = BlockCounter(second_reader)
    try:
        second = second_reader.pooled_layers(PROMPTS, [15, 20])
    finally:
        counter.close()
    assert counter.calls == 0
    assert all(torch.equal(first[la], second[la]) for la in (15, 20))
    other = SourceReader(smollm2, cache=tmp_path, outlier_ratio=None, progress=False)
    counter = BlockCounter(other)
    try:
        other.pooled(PROMPTS, 15)  # other pooling settings: a cache miss
    finally:
        counter.close()
    assert counter.calls == 15 * forwards(other, PROMPTS)


@pytest.mark.slow
def test_attention_sink_is_detected_and_excluded(smollm2: LoadedModel) -> None:
    pairs = load_pairs("train")[::3]  # 52 pairs from every category
    robust = SourceReader(smollm2, cache=False, progress=False)
    plain = SourceReader(smollm2, cache=False, outlier_ratio=None, progress=False)
    norms = {}
    for name, r in (("without sink", robust), ("with sink", plain)):
        safe = r.pooled([p.safe for p in pairs], 15)
        unsafe = r.pooled([p.unsafe for p in pairs], 15)
        norms[name] = float((safe - unsafe).mean(dim=0).norm())
    print(
        f"\nSmolLM2-135M (real weights) layer 15, {len(pairs)} train pairs (ours): "
        f"|v_s| with first-token sink {norms['with sink']:.1f}, "
        f"without {norms['without sink']:.1f}"
    )
    dropped = robust.exclusions[15]
    # the sink is the first token of (nearly) every prompt, and nothing else is dropped
    assert set(dropped) == {0}
    assert dropped[0] >= 0.95 * 2 * len(pairs)
    assert norms["with sink"] > 3 * norms["without sink"]


@pytest.mark.slow
def test_train_direction_separates_held_out_test_pairs(cached_reader: SourceReader) -> None:
    reader = cached_reader
    train, test = load_pairs("train"), load_pairs("test")
    layer = 15
    v = (
        reader.pooled([p.safe for p in train], layer)
        - reader.pooled([p.unsafe for p in train], layer)
    ).mean(dim=0)
    u = v / v.norm()
    safe = reader.pooled([p.safe for p in test], layer) @ u
    unsafe = reader.pooled([p.unsafe for p in test], layer) @ u
    score = auroc(safe, unsafe)
    accuracy = float((safe > unsafe).float().mean())
    print(
        f"\nSmolLM2-135M (real weights) layer {layer}: train direction ({len(train)} pairs) on "
        f"{len(test)} held-out test pairs (ours): AUROC {score:.3f}, pair accuracy "
        f"{accuracy:.3f}"
    )
    assert score > 0.75
    assert accuracy > 0.75


@pytest.mark.slow
def test_chat_template_wraps_the_prompt_and_drops_its_markers(smollm2: LoadedModel) -> None:
    chat = SourceReader(smollm2, cache=False, chat_template=True, progress=False)
    plain = SourceReader(smollm2, cache=False, progress=False)
    text = chat._texts(["a cat"])[0]
    assert "<|im_start|>" in text and "a cat" in text
    _states, mask = chat.token_states([text], [15])
    ids = chat.tokenizer([text], add_special_tokens=False)["input_ids"][0]
    marker = chat.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert marker in ids
    dropped = [t for t, keep in zip(ids, mask[0].tolist(), strict=True) if not keep]
    assert marker in dropped  # the markers are excluded from the mean
    assert not torch.allclose(chat.pooled(["a cat"], 15), plain.pooled(["a cat"], 15))


@pytest.mark.slow
def test_user_mistakes_are_input_errors(reader: SourceReader) -> None:
    with pytest.raises(InputError, match="out of range"):
        reader.pooled(PROMPTS, 31)
    with pytest.raises(InputError, match="out of range"):
        reader.pooled(PROMPTS, -32)
    with pytest.raises(InputError, match="empty"):
        reader.pooled(["a cat", "  "], 3)
    with pytest.raises(InputError, match="list"):
        reader.pooled("a cat", 3)
    with pytest.raises(InputError, match="auto"):
        reader.pooled(PROMPTS, "middle")


def test_encoder_reader_on_minilm_exits_early() -> None:
    reader = SourceReader.from_preset("minilm-l6", cache=False, progress=False)
    assert (reader.num_layers, reader.hidden_size, reader.kind) == (6, 384, "encoder")
    counter = BlockCounter(reader)
    try:
        got = reader.pooled(PROMPTS, 3)
    finally:
        counter.close()
    assert counter.calls == 3 * forwards(reader, PROMPTS)
    torch.testing.assert_close(got, full_forward_pooled(reader, PROMPTS, 3), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def gemma_tokenizer() -> Iterator[object]:
    yield load_preset("gemma3-270m").tokenizer


@pytest.mark.slow
def test_gemma3_sliding_window_masks_survive_the_early_exit(gemma_tokenizer: object) -> None:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    def tiny(window: int) -> Gemma3ForCausalLM:
        torch.manual_seed(0)
        config = Gemma3TextConfig(
            vocab_size=len(gemma_tokenizer),
            hidden_size=32,
            intermediate_size=64,  # type: ignore[arg-type]
            num_hidden_layers=4,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            sliding_window=window,
            max_position_embeddings=128,
            layer_types=[
                "sliding_attention",
                "full_attention",
                "sliding_attention",
                "full_attention",
            ],
        )
        return Gemma3ForCausalLM(config).eval()

    narrow = SourceReader(
        LoadedModel(tiny(2), gemma_tokenizer, "tiny-gemma3-w2", "causal-lm"),
        cache=False,
        outlier_ratio=None,
        progress=False,
    )
    wide = SourceReader(
        LoadedModel(tiny(64), gemma_tokenizer, "tiny-gemma3-w64", "causal-lm"),
        cache=False,
        outlier_ratio=None,
        progress=False,
    )
    for layer in (1, 3):
        got = narrow.pooled(PROMPTS, layer)
        torch.testing.assert_close(
            got, full_forward_pooled(narrow, PROMPTS, layer), atol=1e-5, rtol=1e-5
        )
    # the window really shapes the states (random weights): so the check above is not vacuous
    assert not torch.allclose(narrow.pooled(PROMPTS, 3), wide.pooled(PROMPTS, 3), atol=1e-4)
