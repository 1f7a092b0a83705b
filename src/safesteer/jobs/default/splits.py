"""The default job's data: our pair splits and benign anchors split three ways, by role.

Pairs come split in the data (``train`` for directions, ``judge`` for the probes, ``test`` held
out). Benign anchors are split here, deterministically: *fit* (maps, β and gates), *held-out*
(map fit quality, benign drift and the gates' benign trigger rates) and *judge* (benign examples
for the probes). Test pairs are never used to fit anything.

Example:
    >>> split = split_anchors([f"anchor {i}" for i in range(100)], 0.2, 0.1, seed=0)
    >>> len(split.fit), len(split.held_out), len(split.judge)
    (70, 20, 10)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.jobs.default.config import JobConfig
from safesteer.provenance import text_set_hash


@dataclass
class AnchorSplit:
    """The benign anchors, split three ways (never overlapping)."""

    fit: list[str]
    held_out: list[str]
    judge: list[str]


def split_anchors(anchors: Sequence[str], holdout: float, judge: float, seed: int) -> AnchorSplit:
    """Shuffle (seeded) and split anchors into fit / held-out / judge parts."""
    texts = list(dict.fromkeys(anchors))  # de-duplicate, keep order
    random.Random(seed).shuffle(texts)
    n_hold, n_judge = int(len(texts) * holdout), int(len(texts) * judge)
    if len(texts) - n_hold - n_judge < 8 or n_hold < 2 or n_judge < 2:
        raise InputError(
            f"{len(texts)} distinct benign anchors are too few to split", hint="use --anchors >= 60"
        )
    return AnchorSplit(texts[n_hold + n_judge :], texts[:n_hold], texts[n_hold : n_hold + n_judge])


@dataclass
class JobData:
    """Prompts the job uses, by role."""

    train: list[Any]
    judge: list[Any]
    test: list[Any]
    anchors: AnchorSplit
    hashes: dict[str, str] = field(default_factory=dict)

    def all_pair_texts(self) -> list[str]:
        return [t for p in (*self.train, *self.judge, *self.test) for t in (p.safe, p.unsafe)]


def load_job_data(config: JobConfig) -> JobData:
    """Our pair splits and benign anchors (labelled as ours in the provenance)."""
    from safesteer.data import benign_anchors, load_pairs

    def cap(pairs: list[Any]) -> list[Any]:
        return pairs if config.max_pairs is None else pairs[: config.max_pairs]

    train, judge, test = (cap(list(load_pairs(s))) for s in ("train", "judge", "test"))
    split = split_anchors(
        benign_anchors(config.n_anchors),
        config.holdout_fraction,
        config.judge_anchor_fraction,
        config.seed,
    )
    hashes = {
        "train_pairs": text_set_hash([t for p in train for t in (p.safe, p.unsafe)]),
        "judge_pairs": text_set_hash([t for p in judge for t in (p.safe, p.unsafe)]),
        "test_pairs": text_set_hash([t for p in test for t in (p.safe, p.unsafe)]),
        "anchors_fit": text_set_hash(split.fit),
        "anchors_held_out": text_set_hash(split.held_out),
        "anchors_judge": text_set_hash(split.judge),
    }
    return JobData(train, judge, test, split, hashes)


def pooled_by_text(
    pooled_fn: Callable[[list[str]], Tensor], texts: Sequence[str]
) -> dict[str, Tensor]:
    """Pooled states of every distinct text, read once, looked up by text."""
    unique = list(dict.fromkeys(texts))
    states = pooled_fn(unique).float()
    return {t: states[i] for i, t in enumerate(unique)}


def rows(states: dict[str, Tensor], texts: Sequence[str]) -> Tensor:
    """``[N, D]``: the states of ``texts`` in order."""
    return torch.stack([states[t] for t in texts])
