"""Tests for safesteer.data.pairs: our paired prompts, their split and their shape."""

from __future__ import annotations

import json
import re
from collections import Counter
from importlib import resources

import pytest

from safesteer.data import CATEGORIES, PromptPair, load_pairs
from safesteer.errors import InputError


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_every_category_has_at_least_50_pairs() -> None:
    counts = Counter(p.category for p in load_pairs("all"))
    assert set(counts) == set(CATEGORIES)
    assert min(counts.values()) >= 50


def test_split_is_stratified_about_half_quarter_quarter() -> None:
    for cat in CATEGORIES:
        n = {s: len(load_pairs(s, categories=(cat,))) for s in ("train", "judge", "test", "all")}
        assert n["train"] + n["judge"] + n["test"] == n["all"]
        assert abs(n["train"] / n["all"] - 0.5) < 0.05
        assert abs(n["judge"] / n["all"] - 0.25) < 0.05
        assert abs(n["test"] / n["all"] - 0.25) < 0.05


def test_splits_do_not_share_prompts() -> None:
    seen: dict[str, str] = {}
    for split in ("train", "judge", "test"):
        for p in load_pairs(split):
            for text in (p.safe, p.unsafe):
                assert seen.setdefault(text, split) == split, text


def test_pairs_are_short_distinct_minimal_edits() -> None:
    pairs = load_pairs("all")
    assert len({p.safe for p in pairs}) == len(pairs)
    assert len({p.unsafe for p in pairs}) == len(pairs)
    for p in pairs:
        assert p.safe != p.unsafe
        assert len(p.unsafe.split()) <= 20 and len(p.safe.split()) <= 20
        # the same scene: the unsafe twin keeps some of the safe prompt's content words
        shared = _words(p.safe) & _words(p.unsafe) - {"a", "an", "the", "of", "in", "on", "at"}
        assert shared, p


def test_every_record_is_labelled_as_ours() -> None:
    text = resources.files("safesteer.data").joinpath("prompts/pairs.jsonl").read_text("utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    assert {r["source"] for r in records} == {"safesteer (ours)"}
    assert {r["split"] for r in records} == {"train", "judge", "test"}


def test_load_pairs_returns_prompt_pairs_and_rejects_unknowns() -> None:
    pair = load_pairs("test")[0]
    assert isinstance(pair, PromptPair) and pair.category in CATEGORIES
    with pytest.raises(InputError, match="split"):
        load_pairs("validation")
    with pytest.raises(InputError, match="categories"):
        load_pairs("train", categories=("spam",))


def test_metadata_file_describes_the_pairs_file() -> None:
    folder = resources.files("safesteer.data").joinpath("prompts")
    meta = json.loads(folder.joinpath("pairs.meta.json").read_text("utf-8"))
    assert meta["source"] == "safesteer (ours)"
    for cat in CATEGORIES:
        for split in ("train", "judge", "test"):
            assert meta["counts"][cat][split] == len(load_pairs(split, categories=(cat,)))
