"""Prompt sets and the deterministic list of work items of an evaluation.

One work item = one (condition, α, prompt set, prompt, image index) → one image (or N sampled
video frames). Seeds pair items across conditions and strengths, so each α is compared with the
same noise::

    seed = base_seed + prompt_index · images_per_prompt + image_index

Example:
    >>> from safesteer.evaluation.conditions import Condition
    >>> ps = PromptSet("i2p", "safety", ("a cat",), ((),), "inline")
    >>> items = plan_work([Condition("none", "none")], [ps], alphas=(0, 3), images_per_prompt=2)
    >>> [(i.alpha, i.image_index, i.seed) for i in items]
    [(0.0, 0, 0), (0.0, 1, 1)]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from safesteer.errors import InputError
from safesteer.evaluation.conditions import Condition
from safesteer.evaluation.store import item_id
from safesteer.provenance import text_set_hash

ROLES = ("safety", "utility")


@dataclass(frozen=True)
class PromptSet:
    """A named list of prompts with a role: ``safety`` (ASR) or ``utility`` (CLIP, FID)."""

    name: str
    role: str
    prompts: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]  # per prompt; I2P prompts may carry several
    source: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InputError(f"prompt set {self.name} has role {self.role!r}", hint=f"use {ROLES}")
        if len(self.prompts) != len(self.categories):
            raise InputError(f"prompt set {self.name}: prompts and categories differ in length")
        if not self.prompts:
            raise InputError(
                f"prompt set {self.name} ({self.source}) is empty",
                hint="give a file with at least one prompt",
            )

    @classmethod
    def from_file(
        cls, path: str, *, name: str, role: str, limit: int | None = None, column: str | None = None
    ) -> PromptSet:
        """Read prompts with :func:`safesteer.data.load_prompts` (I2P csv, txt, jsonl, …)."""
        from safesteer.data import load_prompts

        records = list(load_prompts(path, column=column))[:limit]
        texts = tuple(r.prompt for r in records)
        cats = tuple(tuple(r.categories) for r in records)
        from safesteer.evaluation.protocol import resolved_path

        return cls(name, role, texts, cats, resolved_path(str(path)))  # relative = absolute

    @classmethod
    def inline(
        cls,
        name: str,
        role: str,
        prompts: Sequence[str],
        categories: Sequence[Sequence[str]] | None = None,
    ) -> PromptSet:
        """A prompt set from a list (source recorded as ``inline``)."""
        cats = tuple(tuple(c) for c in categories) if categories else tuple(() for _ in prompts)
        return cls(name, role, tuple(prompts), cats, "inline")

    def describe(self) -> dict[str, Any]:
        cats = Counter(c for cs in self.categories for c in cs)
        return {
            "name": self.name,
            "role": self.role,
            "n": len(self.prompts),
            "source": self.source,
            "sha256": text_set_hash(list(self.prompts)),
            "categories": dict(sorted(cats.items())),
        }


@dataclass(frozen=True)
class WorkItem:
    """One image to generate and score."""

    condition: str
    alpha: float
    prompt_set: str
    role: str
    prompt_index: int
    prompt: str
    categories: tuple[str, ...]
    image_index: int
    seed: int

    @property
    def id(self) -> str:
        return item_id(
            self.condition,
            self.alpha,
            self.prompt_set,
            self.prompt_index,
            self.image_index,
            self.seed,
        )

    def relpath(self, frame: int | None = None) -> str:
        """Image path under the run's ``images/`` folder."""
        stem = f"p{self.prompt_index:05d}_i{self.image_index}_s{self.seed}"
        suffix = "" if frame is None else f"_f{frame:03d}"
        return f"{self.condition}/a{self.alpha:+g}/{self.prompt_set}/{stem}{suffix}.png"


def plan_work(
    conditions: Sequence[Condition],
    prompt_sets: Sequence[PromptSet],
    *,
    alphas: Sequence[float],
    images_per_prompt: int = 1,
    seed: int = 0,
) -> list[WorkItem]:
    """All work items, prompt-major (a partial run already compares every condition)."""
    if images_per_prompt < 1:
        raise InputError(f"images per prompt is {images_per_prompt}", hint="use 1 or more")
    names = [p.name for p in prompt_sets]
    if len(set(names)) != len(names):
        raise InputError(f"prompt set names collide: {names}", hint="give each set its own name")
    items = []
    for ps in prompt_sets:
        for i, (text, cat) in enumerate(zip(ps.prompts, ps.categories, strict=True)):
            for cond in conditions:
                for a in cond.alphas(alphas):
                    for k in range(images_per_prompt):
                        items.append(
                            WorkItem(
                                cond.name,
                                float(a),
                                ps.name,
                                ps.role,
                                i,
                                text,
                                cat,
                                k,
                                seed + i * images_per_prompt + k,
                            )
                        )
    return items
