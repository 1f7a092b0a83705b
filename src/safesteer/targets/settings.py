"""How an attached pipeline is steered (:class:`SteeringSettings`) and what each row received
(:class:`PromptSteering`); the checks that refuse settings a pack cannot serve.

Light on purpose (torch only): :mod:`safesteer.targets.attach` re-exports these names, and
:mod:`safesteer.targets.hook` (which pulls in diffusers) reads them.

Example:
    >>> s = SteeringSettings(alpha=5.0, gated=True)
    >>> s.uses_gate, s.tokens
    (True, 'all')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, get_args

from torch import Tensor

from safesteer.errors import InputError, PackError
from safesteer.maths.steering import STEERING_RULES, SteeringRule
from safesteer.pack import SafetyPack

Categories = None | Literal["auto"] | tuple[str, ...]
GateSide = Literal["target", "source"]
Tokens = Literal["all", "real"]
#: allowed values, declared once (``--gate`` / ``--tokens`` choices read these)
GATE_SIDES: tuple[str, ...] = get_args(GateSide)
TOKENS: tuple[str, ...] = get_args(Tokens)
#: the pack's calibration keys the ``"to-projection"`` rule reads (written by ``assemble_pack``)
PROJECTION_TAU, PROJECTION_Q = "to_projection_tau", "to_projection_q"
#: which positions a target gate pooled (see :attr:`PromptSteering.gate_mask`)
GATE_MASKS = ("real tokens", "pipeline mask", "all positions")


class SourceStates(Protocol):
    """What the source gate needs from a reader (:class:`safesteer.models.SourceReader`)."""

    model_id: str

    def pooled(self, prompts: Sequence[str], layer: int) -> Tensor: ...


@dataclass(frozen=True)
class SteeringSettings:
    """How an attached pipeline is steered (see :mod:`safesteer.targets.attach`)."""

    alpha: float = 1.0
    tokens: Tokens = "all"
    steer_negative: bool = False
    gated: bool = False
    categories: Categories = None
    gate: GateSide = "target"
    rule: SteeringRule = "add"

    @property
    def uses_gate(self) -> bool:
        """Whether a gate decides anything (gated steering or automatic categories)."""
        return self.gated or self.categories == "auto"


@dataclass(frozen=True)
class PromptSteering:
    """What one row of the positive branch received in the last call.

    Attributes:
        prompt: the prompt text (None when the caller passed embeddings safesteer had not seen
            come out of this pipeline's ``encode_prompt``).
        steered: whether ``α·v`` was added to this row.
        categories: the categories whose mean vector was used (empty: the global vector).
        alpha: the strength applied (0 where not steered).
        gate_scores: per gate name, the score (higher = more unsafe), when a gate ran.
        gate: which gate decided (``"target"`` or ``"source"``), or None when none ran.
        gate_mask: for the target gate, which positions it pooled: ``"real tokens"`` (the
            prompt's tokens, from its text), ``"pipeline mask"`` (the mask the pipeline passed
            with embeddings) or ``"all positions"`` (embeddings of unknown origin); None when no
            target gate ran.
        flagged: the gate's decision for this row (whatever α: at α = 0 nothing is added but
            the decision is still recorded); None when no gate ran.
        rule: the steering rule (``"add"`` or ``"to-projection"``).
        shift: for ``"to-projection"``, the move along the unit vector this row received,
            ``α·max(0, τ − ⟨h̄, v̂⟩)`` in target units (0 where not steered); None for ``"add"``.
    """

    prompt: str | None
    steered: bool
    categories: list[str]
    alpha: float
    gate_scores: dict[str, float] = field(default_factory=dict)
    gate: GateSide | None = None
    gate_mask: str | None = None
    flagged: bool | None = None
    rule: str = "add"
    shift: float | None = None


def require_projection_target(pack: SafetyPack) -> float:
    """The pack's τ for the ``"to-projection"`` rule, or :class:`PackError` (older packs)."""
    tau = pack.calibration.get(PROJECTION_TAU)
    if tau is None:
        raise PackError(
            "this pack has no target projection τ (calibration['to_projection_tau']); "
            "packs built before the to-projection rule have none",
            hint="rebuild the pack with `safesteer build ...`, or use rule='add'",
        )
    return float(tau)


def check_settings(
    pack: SafetyPack, s: SteeringSettings, source_reader: SourceStates | None = None
) -> SteeringSettings:
    """``s`` with categories normalised, or a clear error for what ``pack`` cannot serve."""
    if s.tokens not in TOKENS:
        raise InputError(f"tokens must be 'all' or 'real'; got {s.tokens!r}")
    if s.gate not in GATE_SIDES:
        raise InputError(f"gate must be 'target' or 'source'; got {s.gate!r}")
    if s.rule not in STEERING_RULES:
        raise InputError(f"unknown steering rule {s.rule!r}", hint=f"use one of {STEERING_RULES}")
    if s.rule == "to-projection":
        if s.categories is not None:
            raise InputError(
                "the to-projection rule steers along the pack's global vector (its target "
                f"projection τ is for that vector); categories={s.categories!r} is not served",
                hint="use categories=None with rule='to-projection', or rule='add'",
            )
        require_projection_target(pack)
    cats = s.categories
    if cats is not None and cats != "auto":
        names = (cats,) if isinstance(cats, str) else tuple(cats)
        unknown = [c for c in names if c not in pack.category_vectors]
        if unknown:
            raise PackError(
                f"the pack has no category vector for {unknown}",
                hint=f"use some of {pack.categories} or categories=None for the global vector",
            )
        s = replace(s, categories=names)
    if s.uses_gate and s.gate == "target" and pack.gate is None:
        raise PackError(
            "gated / automatic-category steering needs a pack with a gate, and this pack has none",
            hint="use a pack built with a gate, or gated=False with fixed categories",
        )
    if s.uses_gate and s.gate == "source":
        pack.require_source_gate()
        if source_reader is None:
            raise InputError(
                "gate='source' needs the source model's reader",
                hint="attach(..., gate='source', "
                "source_reader=SourceReader.from_spec(pack.source_gate_spec))",
            )
    return s
