"""Real public prompt sets, vendored in the package with their licences (not written by us).

Each set lives in ``safesteer/data/vendored/<folder>/``: the prompts as gzip JSON lines, the
upstream ``LICENSE`` and a ``NOTICE.md`` (source repository, commit, what was kept). They load
with the standard library only (no pyarrow, no network, nothing outside the package).
``scripts/vendor_data.py`` wrote them from the upstream files.

==============  =====================================  ============  ===========================
name            what                                   licence       rows
==============  =====================================  ============  ===========================
``safesteer``   SafeSteerDataset safe/unsafe **pairs**  MIT           2,070 train + 230 test
``parti``       PartiPrompts                           Apache-2.0    1,632
``compbench``   T2I-CompBench                          MIT           7,860
``geneval``     GenEval                                MIT           553
``imagereward`` ImageReward benchmark prompts          Apache-2.0    100 (DiffusionDB, CC0)
==============  =====================================  ============  ===========================

SafeSteerDataset's categories are spelled as ours (``"Illegal activity"`` →
``"illegal_activity"``); its subcategories (23) and scenes (``situation``) are kept as given.
Its unsafe halves are real harmful text: never print them; show categories and counts.

Example:
    >>> pairs = safesteer_pairs("test")
    >>> len(pairs), sorted({p.category for p in pairs})[:2]
    (230, ['disturbing', 'hate'])
    >>> len(real_prompts("geneval")), REAL_SETS["parti"].licence
    (553, 'Apache-2.0')
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

from safesteer.data.pairs import PromptPair
from safesteer.errors import InputError

SAFESTEER_SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class RealSet:
    """One vendored set: where it lives, what it is, its licence and upstream source."""

    folder: str
    title: str
    licence: str
    source: str
    kind: str  # "pairs" or "prompts"

    @property
    def data_file(self) -> str:
        return "pairs.jsonl.gz" if self.kind == "pairs" else "prompts.jsonl.gz"

    def label(self) -> str:
        """How reports name the set: title, licence and source (never "ours")."""
        return f"{self.title} ({self.licence}; {self.source})"


#: the vendored sets, by the name reports and ``--anchors`` use
REAL_SETS: dict[str, RealSet] = {
    "safesteer": RealSet(
        "safesteer_dataset",
        "SafeSteerDataset",
        "MIT",
        "NASK-AISafety/conditional-activation-transport",
        "pairs",
    ),
    "parti": RealSet(
        "partiprompts", "PartiPrompts", "Apache-2.0", "google-research/parti", "prompts"
    ),
    "compbench": RealSet(
        "t2i_compbench", "T2I-CompBench", "MIT", "Karine-Huang/T2I-CompBench", "prompts"
    ),
    "geneval": RealSet("geneval", "GenEval", "MIT", "djghosh13/geneval", "prompts"),
    "imagereward": RealSet(
        "imagereward",
        "ImageReward benchmark prompts",
        "Apache-2.0 (prompts from DiffusionDB, CC0)",
        "THUDM/ImageReward",
        "prompts",
    ),
}
#: the real benign prompt sets (every name of :data:`REAL_SETS` but the pairs)
REAL_PROMPT_SETS: tuple[str, ...] = tuple(n for n, s in REAL_SETS.items() if s.kind == "prompts")


def vendored_folder(name: str) -> Traversable:
    """The package folder of a vendored set (its data, ``LICENSE`` and ``NOTICE.md``)."""
    if name not in REAL_SETS:
        raise InputError(f"unknown real set {name!r}", hint=f"use one of {', '.join(REAL_SETS)}")
    return resources.files("safesteer.data").joinpath("vendored", REAL_SETS[name].folder)


@cache
def _rows(name: str) -> tuple[dict[str, str], ...]:
    raw = vendored_folder(name).joinpath(REAL_SETS[name].data_file).read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def category_name(category: str) -> str:
    """A SafeSteerDataset category, spelled as ours: ``Illegal activity`` → ``illegal_activity``."""
    return category.strip().lower().replace(" ", "_")


def safesteer_pairs(split: str = "train") -> list[PromptPair]:
    """SafeSteerDataset pairs of its official ``"train"`` or ``"test"`` split, in file order.

    Each :class:`PromptPair` carries its ``subcategory`` and its scene (``group``). The official
    test split shares every one of its scenes with the train split (it was split by row).
    """
    if split not in SAFESTEER_SPLITS:
        raise InputError(f"unknown SafeSteerDataset split {split!r}", hint="use train or test")
    return [
        PromptPair(
            r["safe"], r["unsafe"], category_name(r["category"]), r["subcategory"], r["situation"]
        )
        for r in _rows("safesteer")
        if r["split"] == split
    ]


def real_prompts(name: str) -> list[tuple[str, str]]:
    """``(prompt, stratum)`` of a real benign set, in file order.

    The stratum is what the partitions stratify by: PartiPrompts' Category, T2I-CompBench's
    file, GenEval's tag ("" for ImageReward).
    """
    if name not in REAL_PROMPT_SETS:
        raise InputError(
            f"{name!r} is not a real prompt set", hint=f"use one of {', '.join(REAL_PROMPT_SETS)}"
        )
    return [(r["prompt"], r["stratum"]) for r in _rows(name)]


__all__ = [
    "REAL_PROMPT_SETS",
    "REAL_SETS",
    "SAFESTEER_SPLITS",
    "RealSet",
    "category_name",
    "real_prompts",
    "safesteer_pairs",
    "vendored_folder",
]
