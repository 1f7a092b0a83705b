"""Build a safety pack: source + layer + target + map kind + data → :class:`SafetyPack`.

The method (method.md §1–§5) in one place, each step a named library call:

1. ``v_s = mean_i[h_s(x_i⁺) − h_s(x_i⁻)]`` (:func:`difference_of_means`), one per category too;
2. a map ``T`` fitted on centred benign anchors only (:func:`make_map`);
3. ``ṽ = T(v_s)``, calibrated ``v_t = β‖v_s‖ ṽ/‖ṽ‖`` (or the benign z-score rule);
4. a :class:`Gate` fitted on benign target anchors only, and a *source gate* [ours]: the same
   :class:`Gate` fitted on the benign anchors' source states with the source directions (the
   source side is where unsafe pairs are allowed; its thresholds still come from benign data);
5. the target projection τ of the ``"to-projection"`` steering rule [ours]: the q-quantile of
   the benign target anchors' projections on ``v̂_t`` (calibration ``to_projection_tau``,
   ``to_projection_q``; :func:`safesteer.maths.steering.projection_target`).

:func:`assemble_pack` works on pooled states already computed (the default job reads each model
once and builds many packs from the same states); :func:`build_pack` reads the states first.
:func:`assemble_multi_source_pack` [ours, issue 11] carries the directions of several source
models through one map each (fitted on the same anchors) and averages them
(:func:`safesteer.maths.directions.average_transported`).

Example (the packaged models; ``safesteer build`` is the same from the command line):
    >>> from safesteer.models import SourceReader
    >>> from safesteer.targets import EncoderTarget
    >>> pack = build_pack(SourceReader.from_preset("smollm2-135m"), 20,
    ...                   EncoderTarget.from_preset("minilm-l6"), "ridge")  # doctest: +SKIP

:func:`assemble_pack` on pooled states (here planted: the target is the source, scaled by 2):
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> anchors = torch.randn(300, 6, generator=g)
    >>> safe, unsafe = torch.randn(40, 6, generator=g) + 1, torch.randn(40, 6, generator=g)
    >>> built = assemble_pack(source=SidePairs(safe, unsafe, ("a",) * 40),
    ...                       source_anchors=anchors, target_anchors=2 * anchors,
    ...                       map_kind="procrustes", target_id="toy",
    ...                       conditioning_space="toy/space", provenance={})
    >>> round(built.beta, 6), built.pack.categories
    (2.0, ['a'])
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from safesteer.errors import InputError, SafeSteerWarning
from safesteer.maths.alignment import MAPS, AlignmentMap, make_map
from safesteer.maths.calibration import CALIBRATIONS, anchor_scale_ratio
from safesteer.maths.directions import (
    Direction,
    average_transported,
    category_directions,
    direction_estimator,
)
from safesteer.maths.gating import GATE_SCORES, THRESHOLD_RULES, Gate
from safesteer.maths.steering import DEFAULT_PROJECTION_QUANTILE, projection_target
from safesteer.pack import DEFAULT_ALPHA, SafetyPack, source_spec
from safesteer.provenance import software_record, text_set_hash


class SourceLike(Protocol):
    """What :func:`build_pack` needs from a source reader (``safesteer.models.SourceReader``)."""

    model_id: str
    num_layers: int

    def pooled(self, prompts: Sequence[str], layer: int) -> Tensor: ...


@dataclass(frozen=True)
class GateFit:
    """How a gate is fitted, all from benign data [ours, issue 10].

    Args:
        benign: benign pooled states ``[N, D]`` that set the thresholds (and, without
            ``covariance_from``, μ and Σ_b on a held-out split); None: the side's anchors
            (the target gate: ``gate_anchors`` or the target anchors; the source gate: the
            source anchors).
        groups: one benign set name per row of ``benign`` (needed by ``"set-max"``).
        covariance_from: benign states ``[M, D]`` that fit μ and Σ_b instead (Ledoit–Wolf),
            e.g. every benign map-fit anchor; then every row of ``benign`` calibrates.
        score: a name in :data:`~safesteer.maths.gating.GATE_SCORES`; None: the builder's
            ``gate_score``.
        threshold_rule: ``"pooled"`` (default) or ``"set-max"``
            (:data:`~safesteer.maths.gating.THRESHOLD_RULES`).

    The research default (FINDINGS R1) is the source gate with
    ``GateFit(benign=calibration parts, groups=their set names, covariance_from=all benign
    fit parts, score="whitened", threshold_rule="set-max")``.

    Example:
        >>> import torch
        >>> x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
        >>> gate = GateFit(groups=["a", "b"] * 100, threshold_rule="set-max").fit(
        ...     x, {"global": torch.ones(4)}, "projection")
        >>> gate.threshold_rule, sorted(gate.group_rates_)
        ('set-max', ['a', 'b'])
    """

    benign: Tensor | None = None
    groups: Sequence[str] | None = None
    covariance_from: Tensor | None = None
    score: str | None = None
    threshold_rule: str = "pooled"

    def __post_init__(self) -> None:
        if self.score is not None and self.score not in GATE_SCORES:
            raise InputError(
                f"unknown gate score {self.score!r}", hint=f"use one of {', '.join(GATE_SCORES)}"
            )
        if self.threshold_rule not in THRESHOLD_RULES:
            raise InputError(
                f"unknown threshold rule {self.threshold_rule!r}",
                hint=f"use one of {', '.join(THRESHOLD_RULES)}",
            )
        if self.threshold_rule == "set-max" and self.groups is None:
            raise InputError(
                "the set-max threshold rule needs the benign rows' set names",
                hint="pass groups=[set name per benign row], or threshold_rule='pooled'",
            )

    def fit(self, anchors: Tensor, vectors: Mapping[str, Tensor], gate_score: str) -> Gate:
        """:meth:`Gate.fit` on ``benign`` (default ``anchors``) with these options."""
        gate = Gate(score=self.score or gate_score, threshold_rule=self.threshold_rule)
        benign = anchors if self.benign is None else self.benign
        return gate.fit(benign, vectors, groups=self.groups, covariance_from=self.covariance_from)

    def record(self) -> dict[str, Any]:
        """What the pack's provenance says about this fit (sizes and names, no states)."""
        return {
            "benign_rows": None if self.benign is None else int(self.benign.shape[0]),
            "groups": None if self.groups is None else sorted(set(self.groups)),
            "covariance_rows": (
                None if self.covariance_from is None else int(self.covariance_from.shape[0])
            ),
            "threshold_rule": self.threshold_rule,
        }


def default_gate_fits(groups: Sequence[str]) -> tuple[GateFit, GateFit]:
    """``(target, source)`` gate fits of the library's default data (FINDINGS R1, R2): the
    ``"set-max"`` threshold rule over the anchors' benign sets (``groups``: one set name per
    anchor; the held-out calibration split is stratified by set), so the false-trigger rate
    holds on every benign style; the source gate scores ``"whitened"`` (Σ_b from the other
    part of every set), the target gate ``"projection"`` (the fallback gate).

    Example:
        >>> target, source = default_gate_fits(["a", "b"] * 10)
        >>> target.score, source.score, source.threshold_rule
        ('projection', 'whitened', 'set-max')
    """
    names = list(groups)
    return (
        GateFit(groups=names, score="projection", threshold_rule="set-max"),
        GateFit(groups=names, score="whitened", threshold_rule="set-max"),
    )


def anchor_gate_fits(
    groups: Sequence[str] | None, n_anchors: int
) -> tuple[GateFit | None, GateFit | None]:
    """The gates' fit options for anchors whose benign sets are known: :func:`default_gate_fits`
    over ``groups`` (one set name per anchor — the default anchors' sets, or a named spec's,
    :attr:`safesteer.data.sources.Resolved.groups`); ``(None, None)`` (one pooled threshold)
    when they are not, e.g. a file of anchors.

    Example:
        >>> anchor_gate_fits(None, 3)
        (None, None)
        >>> anchor_gate_fits(["a", "b", "a"], 3)[1].threshold_rule
        'set-max'
    """
    if groups is None:
        return None, None
    if len(groups) != n_anchors:
        raise InputError(
            f"{len(groups)} anchor set names for {n_anchors} anchors",
            hint="give one benign set name per anchor, or none",
        )
    return default_gate_fits(groups)


def fit_source_gate(
    source_anchors: Tensor,
    v_s: Direction,
    categories: Mapping[str, Direction],
    gate_score: str = "whitened",
    fit: GateFit | None = None,
) -> Gate:
    """The source gate [ours]: :class:`Gate` on benign pooled source states ``h_s(a)``.

    Vectors are the source directions ``v_s`` (global) and ``v_{s,c}`` (per category), so
    ``score_c(x) = −⟨h_s(x) − μ_s, u_c⟩ / σ_c`` with ``u_c = unit(Σ_s⁻¹ v_{s,c})``; thresholds
    from the benign anchors only, like the target gate. ``fit`` (:class:`GateFit`) gives other
    benign rows, their set names, Σ_b's rows and the threshold rule (default: the anchors,
    ``"pooled"``).
    """
    vectors = {"global": v_s.vector, **{c: d.vector for c, d in categories.items()}}
    return (fit or GateFit()).fit(source_anchors, vectors, gate_score)


class TargetLike(Protocol):
    """What :func:`build_pack` needs from a target adapter (``safesteer.targets``)."""

    target_id: str
    conditioning_space: str
    dim: int

    def pooled(self, prompts: Sequence[str], batch_size: int = 16) -> Tensor: ...


@dataclass(frozen=True)
class SidePairs:
    """Pooled states of the pairs on one side (source or target): safe, unsafe, categories."""

    safe: Tensor
    unsafe: Tensor
    categories: tuple[str, ...]

    def directions(
        self, space: str, provenance: Mapping[str, str], kind: str = "difference-of-means"
    ) -> tuple[Direction, dict[str, Direction]]:
        """Global and per-category directions towards safe, by the estimator ``kind`` of
        :data:`~safesteer.maths.directions.DIRECTION_KINDS` (default: difference of means)."""
        estimator = direction_estimator(kind)
        glob = estimator(self.safe, self.unsafe, space=space, provenance=provenance)
        cats = category_directions(
            self.safe,
            self.unsafe,
            list(self.categories),
            space=space,
            provenance=provenance,
            kind=kind,
        )
        return glob, cats


@dataclass
class BuiltPack:
    """A pack plus what built it (kept for the transfer report; not saved in the pack)."""

    pack: SafetyPack
    map: AlignmentMap | None
    source_direction: Direction | None
    beta: float | None
    extras: dict[str, Any] = field(default_factory=dict)


def data_provenance(
    pairs_safe: Sequence[str], pairs_unsafe: Sequence[str], anchors: Sequence[str]
) -> dict[str, Any]:
    """Hashes and sizes of the texts a pack was built from."""
    return {
        "pairs_safe_hash": text_set_hash(list(pairs_safe)),
        "pairs_unsafe_hash": text_set_hash(list(pairs_unsafe)),
        "anchors_hash": text_set_hash(list(anchors)),
        "n_pairs": len(pairs_safe),
        "n_anchors": len(anchors),
    }


def transported_vector(
    fitted: AlignmentMap, direction: Direction, safe: Tensor, unsafe: Tensor
) -> Tensor:
    """``ṽ = T(v_s)``; exact for linear maps (centering cancels in differences).

    An MLP map in ``transport_mode="difference"`` carries the means instead:
    ``ṽ = T(mean safe) − T(mean unsafe)`` (method.md §2, [ours]).
    """
    if getattr(fitted, "transport_mode", "direct") == "difference":
        means: Any = fitted
        return means.transport_means(safe.mean(dim=0), unsafe.mean(dim=0))
    return fitted.transport(direction.vector)


def anchors_needed(map_kind: str, source_dim: int, target_dim: int) -> int:
    """Benign anchors that determine a map of ``map_kind`` (below this it is underdetermined).

    Procrustes (and the rotation of whiten–recolour): ``C = Tᵀ S`` must have full rank,
    ``min(d_s, d_t)``; ridge and the MLP regress
    on ``d_s`` source features, so ``d_s``. With fewer anchors the map fits noise in the
    anchors' last bits, and packs built from caches of different histories drift apart (33%
    with 200 anchors for 576 → 640 dims).
    """
    rotations = ("procrustes", "whiten-recolour")  # their rotation's cross-covariance
    return min(source_dim, target_dim) if map_kind in rotations else source_dim


def warn_few_anchors(map_kind: str, n_anchors: int, source_dim: int, target_dim: int) -> None:
    """A :class:`SafeSteerWarning` when ``n_anchors`` < :func:`anchors_needed` (builds go on)."""
    need = anchors_needed(map_kind, int(source_dim), int(target_dim))
    if n_anchors < need:
        warnings.warn(
            f"{n_anchors} benign anchors for a {map_kind} map from {source_dim} to {target_dim} "
            f"dimensions, which needs at least {need}: the map is underdetermined and the pack "
            "unstable (tiny changes in the states move it)",
            SafeSteerWarning,
            stacklevel=3,
        )


def projection_calibration(
    anchors: Tensor, vector: Tensor, q: float = DEFAULT_PROJECTION_QUANTILE
) -> dict[str, float]:
    """``{"to_projection_tau": τ, "to_projection_q": q}`` for a pack's calibration: τ the
    q-quantile of the benign ``anchors``' projections on ``v̂`` (the ``"to-projection"`` rule)."""
    return {"to_projection_tau": projection_target(anchors, vector, q), "to_projection_q": q}


@dataclass(frozen=True)
class Carried:
    """One source's directions carried into the target: map, β, source and target vectors."""

    map: AlignmentMap
    beta: float
    source_direction: Direction
    source_categories: dict[str, Direction]
    vector: Tensor
    categories: dict[str, Tensor]


def carry_directions(
    source: SidePairs,
    source_anchors: Tensor,
    target_anchors: Tensor,
    map_kind: str,
    *,
    calibration: str = "beta",
    map_kwargs: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    direction_kind: str = "difference-of-means",
) -> Carried:
    """Steps 1–3: directions from the source pairs, a map on the benign anchors, transported
    and calibrated vectors (global and per category).

    ``direction_kind``: the source direction estimator
    (:data:`~safesteer.maths.directions.DIRECTION_KINDS`; ``"shrunk-lda"`` is the option that
    separates best on the source side but transports worst, FINDINGS R4). An MLP map in
    ``"difference"`` mode carries the class means whatever the kind.
    """
    direction_estimator(direction_kind)  # unknown kinds refused before any fitting
    if map_kind not in MAPS:
        raise InputError(f"unknown map kind {map_kind!r}", hint=f"use one of {', '.join(MAPS)}")
    if calibration not in CALIBRATIONS:
        raise InputError(
            f"unknown calibration {calibration!r}", hint=f"use one of {', '.join(CALIBRATIONS)}"
        )
    warn_few_anchors(
        map_kind, int(source_anchors.shape[0]), source_anchors.shape[1], target_anchors.shape[1]
    )
    src_prov = {
        "space": "source",
        **{k: str(v) for k, v in (provenance or {}).items() if k.startswith("source")},
    }
    v_s, cat_s = source.directions("source", src_prov, direction_kind)
    fitted = make_map(map_kind, **dict(map_kwargs or {})).fit(source_anchors, target_anchors)
    beta = anchor_scale_ratio(source_anchors, target_anchors)
    rule = CALIBRATIONS[calibration]

    def carry(direction: Direction) -> Tensor:
        if direction.category is None:
            safe, unsafe = source.safe, source.unsafe
        else:
            keep = torch.tensor([c == direction.category for c in source.categories])
            safe, unsafe = source.safe[keep], source.unsafe[keep]
        moved = transported_vector(fitted, direction, safe, unsafe)
        return rule(moved, direction.vector, source_anchors, target_anchors).float()

    return Carried(
        map=fitted,
        beta=beta,
        source_direction=v_s,
        source_categories=cat_s,
        vector=carry(v_s),
        categories={c: carry(d) for c, d in cat_s.items()},
    )


def _source_gate_spec(
    given: Mapping[str, Any] | None, provenance: Mapping[str, Any], dim: int
) -> dict[str, Any]:
    if given is not None:
        return dict(given)
    return {
        "model_id": str(provenance.get("source_model", "unknown")),
        "layer": int(provenance.get("source_layer", -1)),
        "pooling": None,  # not recorded: no reader matches it
        "dim": dim,
    }


def assemble_pack(
    *,
    source: SidePairs,
    source_anchors: Tensor,
    target_anchors: Tensor,
    map_kind: str,
    target_id: str,
    conditioning_space: str,
    provenance: Mapping[str, Any],
    calibration: str = "beta",
    gate_anchors: Tensor | None = None,
    map_kwargs: Mapping[str, Any] | None = None,
    gate_score: str = "whitened",
    source_gate_spec: Mapping[str, Any] | None = None,
    encoding: Mapping[str, Any] | None = None,
    to_projection_q: float = DEFAULT_PROJECTION_QUANTILE,
    direction_kind: str = "difference-of-means",
    target_gate_fit: GateFit | None = None,
    source_gate_fit: GateFit | None = None,
    more_sources: Sequence[SourceSide] = (),
) -> BuiltPack:
    """Fit the map on benign anchors, transport and calibrate every direction, fit the gates.

    ``source_anchors[j]`` and ``target_anchors[j]`` are the same benign prompt in both models.
    The gate is fitted on ``gate_anchors`` (default: the target anchors) — benign data only;
    the source gate (:func:`fit_source_gate`) on ``source_anchors``. ``source_gate_spec``
    (:func:`safesteer.pack.source_spec` of the reader and layer) says which source states it
    reads; without it the spec records only the provenance's source model and layer (a reader
    then cannot be checked against it, and ``attach(gate="source")`` refuses). ``encoding``
    (:func:`target_encoding` of the target) is recorded in the pack and checked at attach.
    ``to_projection_q``: the benign quantile of the target anchors' projections on ``v̂_t``
    recorded as the ``"to-projection"`` rule's τ. ``direction_kind``: the source direction
    estimator (:func:`carry_directions`). ``target_gate_fit`` / ``source_gate_fit``
    (:class:`GateFit`): other benign rows, set names, Σ_b rows and threshold rule for each
    gate (default: as described above, rule ``"pooled"``). ``more_sources``: further source
    models (:class:`SourceSide`, their states of the same pairs and anchors); with any, the
    pack averages every source's carried directions (:func:`assemble_multi_source_pack`,
    ``source`` first, its provenance the ``source*`` keys of ``provenance``).
    """
    if more_sources:
        first = SourceSide(
            source,
            source_anchors,
            {k: v for k, v in provenance.items() if k.startswith("source")},
        )
        return assemble_multi_source_pack(
            sources=[first, *more_sources],
            target_anchors=target_anchors,
            map_kind=map_kind,
            target_id=target_id,
            conditioning_space=conditioning_space,
            provenance=provenance,
            calibration=calibration,
            gate_anchors=gate_anchors,
            map_kwargs=map_kwargs,
            gate_score=gate_score,
            source_gate_spec=source_gate_spec,
            encoding=encoding,
            to_projection_q=to_projection_q,
            direction_kind=direction_kind,
            target_gate_fit=target_gate_fit,
            source_gate_fit=source_gate_fit,
        )
    carried = carry_directions(
        source,
        source_anchors,
        target_anchors,
        map_kind,
        calibration=calibration,
        map_kwargs=map_kwargs,
        provenance=provenance,
        direction_kind=direction_kind,
    )
    v_s, cat_s, v_t, cat_t = (
        carried.source_direction,
        carried.source_categories,
        carried.vector,
        carried.categories,
    )
    prov: dict[str, Any] = {
        **dict(provenance),
        "direction": "transferred",
        "map_kind": map_kind,
        "map_params": dict(carried.map.params()),
        "direction_kind": direction_kind,
        "calibration_rule": calibration,
        "source_vector_norm": v_s.norm,
        "gate_fitted_on": "benign target anchors only",
        "source_gate_fitted_on": "benign source anchors only (source directions as vectors)",
        **_gate_fit_records(target_gate_fit, source_gate_fit),
        "to_projection_fitted_on": "benign target anchors only",
        "software": software_record(),  # no host details: same inputs, same bytes
    }
    pack = _gated_pack(
        v_t,
        cat_t,
        _PackSide(target_anchors, gate_anchors, target_gate_fit),
        _PackSide(source_anchors, None, source_gate_fit),
        (v_s, cat_s),
        gate_score=gate_score,
        spec=_source_gate_spec(source_gate_spec, provenance, int(source_anchors.shape[1])),
        target_id=target_id,
        conditioning_space=conditioning_space,
        calibration={"beta": carried.beta, "source_norm": v_s.norm},
        provenance=prov,
        encoding=encoding,
        to_projection_q=to_projection_q,
    )
    return BuiltPack(pack=pack, map=carried.map, source_direction=v_s, beta=carried.beta)


@dataclass(frozen=True)
class SourceSide:
    """One source model's part of :func:`assemble_multi_source_pack`.

    ``pairs``: its pooled states of the pairs; ``anchors``: its pooled states of the **same**
    benign anchors, in the same order, as the target's; ``provenance``: what identifies it
    (``source_model``, ``source_layer``, ``source_random_weights``…).
    """

    pairs: SidePairs
    anchors: Tensor
    provenance: Mapping[str, Any] = field(default_factory=dict)


def assemble_multi_source_pack(
    *,
    sources: Sequence[SourceSide],
    target_anchors: Tensor,
    map_kind: str,
    target_id: str,
    conditioning_space: str,
    provenance: Mapping[str, Any],
    calibration: str = "beta",
    gate_anchors: Tensor | None = None,
    map_kwargs: Mapping[str, Any] | None = None,
    gate_score: str = "whitened",
    source_gate_spec: Mapping[str, Any] | None = None,
    encoding: Mapping[str, Any] | None = None,
    to_projection_q: float = DEFAULT_PROJECTION_QUANTILE,
    direction_kind: str = "difference-of-means",
    target_gate_fit: GateFit | None = None,
    source_gate_fit: GateFit | None = None,
) -> BuiltPack:
    """A pack from several source models: one map per source, averaged target vectors.

    Each source's directions are carried by its own ``map_kind`` map fitted on the same benign
    anchors and calibrated by ``calibration`` (:func:`carry_directions`); the pack's global and
    per-category vectors are :func:`~safesteer.maths.directions.average_transported` of the
    sources' calibrated vectors: the mean of their unit vectors, at the mean calibrated length.
    The target gate and τ are fitted on the averaged vectors, as in :func:`assemble_pack`; the
    source gate is the **first** source's (``source_gate_spec`` is its reader's). Every source
    must have the same categories. ``provenance["sources"]`` lists each source's provenance,
    map parameters, β and source-vector norm; ``BuiltPack.map`` / ``source_direction`` /
    ``beta`` are the first source's and ``extras["carried"]`` holds every :class:`Carried`.
    ``direction_kind``, ``target_gate_fit`` and ``source_gate_fit`` (its rows are the first
    source's states) are as in :func:`assemble_pack`.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> anchors = torch.randn(300, 6, generator=g)
        >>> safe, unsafe = torch.randn(40, 6, generator=g) + 1, torch.randn(40, 6, generator=g)
        >>> one = SourceSide(SidePairs(safe, unsafe, ("a",) * 40), anchors, {"source_model": "x"})
        >>> pairs_two = SidePairs(-safe, -unsafe, ("a",) * 40)
        >>> two = SourceSide(pairs_two, -anchors, {"source_model": "y"})
        >>> built = assemble_multi_source_pack(sources=[one, two], target_anchors=2 * anchors,
        ...     map_kind="procrustes", target_id="toy", conditioning_space="toy/space",
        ...     provenance={})
        >>> [s["source_model"] for s in built.pack.provenance["sources"]]
        ['x', 'y']
    """
    if not sources:
        raise InputError("no sources given", hint="pass one SourceSide per source model")
    carried = [
        carry_directions(
            side.pairs,
            side.anchors,
            target_anchors,
            map_kind,
            calibration=calibration,
            map_kwargs=map_kwargs,
            provenance=side.provenance,
            direction_kind=direction_kind,
        )
        for side in sources
    ]
    names = [sorted(c.categories) for c in carried]
    if any(n != names[0] for n in names):
        raise InputError(
            f"the sources' pairs have different categories: {names}",
            hint="give every source the same pairs (their states in that source)",
        )
    v_t = average_transported([c.vector for c in carried]).float()
    cat_t = {
        name: average_transported([c.categories[name] for c in carried]).float()
        for name in carried[0].categories
    }
    first = carried[0]
    per_source = [
        {
            **{k: _plain_value(v) for k, v in side.provenance.items()},
            "map_params": dict(c.map.params()),
            "beta": c.beta,
            "source_vector_norm": c.source_direction.norm,
            "target_vector_norm": float(c.vector.norm()),
        }
        for side, c in zip(sources, carried, strict=True)
    ]
    betas = [c.beta for c in carried]
    prov: dict[str, Any] = {
        **dict(provenance),
        "direction": f"transferred from {len(sources)} sources, averaged",
        "multi_source_rule": "mean of the sources' unit calibrated vectors, at their mean norm",
        "sources": per_source,
        "map_kind": map_kind,
        "direction_kind": direction_kind,
        "calibration_rule": calibration,
        "gate_fitted_on": "benign target anchors only",
        "source_gate_fitted_on": "benign source anchors of the first source only",
        **_gate_fit_records(target_gate_fit, source_gate_fit),
        "to_projection_fitted_on": "benign target anchors only",
        "software": software_record(),
    }
    pack = _gated_pack(
        v_t,
        cat_t,
        _PackSide(target_anchors, gate_anchors, target_gate_fit),
        _PackSide(sources[0].anchors, None, source_gate_fit),
        (first.source_direction, first.source_categories),
        gate_score=gate_score,
        spec=_source_gate_spec(
            source_gate_spec,
            {**dict(provenance), **dict(sources[0].provenance)},
            int(sources[0].anchors.shape[1]),
        ),
        target_id=target_id,
        conditioning_space=conditioning_space,
        calibration={
            "beta": sum(betas) / len(betas),
            "source_norm": sum(c.source_direction.norm for c in carried) / len(carried),
        },
        extra_calibration={"n_sources": float(len(sources))},
        provenance=prov,
        encoding=encoding,
        to_projection_q=to_projection_q,
    )
    return BuiltPack(
        pack=pack,
        map=first.map,
        source_direction=first.source_direction,
        beta=first.beta,
        extras={"carried": carried},
    )


@dataclass(frozen=True)
class _PackSide:
    """One gate's benign rows: the anchors (``gate_rows`` overrides them) and its fit options."""

    anchors: Tensor
    gate_rows: Tensor | None
    fit: GateFit | None


def _gated_pack(
    v_t: Tensor,
    cat_t: dict[str, Tensor],
    target: _PackSide,
    source: _PackSide,
    source_directions: tuple[Direction, dict[str, Direction]],
    *,
    gate_score: str,
    spec: dict[str, Any],
    target_id: str,
    conditioning_space: str,
    calibration: Mapping[str, float],
    provenance: dict[str, Any],
    encoding: Mapping[str, Any] | None,
    to_projection_q: float,
    extra_calibration: Mapping[str, float] | None = None,
) -> SafetyPack:
    """The pack around carried vectors: the target gate on the target's benign rows, the source
    gate on the source's (its own directions as vectors), α and τ — shared by
    :func:`assemble_pack` and :func:`assemble_multi_source_pack`."""
    gate = (target.fit or GateFit()).fit(
        target.anchors if target.gate_rows is None else target.gate_rows,
        {"global": v_t, **cat_t},
        gate_score,
    )
    v_s, cat_s = source_directions
    source_gate = fit_source_gate(source.anchors, v_s, cat_s, gate_score, source.fit)
    return SafetyPack(
        global_vector=v_t,
        category_vectors=cat_t,
        target_id=target_id,
        conditioning_space=conditioning_space,
        calibration={
            **calibration,
            "target_norm": float(v_t.norm()),
            "alpha_default": DEFAULT_ALPHA,  # a rule fixed in advance (the paper's α), no peeking
            **dict(extra_calibration or {}),
            **projection_calibration(target.anchors, v_t, to_projection_q),
        },
        gate=gate,
        provenance=provenance,
        source_gate=source_gate,
        source_gate_spec=spec,
        encoding=dict(encoding or {}),
    )


def _gate_fit_records(target: GateFit | None, source: GateFit | None) -> dict[str, Any]:
    """Provenance entries for gates fitted with explicit :class:`GateFit` options."""
    out: dict[str, Any] = {}
    if target is not None:
        out["gate_fit"] = target.record()
    if source is not None:
        out["source_gate_fit"] = source.record()
    return out


def _plain_value(value: Any) -> Any:
    """A provenance value as JSON keeps it (numbers, strings, booleans, None; else its text)."""
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def native_pack(
    *,
    target: SidePairs,
    gate_anchors: Tensor,
    target_id: str,
    conditioning_space: str,
    provenance: Mapping[str, Any],
    gate_score: str = "whitened",
    encoding: Mapping[str, Any] | None = None,
    to_projection_q: float = DEFAULT_PROJECTION_QUANTILE,
    gate_fit: GateFit | None = None,
) -> BuiltPack:
    """The baseline the method avoids: directions from target-side unsafe data, same gate rule
    (τ of the ``"to-projection"`` rule from ``gate_anchors``, benign; ``gate_fit`` as the
    transferred pack's ``target_gate_fit``)."""
    v_n, cat_n = target.directions(conditioning_space, {"space": "target"})
    gate = (gate_fit or GateFit()).fit(
        gate_anchors,
        {"global": v_n.vector, **{c: d.vector for c, d in cat_n.items()}},
        gate_score,
    )
    pack = SafetyPack(
        global_vector=v_n.vector.float(),
        category_vectors={c: d.vector.float() for c, d in cat_n.items()},
        target_id=target_id,
        conditioning_space=conditioning_space,
        calibration={
            "target_norm": v_n.norm,
            "alpha_default": DEFAULT_ALPHA,
            **projection_calibration(gate_anchors, v_n.vector, to_projection_q),
        },
        gate=gate,
        provenance={
            **dict(provenance),
            "direction": "native (fitted on target-side unsafe data: the baseline "
            "the method avoids)",
            "gate_fitted_on": "benign target anchors only",
            **_gate_fit_records(gate_fit, None),
            "software": software_record(),  # no host details: same inputs, same bytes
        },
        encoding=dict(encoding or {}),
    )
    return BuiltPack(pack=pack, map=None, source_direction=None, beta=None)


def build_pack(
    source: SourceLike,
    layer: int,
    target: TargetLike,
    map_kind: str = "procrustes",
    *,
    pairs: Sequence[Any] | None = None,
    anchors: Sequence[str] | None = None,
    calibration: str = "beta",
    map_kwargs: Mapping[str, Any] | None = None,
    direction_kind: str = "difference-of-means",
    more_sources: Sequence[tuple[SourceLike, int]] = (),
    anchor_groups: Sequence[str] | None = None,
) -> SafetyPack:
    """Read pooled states of ``pairs`` (source only) and ``anchors`` (both models); build a pack.

    ``pairs`` are :class:`safesteer.data.PromptPair` (default: SafeSteerDataset's direction
    part, :func:`safesteer.data.partitions.default_pairs`; our own pairs are
    ``load_pairs("train")``); ``anchors`` benign prompts (default ``"all"``: the fit parts of
    the real benign sets, the SafeSteer safe halves and ours,
    :func:`safesteer.data.partitions.default_anchors`; with them the gates hold the false-trigger
    rate on each benign set, :func:`default_gate_fits`). The target never sees an unsafe prompt.
    ``more_sources``: further ``(reader, layer)`` source models; their directions are carried
    by their own maps and averaged with the first's (:func:`assemble_multi_source_pack`).
    ``anchor_groups``: the benign set of each given anchor (gates by set-max over them,
    :func:`anchor_gate_fits`; the default anchors use their own sets).
    """
    from safesteer.data.partitions import (
        DEFAULT_DATA_NOTE,
        default_anchor_sets,
        default_anchors,
        default_pairs,
    )

    given = pairs is not None or anchors is not None
    groups = default_anchor_sets() if anchors is None else anchor_groups
    pairs = list(default_pairs() if pairs is None else pairs)
    anchors = list(default_anchors() if anchors is None else anchors)
    if len(pairs) < 2:
        raise InputError(
            f"{len(pairs)} prompt pairs given", hint="pass at least 2 (safe, unsafe) pairs"
        )
    if len(anchors) < 8:
        raise InputError(
            f"{len(anchors)} benign anchors given", hint="pass at least 8 (thousands is better)"
        )
    if not 0 <= layer <= source.num_layers:
        raise InputError(
            f"layer {layer} out of range for {source.model_id}", hint=f"use 0..{source.num_layers}"
        )
    for extra, extra_layer in more_sources:
        if not 0 <= extra_layer <= extra.num_layers:
            raise InputError(
                f"layer {extra_layer} out of range for {extra.model_id}",
                hint=f"use 0..{extra.num_layers}",
            )
    safe_texts = [p.safe for p in pairs]
    unsafe_texts = [p.unsafe for p in pairs]
    n = len(pairs)
    cats = tuple(p.category for p in pairs)

    def read(reader: SourceLike, at: int) -> tuple[SidePairs, Tensor]:
        states = reader.pooled([*safe_texts, *unsafe_texts, *anchors], at)
        return SidePairs(states[:n], states[n : 2 * n], cats), states[2 * n :]

    side, source_anchors = read(source, layer)
    extra_sides = []
    for extra, extra_layer in more_sources:
        extra_pairs, extra_anchors = read(extra, extra_layer)
        extra_prov = {
            "source_model": extra.model_id,
            "source_layer": extra_layer,
            "source_random_weights": bool(getattr(extra, "random_weights", False)),
        }
        extra_sides.append(SourceSide(extra_pairs, extra_anchors, extra_prov))
    target_anchors = target.pooled(anchors)
    prov = {
        "source_model": source.model_id,
        "source_layer": layer,
        "source_random_weights": bool(getattr(source, "random_weights", False)),
        "target_model": target.target_id,
        "target_random_weights": bool(getattr(target, "random_weights", False)),
        "data": "given by the caller" if given else DEFAULT_DATA_NOTE,
        **data_provenance(safe_texts, unsafe_texts, anchors),
    }
    target_fit, source_fit = anchor_gate_fits(groups, len(anchors))
    return assemble_pack(
        source=side,
        source_anchors=source_anchors,
        target_anchors=target_anchors,
        map_kind=map_kind,
        target_id=target.target_id,
        conditioning_space=target.conditioning_space,
        provenance=prov,
        calibration=calibration,
        map_kwargs=map_kwargs,
        source_gate_spec=source_spec(source, layer),
        encoding=target_encoding(target),
        direction_kind=direction_kind,
        more_sources=extra_sides,
        target_gate_fit=target_fit,
        source_gate_fit=source_fit,
    ).pack


def target_encoding(target: Any) -> dict[str, Any]:
    """The target's encoding spec (``target.encoding_spec()``), or {} for a target without one."""
    spec = getattr(target, "encoding_spec", None)
    return dict(spec()) if callable(spec) else {}


def stack_pairs(states: Mapping[str, Tensor], pairs: Sequence[Any]) -> SidePairs:
    """Look up pooled states by text for a list of pairs (``states`` maps text → [D])."""
    return SidePairs(
        torch.stack([states[p.safe] for p in pairs]),
        torch.stack([states[p.unsafe] for p in pairs]),
        tuple(p.category for p in pairs),
    )
