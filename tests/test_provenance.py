"""Provenance: text-set hashes and the environment record."""

from __future__ import annotations

import hashlib

import torch

from safesteer.provenance import environment_record, text_set_hash


def test_text_set_hash_is_sha256_of_newline_joined_texts() -> None:
    texts = ["a photo of a cat", "a red bicycle", "ünïcode"]
    expected = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    assert text_set_hash(texts) == f"sha256:{expected}"
    assert text_set_hash(texts) != text_set_hash(list(reversed(texts)))  # order matters
    assert text_set_hash(["ab"]) != text_set_hash(["a", "b"])
    assert text_set_hash("abc") == text_set_hash(["abc"])


def test_environment_record() -> None:
    rec = environment_record()
    assert {"python", "platform", "torch", "transformers", "diffusers", "safesteer"} <= set(rec)
    assert rec["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert all(isinstance(v, str) and v for v in rec.values())
