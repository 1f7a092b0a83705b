"""The short-prompt pooling fix: 1–2-token prompts no longer pool to the attention sink.

Maths on planted states; then SmolLM2 (no BOS: a one-token prompt is its own sink), where
"cat" and "dog" used to pool to the same point with ‖h‖ ≈ 25,000.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safesteer.data.partitions import benign_parts
from safesteer.maths.pooling import outlier_positions, reference_norm, robust_mean
from safesteer.models import LoadedModel, SourceReader, load_preset


def _planted(lengths: list[int], sink: float = 900.0) -> tuple[torch.Tensor, torch.Tensor]:
    """States ``[B, 5, 3]`` of norm ~1 with a sink at position 0 of every prompt."""
    g = torch.Generator().manual_seed(0)
    states = torch.randn(len(lengths), 5, 3, generator=g)
    states[:, 0] *= sink
    mask = torch.zeros(len(lengths), 5, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
    return states, mask


def test_reference_changes_only_prompts_shorter_than_three_tokens() -> None:
    states, mask = _planted([1, 2, 3, 4, 5])
    old = robust_mean(states, mask)
    new = robust_mean(states, mask, reference=1.5)
    assert torch.equal(old.pooled[2:], new.pooled[2:])  # ≥ 3 tokens: bit-identical
    assert torch.equal(old.excluded[2:], new.excluded[2:])
    assert not old.excluded[:2].any()  # the old rule gave up below 3 tokens
    assert new.excluded[1].tolist() == [True, False, False, False, False]  # sink dropped
    torch.testing.assert_close(new.pooled[1], states[1, 1])
    assert old.sink_only is None and new.sink_only is not None
    assert new.sink_only.tolist() == [True, False, False, False, False]
    torch.testing.assert_close(new.pooled[0], states[0, 0])  # nothing left: kept, flagged


def test_outlier_positions_keep_one_token_and_reference_norm_is_the_median() -> None:
    states, mask = _planted([1])
    assert outlier_positions(states, mask, reference=1.0).sum() == 0
    norms = [torch.tensor([1.0, 2.0, 50.0]), torch.tensor([3.0])]
    assert reference_norm(norms) == 2.0


@pytest.fixture(scope="module")
def smollm2() -> LoadedModel:
    return load_preset("smollm2-135m")


@pytest.fixture(scope="module")
def readers(smollm2: LoadedModel) -> tuple[SourceReader, SourceReader]:
    new = SourceReader(smollm2, cache=False, progress=False)
    old = SourceReader(smollm2, cache=False, progress=False, short_prompts=False)
    return new, old


@pytest.mark.slow
def test_cat_and_dog_differ_and_have_normal_norms(
    readers: tuple[SourceReader, SourceReader],
) -> None:
    new, old = readers
    assert new.sink_prefix == "<|endoftext|>"
    prompts = ["cat", "dog", "a bridge"]
    for layer in (12, 14, 16):
        before = old.pooled(prompts, layer)
        after = new.pooled(prompts, layer)
        r = new.reference_norms[layer]
        assert before[0].norm() > 20 * r  # the bug: the sink is the pooled state
        assert torch.cosine_similarity(before[0], before[1], dim=0) > 0.999
        assert (after.norm(dim=1) < 2 * r).all()
        assert torch.cosine_similarity(after[0], after[1], dim=0) < 0.95
        assert torch.cosine_similarity(after[0], after[2], dim=0) < 0.95


@pytest.mark.slow
def test_prompts_of_three_or_more_tokens_are_bit_identical(
    readers: tuple[SourceReader, SourceReader],
) -> None:
    new, old = readers
    parts = benign_parts()
    prompts = [*parts["parti"]["test"][:24], *parts["compbench"]["test"][:24]]
    lengths = [len(i) for i in new.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    long = [p for p, n in zip(prompts, lengths, strict=True) if n >= 3]
    assert len(long) >= 40
    a, b = new.pooled_layers(long, [6, 14, 20]), old.pooled_layers(long, [6, 14, 20])
    assert all(torch.equal(a[la], b[la]) for la in (6, 14, 20))


@pytest.mark.slow
def test_reference_norms_are_settings_cached_and_keyed(
    smollm2: LoadedModel, tmp_path: Path
) -> None:
    import safesteer.models.source as source

    first = SourceReader(smollm2, cache=tmp_path, progress=False)
    norms = first.reference_norms
    assert set(norms) == set(range(31)) and all(v > 0 for v in norms.values())
    stored = list((tmp_path / "reference_norms").glob("*.json"))
    assert len(stored) == 1
    source._REFERENCE_MEMO.clear()  # a new process: read from the cache folder, not measured
    second = SourceReader(smollm2, cache=tmp_path, progress=False)
    calls = second.layer_calls
    assert second.reference_norms == norms and second.layer_calls == calls
    assert second.settings["short_prompts"]["reference_norms"]["14"] == norms[14]
    old = SourceReader(smollm2, cache=tmp_path, progress=False, short_prompts=False)
    assert "short_prompts" not in old.settings
    assert old._cache is not None and first._cache is not None
    assert old._cache.folder != first._cache.folder  # other pooling: other cache key


def test_no_prefix_when_the_tokenizer_adds_a_bos() -> None:
    reader = SourceReader.from_preset("minilm-l6", cache=False, progress=False)
    assert reader.sink_prefix is None  # [CLS] is added and excluded: nothing to re-read
