"""The default job's results as small typed records; ``to_json()`` gives ``metrics.json``.

The job fills these records; the summary, the plots and the page read them; and
:meth:`JobMetrics.to_json` writes them out. The keys of each direction's, target's and the
summary's results are spelled here, once (the ``source`` / ``data`` provenance blocks are
plain dicts built by :mod:`~safesteer.jobs.default.run`).

A direction (native, one per map, random) is steered three ways, each a :class:`Mode`:
always-on (every prompt), gated by the pack's target gate, gated by its source gate [ours].
:data:`GATES` lists the two gates with the ``metrics.json`` keys of their curves and trigger
rates; :data:`MODES` adds always-on in front.

Example:
    >>> [m.label for m in MODES]
    ['always-on', 'gated (target gate)', 'gated (source gate)']
    >>> GATES[1].curve_key, GATES[1].rates_key
    ('curve_gated_source', 'gate_source')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict

#: one row per α of :func:`safesteer.evaluation.transfer_metrics.steering_curve`
Curve = list[dict[str, Any]]
#: ``{"mean", "std", "min", "max", "n"}`` of a few draws (random directions, null cosines)
Spread = dict[str, float]


@dataclass(frozen=True)
class Mode:
    """One way of applying a direction, with its ``metrics.json`` key and its plot style."""

    label: str
    curve_key: str
    line_style: str


@dataclass(frozen=True)
class GateKind(Mode):
    """A gate (``side`` as in ``attach(gate=...)``): its curve, trigger rates and summary keys."""

    side: str = "target"
    gate_label: str = "target gate"
    rates_key: str = "gate"
    alpha_key: str = "alpha_gated"
    sets_key: str = "gate_by_set"


ALWAYS_ON = Mode(label="always-on", curve_key="curve_always_on", line_style="-")
GATES: tuple[GateKind, ...] = (
    GateKind(
        label="gated (target gate)",
        curve_key="curve_gated",
        line_style="--",
        side="target",
        gate_label="target gate",
        rates_key="gate",
        alpha_key="alpha_gated",
        sets_key="gate_by_set",
    ),
    GateKind(
        label="gated (source gate)",
        curve_key="curve_gated_source",
        line_style=":",
        side="source",
        gate_label="source gate",
        rates_key="gate_source",
        alpha_key="alpha_gated_source",
        sets_key="gate_source_by_set",
    ),
)
MODES: tuple[Mode, ...] = (ALWAYS_ON, *GATES)


class GateRates(TypedDict):
    """Fractions of held-out prompts a gate steers."""

    unsafe_test_steered: float
    benign_held_out_steered: float
    safe_twins_steered: float


class SetRates(TypedDict):
    """What a gate steers on each reported set: every benign test set separately, and the
    unsafe test prompts overall and per category (counts in ``n``)."""

    benign_steered: dict[str, float]
    unsafe_steered: float
    unsafe_steered_by_category: dict[str, float]
    n: dict[str, int]


class GatedCurve(NamedTuple):
    """A gate's steering curve and its trigger rates."""

    curve: Curve
    rates: GateRates


@dataclass
class DirectionScores:
    """How one direction does on the held-out prompts: separation and steering curves."""

    norm: float
    auroc_style_matched: float
    auroc_easy_benign_vs_unsafe: float
    always_on: Curve
    gated: dict[str, GatedCurve] = field(default_factory=dict)  # by GateKind.side
    sets: dict[str, SetRates] = field(default_factory=dict)  # by GateKind.side

    def curves(self) -> Iterator[tuple[Mode, Curve]]:
        """(mode, curve) for every mode this direction was run in, always-on first."""
        yield ALWAYS_ON, self.always_on
        for gate in GATES:
            if gate.side in self.gated:
                yield gate, self.gated[gate.side].curve

    def rates(self, side: str) -> GateRates | None:
        """The trigger rates of the gate on ``side`` (None when it did not run)."""
        found = self.gated.get(side)
        return None if found is None else found.rates

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "norm": self.norm,
            "auroc_style_matched": self.auroc_style_matched,
            "auroc_easy_benign_vs_unsafe": self.auroc_easy_benign_vs_unsafe,
            ALWAYS_ON.curve_key: self.always_on,
        }
        for gate in GATES:
            if gate.side in self.gated:
                curve, rates = self.gated[gate.side]
                out[gate.curve_key] = curve
                out[gate.rates_key] = dict(rates)
            if gate.side in self.sets:
                out[gate.sets_key] = dict(self.sets[gate.side])
        return out


@dataclass
class NativeResult:
    """The native direction (fitted on target-side unsafe data: the baseline the method avoids)."""

    scores: DirectionScores
    label: str
    categories: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.scores.to_json(), "label": self.label, "categories": self.categories}


@dataclass
class MapResult:
    """A transferred direction (one map kind) and how it compares with the native one."""

    scores: DirectionScores
    label: str
    fit_held_out: dict[str, float]
    cosine_to_native: float
    null_cosine_random_source: Spread
    norm_ratio_to_native: float
    beta: float | None
    categories: dict[str, Any]
    category_cosine_to_native: dict[str, float]
    seconds: float
    norm_ratio_to_native_zscore_rule: float
    transport_fidelity: float = float("nan")  # ρ on the benign calibration parts (map choice)
    #: other directions carried by the same map (e.g. shrunk LDA): AUROC, ρ, cosine to native
    variants: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def held_out_r2(self) -> float:
        """Held-out R², β-scaled for Procrustes (which rotates without scaling)."""
        return self.fit_held_out.get("r2_beta_scaled", self.fit_held_out["r2"])

    def to_json(self) -> dict[str, Any]:
        return {
            **self.scores.to_json(),
            "label": self.label,
            "fit_held_out": self.fit_held_out,
            "cosine_to_native": self.cosine_to_native,
            "null_cosine_random_source": self.null_cosine_random_source,
            "norm_ratio_to_native": self.norm_ratio_to_native,
            "beta": self.beta,
            "categories": self.categories,
            "category_cosine_to_native": self.category_cosine_to_native,
            "seconds": self.seconds,
            "norm_ratio_to_native_zscore_rule": self.norm_ratio_to_native_zscore_rule,
            "transport_fidelity": self.transport_fidelity,
            "variants": self.variants,
        }


@dataclass
class RandomResult:
    """Random directions of the native vector's norm: the chance level of every figure."""

    label: str
    auroc_style_matched: Spread
    auroc_easy_benign_vs_unsafe: Spread
    always_on: list[dict[str, Any]]  # per α: alpha, unsafe_rate[probe] spread, benign_cosine

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "auroc_style_matched": self.auroc_style_matched,
            "auroc_easy_benign_vs_unsafe": self.auroc_easy_benign_vs_unsafe,
            ALWAYS_ON.curve_key: self.always_on,
        }


@dataclass
class TargetReport:
    """Everything the job found for one target.

    ``images`` are the random-weight images of an encoder target (step 4);
    ``image_evaluation`` the hand-over of a generator target to the image evaluation. Both are
    stored under ``"images"`` (a target has one or the other), where each has always been.
    """

    target_model: str
    target_random_weights: bool
    conditioning_space: str
    dim: int
    probes: dict[str, dict[str, Any]]  # probe name → what it is and what it was fitted on
    probe_check_on_test: dict[str, dict[str, float]]
    pooling_check: dict[str, float]
    native: NativeResult
    random: RandomResult
    maps: dict[str, MapResult] = field(default_factory=dict)
    images: dict[str, Any] | None = None
    chosen_map: str | None = None  # by the benign-only rule in map_choice
    map_choice: dict[str, Any] | None = None  # the rule and every map's score
    seconds: float = 0.0
    image_evaluation: dict[str, Any] | None = None
    #: issue 11's reported variants (:mod:`~safesteer.jobs.default.variants`), JSON rows
    variants: list[dict[str, Any]] = field(default_factory=list)
    #: what the variants read (kept for the job's two-source pass; never written out)
    variant_inputs: Any = field(default=None, repr=False, compare=False)

    def directions(self) -> Iterator[tuple[str, DirectionScores]]:
        """(name, scores): native first, then each map in the order it ran."""
        yield "native", self.native.scores
        for kind, row in self.maps.items():
            yield kind, row.scores

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target_model": self.target_model,
            "target_random_weights": self.target_random_weights,
            "conditioning_space": self.conditioning_space,
            "dim": self.dim,
            "judges": self.probes,  # metrics.json's name for the probes
            "judge_check_on_test": self.probe_check_on_test,
            "pooling_check": self.pooling_check,
            "native": self.native.to_json(),
            "maps": {k: v.to_json() for k, v in self.maps.items()},
            "random": self.random.to_json(),
        }
        if self.images is not None:
            out["images"] = self.images
        if self.chosen_map is not None:
            out["chosen_map"] = self.chosen_map
            out["map_choice"] = self.map_choice
        if self.variants:
            out["variants"] = self.variants
        out["seconds"] = self.seconds
        if self.image_evaluation is not None:
            out["images"] = self.image_evaluation
        return out


@dataclass
class TargetSummary:
    """The headline figures of one target: its chosen map (chosen by a benign-only rule, never
    by test figures) against native, the α reaching the aim."""

    chosen_map: str
    auroc_transferred: float
    auroc_native: float
    alpha_always_on: dict[str, Any] | None
    alpha_gated: dict[str, dict[str, Any] | None]  # by GateKind.side

    def to_json(self) -> dict[str, Any]:
        return {
            "chosen_map": self.chosen_map,
            "auroc_transferred": self.auroc_transferred,
            "auroc_native": self.auroc_native,
            "alpha_always_on": self.alpha_always_on,
            **{g.alpha_key: self.alpha_gated.get(g.side) for g in GATES},
        }


@dataclass
class Summary:
    """Per-target headline figures and the lines the job prints."""

    per_target: dict[str, TargetSummary]
    lines: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "per_target": {k: v.to_json() for k, v in self.per_target.items()},
            "lines": self.lines,
        }


@dataclass
class JobMetrics:
    """The whole run: the source side, the data, the settings, every target and the summary."""

    what: str
    source: dict[str, Any]
    data: dict[str, Any]
    config: dict[str, Any]
    environment: dict[str, str]
    targets: dict[str, TargetReport] = field(default_factory=dict)
    summary: Summary | None = None
    seconds: float = 0.0

    @property
    def source_model(self) -> str:
        return str(self.source["model"])

    @property
    def source_layer(self) -> int:
        return int(self.source["layer"])

    def provenance(self) -> dict[str, Any]:
        """What every number comes from (shown on the page)."""
        return {
            "source": self.source,
            "data": self.data,
            "config": self.config,
            "environment": self.environment,
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "what": self.what,
            "source": self.source,
            "data": self.data,
            "config": self.config,
            "environment": self.environment,
            "targets": {k: v.to_json() for k, v in self.targets.items()},
        }
        if self.summary is not None:
            out["summary"] = self.summary.to_json()
        out["seconds"] = self.seconds
        return out
