"""Tests for safesteer.data.anchors: deterministic, distinct, benign anchors of two kinds."""

from __future__ import annotations

import re

import pytest

from safesteer.data import benign_anchors, load_pairs
from safesteer.errors import InputError

_STOP = {
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "to",
    "and",
    "with",
    "by",
    "from",
    "for",
    "his",
    "her",
    "their",
    "its",
    "it",
    "is",
    "are",
    "as",
    "no",
    "off",
    "into",
    "onto",
    "each",
    "other",
    "others",
    "every",
    "only",
}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+(?:-[a-z]+)*", text.lower()))


def harm_words() -> set[str]:
    """Words an unsafe prompt adds to its safe twin, minus any word some safe prompt uses."""
    pairs = load_pairs("all")
    safe_vocab = set().union(*(_words(p.safe) for p in pairs))
    added: set[str] = set()
    for p in pairs:
        added |= _words(p.unsafe) - _words(p.safe)
    return added - safe_vocab - _STOP


def test_at_least_3000_distinct_and_deterministic() -> None:
    anchors = benign_anchors()
    assert len(anchors) >= 3000
    assert len(set(anchors)) == len(anchors)
    assert benign_anchors() == anchors
    assert benign_anchors(10) == anchors[:10]


def test_both_kinds_are_mixed_in_any_prefix() -> None:
    head = benign_anchors(50)
    sentences = [a for a in head if a.endswith(".")]
    captions = [a for a in head if not a.endswith(".")]
    assert 15 <= len(sentences) <= 25 and len(captions) >= 25


def test_no_harm_word_from_the_unsafe_prompts_appears() -> None:
    harm = harm_words()
    assert {"naked", "nude", "blood", "corpse", "racist", "punching", "cocaine"} <= harm
    vocab = set().union(*(_words(a) for a in benign_anchors()))
    assert harm & vocab == set()


def test_bad_n_is_an_input_error() -> None:
    with pytest.raises(InputError):
        benign_anchors(0)
    with pytest.raises(InputError):
        benign_anchors(10**6)
