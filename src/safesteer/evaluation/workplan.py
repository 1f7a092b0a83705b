"""Prompt sets and the deterministic list of work items of an evaluation.

One work item = one (condition, α, prompt set, prompt, image index) → one image (or N sampled
video frames). Seeds pair items across conditions and strengths, so each α is compared with the
same noise::

    seed = base_seed + prompt_index · images_per_prompt + image_index

At α = 0 every condition is the unsteered pipeline (``ĥ = h + 0·v = h``), so
:func:`generation_plan` generates each (prompt set, prompt, image) at α = 0 **once** and shares
it: the generated item lists the other conditions in ``shared_by``, and
:func:`shared_records` gives each of them its own record (same files, its own id), so
summaries and resumption see one record per (condition, α, prompt, image) as before.

Example:
    >>> from safesteer.evaluation.conditions import Condition
    >>> ps = PromptSet("i2p", "safety", ("a cat",), ((),), "inline")
    >>> items = plan_work([Condition("none", "none")], [ps], alphas=(0, 3), images_per_prompt=2)
    >>> [(i.alpha, i.image_index, i.seed) for i in items]
    [(0.0, 0, 0), (0.0, 1, 1)]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
    #: other conditions whose α = 0 image this item is (generated once, unsteered)
    shared_by: tuple[str, ...] = ()

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

    def record_ids(self) -> list[str]:
        """Ids of every record this item produces (its own, then the conditions sharing it)."""
        return [self.id, *(self._id_for(c) for c in self.shared_by)]

    def _id_for(self, condition: str) -> str:
        return item_id(
            condition, self.alpha, self.prompt_set, self.prompt_index, self.image_index, self.seed
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


def generation_plan(items: Sequence[WorkItem]) -> list[WorkItem]:
    """The items to generate: one per α = 0 (prompt set, prompt, image), shared by every
    condition that runs at α = 0 (``none`` first when present), and every α ≠ 0 item.

    Example:
        >>> ps = PromptSet.inline("p", "safety", ["a cat"])
        >>> conds = [Condition("ours", "pack"), Condition("rand", "random")]
        >>> items = plan_work(conds, [ps], alphas=(0, 3))
        >>> [(g.condition, g.alpha, g.shared_by) for g in generation_plan(items)]
        [('ours', 0.0, ('rand',)), ('ours', 3.0, ()), ('rand', 3.0, ())]
    """
    groups: dict[tuple[str, int, int], list[WorkItem]] = {}
    for it in items:
        if it.alpha == 0.0:
            groups.setdefault((it.prompt_set, it.prompt_index, it.image_index), []).append(it)
    out: list[WorkItem] = []
    seen: set[tuple[str, int, int]] = set()
    for it in items:
        key = (it.prompt_set, it.prompt_index, it.image_index)
        if it.alpha != 0.0:
            out.append(it)
        elif key not in seen:
            seen.add(key)
            group = sorted(groups[key], key=lambda g: g.condition != "none")  # stable: none first
            head = group[0]
            out.append(replace(head, shared_by=tuple(g.condition for g in group[1:])))
    return out


def shared_records(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The generated item's record, then one per condition in its ``shared_by`` (same files).

    Each copy has its own ``condition`` and ``id`` and names the generated item in
    ``shared_from``.
    """
    first = dict(record)
    sharing = list(first.get("shared_by") or ())
    per_condition = dict(first.pop("shared_steering", None) or {})
    out = [first]
    for condition in sharing:
        steering = per_condition.get(condition, {"steered": False, "gate": None})
        out.append(
            {
                **first,
                "steering": steering,
                "condition": condition,
                "shared_by": [],
                "shared_from": first["id"],
                "id": item_id(
                    condition,
                    float(first["alpha"]),
                    str(first["prompt_set"]),
                    int(first["prompt_index"]),
                    int(first["image_index"]),
                    int(first["seed"]),
                ),
            }
        )
    return out


def work_record(items: Sequence[WorkItem], generated: Sequence[WorkItem]) -> dict[str, Any]:
    """Images per condition for the protocol: records, images generated, images shared."""
    per: dict[str, dict[str, int]] = {}
    for it in items:
        per.setdefault(it.condition, {"records": 0, "generated": 0, "shared_alpha0": 0})
        per[it.condition]["records"] += 1
    for g in generated:
        per[g.condition]["generated"] += 1
        for c in g.shared_by:
            per[c]["shared_alpha0"] += 1
    return {
        "records": len(items),
        "images_generated": len(generated),
        "per_condition": per,
        "rule": "α = 0 is the unsteered pipeline for every condition: generated once per "
        "(prompt set, prompt, image) and shared (its records name it in shared_from)",
    }
