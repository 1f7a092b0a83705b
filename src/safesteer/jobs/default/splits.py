"""The default job's data: real pairs and benign sets, by role, from the fixed partitions.

Pairs (``config.pairs``): ``"safesteer"`` (default) — SafeSteerDataset (MIT), whose train split
is dealt by scene into fixed parts (:func:`safesteer.data.partitions.pair_parts`): the
*direction* part gives the source and native directions, the *probe* part the target-side
judges, and the official *test* split is reported (it shares its scenes with the train split:
test figures are scene-seen figures, and every report says so). ``"ours"``: our own pairs'
``train`` / ``judge`` / ``test`` splits (a named option).

Benign prompts (:func:`safesteer.data.partitions.benign_parts`): each set's *fit* part fits the
maps and the gates' covariance (``config.anchor_set="all"``: PartiPrompts, T2I-CompBench,
GenEval, the SafeSteer safe halves of the direction part and our anchors; ``"ours"``: our
anchors only), its *cal* part sets the gates' thresholds (one calibration set per style), its
*probe* part is the judges' benign side, and its *test* part is held out and reported per set
(ImageReward is test only; the SafeSteer safe test halves are the "safe twins").

Sizes (:func:`thin`, a fixed rule, never chosen by results): reading every real prompt through
Gemma takes most of an hour on two cores, so the job reads at most ``n_anchors / n_fit_sets``
prompts of each fit and test part, half that of each calibration and probe part, and
``max_pairs`` pairs of each pair part, taken at evenly spaced positions of the partition order
(which is stratified: parts keep their strata). ``n_anchors=None`` and ``max_pairs=None`` read
everything.

Example:
    >>> thin(list("abcdefghij"), 4)
    ['a', 'c', 'f', 'h']
    >>> split = split_anchors([f"anchor {i}" for i in range(100)], 0.2, 0.1, seed=0)
    >>> len(split.fit), len(split.held_out), len(split.judge)
    (70, 20, 10)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.jobs.default.config import JobConfig
from safesteer.provenance import text_set_hash

T = TypeVar("T")

#: benign sets whose fit parts the maps see (``anchor_set="all"``), in report order
FIT_SETS: tuple[str, ...] = ("parti", "compbench", "geneval", "sspairs", "ours")
#: benign sets with a calibration part (the gates' thresholds: one per style)
CALIBRATION_SETS: tuple[str, ...] = ("parti", "compbench", "geneval", "sspairs", "ours")
#: benign sets reported on their held-out test part
TEST_SETS: tuple[str, ...] = ("parti", "compbench", "geneval", "imagereward", "ours", "sspairs")
#: named pair sources of the job (the first is the default)
PAIR_SOURCES: tuple[str, ...] = ("safesteer", "ours")
#: named anchor choices of the job (the first is the default)
ANCHOR_SETS: tuple[str, ...] = ("all", "ours")
OURS_LABEL = "safesteer's generated benign anchors (ours)"
SCENES_NOTE = (
    "SafeSteerDataset's official test split shares every scene (situation) with its train "
    "split: test figures are scene-seen figures"
)


def set_label(name: str) -> str:
    """How reports name a benign set: ours, or its source and licence."""
    from safesteer.data.real import REAL_SETS

    if name == "ours":
        return OURS_LABEL
    if name == "sspairs":
        return f"safe halves of {REAL_SETS['safesteer'].label()}"
    return REAL_SETS[name].label()


def pairs_label(source: str) -> str:
    """How reports name the pairs."""
    from safesteer.data.real import REAL_SETS

    if source == "ours":
        return "safesteer's own pairs (ours)"
    return REAL_SETS["safesteer"].label()


def thin(items: Sequence[T], n: int | None) -> list[T]:
    """``n`` items at evenly spaced positions ``⌊i·len/n⌋`` (all when n is None or ≥ len)."""
    if n is None or n >= len(items):
        return list(items)
    return [items[(i * len(items)) // n] for i in range(n)]


@dataclass
class AnchorSplit:
    """Benign prompts by role (never overlapping): map fit, held-out (reported), judges."""

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
    """Prompts the job uses, by role.

    ``anchors.fit`` is the union of ``fit_sets``; ``anchors.held_out`` the union of
    ``benign_test`` (benign drift, map fit quality); ``anchors.judge`` the benign probe parts.
    """

    train: list[Any]  # pairs for directions (source and native)
    judge: list[Any]  # pairs for the target-side judges
    test: list[Any]  # pairs reported
    anchors: AnchorSplit
    fit_sets: dict[str, list[str]] = field(default_factory=dict)
    calibration: dict[str, list[str]] = field(default_factory=dict)
    benign_test: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # benign set → label
    pairs_label: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)

    def all_pair_texts(self) -> list[str]:
        return [t for p in (*self.train, *self.judge, *self.test) for t in (p.safe, p.unsafe)]

    def benign_texts(self) -> list[str]:
        """Every benign text of every role (fit, calibration, tests, judges)."""
        groups = (*self.calibration.values(), *self.benign_test.values())
        return list(dict.fromkeys([*self.anchors.fit, *(t for g in groups for t in g)]))


def _pair_splits(config: JobConfig) -> tuple[list[Any], list[Any], list[Any]]:
    if config.pairs == "ours":
        from safesteer.data import load_pairs

        splits = (load_pairs("train"), load_pairs("judge"), load_pairs("test"))
    else:
        from safesteer.data.partitions import pair_parts

        parts = pair_parts()
        splits = (
            list(parts["direction"].pairs),
            list(parts["probe"].pairs),
            list(parts["test"].pairs),
        )
    a, b, c = (thin(list(s), config.max_pairs) for s in splits)
    return a, b, c


def load_job_data(config: JobConfig) -> JobData:
    """Pairs and benign sets by role (module docstring), thinned by :func:`thin`."""
    from safesteer.data.partitions import benign_parts

    if config.pairs not in PAIR_SOURCES:
        raise InputError(f"unknown pairs {config.pairs!r}", hint=f"use one of {PAIR_SOURCES}")
    if config.anchor_set not in ANCHOR_SETS:
        raise InputError(
            f"unknown anchor set {config.anchor_set!r}", hint=f"use one of {ANCHOR_SETS}"
        )
    train, judge, test = _pair_splits(config)
    parts = benign_parts()
    fit_names = FIT_SETS if config.anchor_set == "all" else ("ours",)
    per_fit = None if config.n_anchors is None else max(1, config.n_anchors // len(fit_names))
    per_other = None if per_fit is None else max(1, per_fit // 2)
    # the SafeSteer safe halves follow the pairs read (SafeSteer pairs: the same prompts)
    safe_parts = {
        "fit": list(dict.fromkeys(p.safe for p in train))
        if config.pairs == "safesteer"
        else list(parts["sspairs"]["fit"]),
        "cal": list(parts["sspairs"]["cal"]),
        "probe": list(dict.fromkeys(p.safe for p in judge))
        if config.pairs == "safesteer"
        else list(parts["sspairs"]["probe"]),
        "test": list(parts["sspairs"]["test"]),
    }

    def part(name: str, role: str, n: int | None) -> list[str]:
        texts = safe_parts[role] if name == "sspairs" else list(parts[name][role])
        if name == "sspairs" and role == "test":
            return texts  # the safe twins of the reported pairs: all of them
        return thin(texts, n)

    fit_sets = {n: part(n, "fit", per_fit) for n in fit_names}
    fitted = {t for texts in fit_sets.values() for t in texts}
    # (one SafeSteer safe prompt occurs in two scenes: a direction and a gatecal one)
    calibration = {
        n: [t for t in part(n, "cal", per_other) if t not in fitted] for n in CALIBRATION_SETS
    }
    benign_test = {n: part(n, "test", per_fit) for n in TEST_SETS}  # reported: as many as fit
    # the judges' benign side (SafeSteer safe halves are there already: the pairs' safe side)
    probe_sets = [n for n in CALIBRATION_SETS if n != "sspairs"]
    judge_benign = [t for n in probe_sets for t in part(n, "probe", per_other)]
    fit = list(dict.fromkeys(t for texts in fit_sets.values() for t in texts))
    held_out = list(dict.fromkeys(t for texts in benign_test.values() for t in texts))
    anchors = AnchorSplit(fit, held_out, list(dict.fromkeys(judge_benign)))
    overlap = set(fit) & set(held_out) | set(fit) & set(anchors.judge)
    overlap |= {t for texts in calibration.values() for t in texts} & (set(fit) | set(held_out))
    if overlap:  # the partitions are disjoint by construction; a broken cap must not leak
        raise InputError(f"{len(overlap)} benign prompts in two roles", hint="a bug: report it")
    if len(fit) < 8 or min(len(v) for v in calibration.values()) < 2:
        raise InputError(
            f"{len(fit)} map-fit anchors are too few", hint="use --anchors >= 60 (or none: all)"
        )
    hashes = {
        "train_pairs": text_set_hash([t for p in train for t in (p.safe, p.unsafe)]),
        "judge_pairs": text_set_hash([t for p in judge for t in (p.safe, p.unsafe)]),
        "test_pairs": text_set_hash([t for p in test for t in (p.safe, p.unsafe)]),
        "anchors_fit": text_set_hash(fit),
        "anchors_held_out": text_set_hash(held_out),
        "anchors_judge": text_set_hash(anchors.judge),
        **{f"calibration_{n}": text_set_hash(t) for n, t in calibration.items()},
    }
    sampling = {
        "rule": "at most n_anchors / (number of fit sets) prompts of each fit and test part, half "
        "that of each calibration and probe part, max_pairs pairs of each pair part; evenly "
        "spaced positions of "
        "the fixed partition order (safesteer.data.partitions; strata kept); never chosen by "
        "results; the SafeSteer safe test halves (safe twins) are all read",
        "n_anchors": config.n_anchors,
        "max_pairs": config.max_pairs,
        "per_fit_set": per_fit,
        "per_other_part": per_other,
        "counts": {
            "fit": {n: len(t) for n, t in fit_sets.items()},
            "calibration": {n: len(t) for n, t in calibration.items()},
            "test": {n: len(t) for n, t in benign_test.items()},
            "judge_benign": len(anchors.judge),
            "pairs": {"train": len(train), "judge": len(judge), "test": len(test)},
        },
    }
    labels = {n: set_label(n) for n in dict.fromkeys([*FIT_SETS, *TEST_SETS])}
    return JobData(
        train,
        judge,
        test,
        anchors,
        fit_sets,
        calibration,
        benign_test,
        labels,
        pairs_label(config.pairs),
        sampling,
        hashes,
    )


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
