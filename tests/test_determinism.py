"""Pooled states are a function of the text: same-length batches, no padding (issues 13 and 15).

On the real packaged models (MiniLM, SmolLM2, Gemma-3): a prompt's pooled state is bitwise the
same alone, in a batch with other prompts, in another order, and read back from the cache;
unpadded states equal those padded to the full length within float tolerance; pipeline adapters
keep their own padding (states unchanged); and ``build_pack`` on a fresh cache and on a cache
warmed by other reads in another order gives bitwise identical pack tensors.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from safesteer.build import build_pack
from safesteer.data import benign_anchors, load_pairs
from safesteer.maths.pooling import masked_mean
from safesteer.models import SourceReader, StateCache, load_preset
from safesteer.models.batching import same_length_batches
from safesteer.targets import EncoderTarget, load_pipeline
from safesteer.targets.pooled import cached_target_pooled, pooled_by_length, token_lengths

ANCHORS = benign_anchors(120)
SHORT = ["a cat", "dogs", "a red house by the sea"]  # 1–6 tokens: small-matrix BLAS kernels


def shuffled(texts: list[str], seed: int) -> list[str]:
    out = list(texts)
    random.Random(seed).shuffle(out)
    return out


def test_same_length_batches_group_by_exact_length_and_cut_at_batch_size() -> None:
    lengths = [5, 3, 5, 5, 3, 9, 5]
    batches = same_length_batches(lengths, batch_size=2)
    assert batches == [[1, 4], [0, 2], [3, 6], [5]]
    assert all(len({lengths[i] for i in b}) == 1 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    with pytest.raises(ValueError, match="batch_size"):
        same_length_batches(lengths, 0)


# ---- encoder targets -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm() -> EncoderTarget:
    return EncoderTarget.from_preset("minilm-l6")


def padded_to_full(target: EncoderTarget, texts: list[str]) -> torch.Tensor:
    """The old path: every prompt padded to max_length (77), batches of 16."""
    assert target.max_length == 77
    rows = []
    for i in range(0, len(texts), 16):
        enc = target.encode(texts[i : i + 16])
        assert enc.states.shape[1] == 77
        rows.append(masked_mean(enc.states, enc.mask))
    return torch.cat(rows)


def test_minilm_unpadded_equals_padded_to_77(minilm: EncoderTarget) -> None:
    lengths = token_lengths(minilm, ANCHORS)
    assert lengths is not None and len(set(lengths)) > 5  # the batches really differ in length
    got = pooled_by_length(minilm, ANCHORS)
    want = padded_to_full(minilm, ANCHORS)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert minilm.max_length == 77  # restored after the unpadded batches


def assert_text_function(pool: object, texts: list[str]) -> None:
    """``pool(texts)`` gives each text the same bits alone, in other batches, in other orders."""
    full = pool(texts)  # type: ignore[operator]
    by_text = dict(zip(texts, full, strict=True))
    for seed in (1, 2):
        subset = shuffled(texts, seed)[: len(texts) // 2 + seed]
        for text, row in zip(subset, pool(subset), strict=True):  # type: ignore[operator]
            assert torch.equal(row, by_text[text])
    for text in [*texts[:4], texts[-1]]:
        assert torch.equal(pool([text])[0], by_text[text])  # type: ignore[operator]


def test_minilm_pooled_state_depends_on_the_text_only(minilm: EncoderTarget) -> None:
    texts = [*SHORT, *ANCHORS[:40]]
    assert_text_function(lambda t: pooled_by_length(minilm, t, batch_size=8), texts)
    assert_text_function(minilm.pooled, texts)  # the adapter's own method is the same


def test_minilm_cache_returns_the_bits_it_would_compute(
    minilm: EncoderTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFESTEER_CACHE", str(tmp_path))
    texts = ANCHORS[:30]
    cached_target_pooled(minilm, shuffled(texts, 3)[:11])  # a different history first
    warm = cached_target_pooled(minilm, texts)
    fresh = pooled_by_length(minilm, texts)
    assert torch.equal(warm, fresh)
    assert list((tmp_path / "states").rglob("*.safetensors"))  # it did go through the cache


@pytest.mark.slow
def test_gemma_unpadded_equals_padded_and_is_a_text_function() -> None:
    gemma = EncoderTarget.from_preset("gemma3-270m")
    texts = [*ANCHORS[:6], "a cat", "a very long prompt about a red house by the sea at dusk"]
    torch.testing.assert_close(
        pooled_by_length(gemma, texts), padded_to_full(gemma, texts), rtol=1e-4, atol=1e-4
    )
    assert_text_function(gemma.pooled, texts)


# ---- pipeline adapters keep their own padding ----------------------------------------------
@pytest.mark.parametrize("family", ["tiny-sd", "tiny-encoder-minilm-l6"])
def test_pipeline_adapters_keep_the_pipelines_padding(family: str) -> None:
    _, adapter = load_pipeline(family)
    texts = ANCHORS[:12]
    enc = adapter.encode(texts)  # one call over all prompts: the pipeline's own padding
    assert enc.states.shape[1] == 77
    torch.testing.assert_close(
        adapter.pooled(texts), masked_mean(enc.states, enc.mask), rtol=1e-6, atol=1e-6
    )
    assert_text_function(adapter.pooled, texts)


# ---- the source reader ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2_loaded():  # type: ignore[no-untyped-def]
    return load_preset("smollm2-135m")


def test_source_reader_state_depends_on_the_text_only(smollm2_loaded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reader = SourceReader(smollm2_loaded, cache=False, progress=False, batch_size=8)
    texts = [*SHORT, *ANCHORS[:40]]
    assert_text_function(lambda t: reader.pooled(t, 15), texts)
    # from a cache filled in another order, by other batches: the same bits
    cached = SourceReader(smollm2_loaded, cache=tmp_path, progress=False, batch_size=5)
    cached.pooled_layers(shuffled(texts, 4)[:17], [3, 15])
    again = SourceReader(smollm2_loaded, cache=tmp_path, progress=False)
    assert torch.equal(again.pooled(texts, 15), reader.pooled(texts, 15))
    assert StateCache(tmp_path, again.model_id, again.settings).get(15, texts[:1])[0] is not None


def test_source_reader_unpadded_equals_padded_batches(smollm2_loaded) -> None:  # type: ignore[no-untyped-def]
    reader = SourceReader(smollm2_loaded, cache=False, progress=False)
    texts = ANCHORS[:24]
    got = reader.pooled_layers(texts, [3, 15, 30])
    # the old reading: all 24 prompts in one batch, right-padded to the longest
    states, mask = reader.token_states(texts, [3, 15, 30])
    assert mask.shape[1] > min(reader.token_lengths(texts))  # some rows really are padded
    from safesteer.maths.pooling import robust_mean

    for layer, s in states.items():
        want = robust_mean(s, mask, reader.outlier_ratio).pooled
        torch.testing.assert_close(got[layer], want, rtol=1e-4, atol=1e-4)


def test_states_do_not_depend_on_the_thread_count(smollm2_loaded) -> None:  # type: ignore[no-untyped-def]
    reader = SourceReader(smollm2_loaded, cache=False, progress=False)
    texts = [*SHORT, *ANCHORS[:8]]
    before = torch.get_num_threads()
    try:
        one = reader.pooled(texts, 6)
        torch.set_num_threads(2)
        two = reader.pooled(texts, 6)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


# ---- a pack is a function of its inputs ----------------------------------------------------
@pytest.mark.slow
def test_build_pack_fresh_and_warm_caches_give_identical_tensors(
    smollm2_loaded,
    minilm: EncoderTarget,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    pairs = load_pairs("train")[:30]
    anchors = benign_anchors(150)
    warm_cache = tmp_path / "warm"
    # another history first: a subset of the anchors and pairs, shuffled, in small batches
    texts = [*shuffled(anchors, 5)[:60], *(p.unsafe for p in pairs[::3])]
    SourceReader(smollm2_loaded, cache=warm_cache, progress=False, batch_size=3).pooled(texts, 8)
    for kind in ("procrustes", "ridge"):
        built = {}
        for name, cache in (("fresh", False), ("warm", warm_cache)):
            reader = SourceReader(smollm2_loaded, cache=cache, progress=False)
            pack = build_pack(reader, 8, minilm, kind, pairs=pairs, anchors=anchors)
            built[name] = load_file(str(pack.save(tmp_path / f"{kind}-{name}.safetensors")))
        fresh, warm = built["fresh"], built["warm"]
        assert fresh.keys() == warm.keys() and "global" in fresh
        for key in fresh:
            assert torch.equal(fresh[key], warm[key]), (kind, key)
