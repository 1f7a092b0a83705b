"""Build a pack at real scale: one model in memory at a time, memory checked before loading.

:func:`build_staged` is what ``safesteer build`` runs. It never holds the source LLM and the
generator together, so the run's peak memory is ``max(source, generator)``, not their sum:

1. estimate each model's parameter memory from its configs (:mod:`safesteer.models.memory`),
   print it, and refuse a run that cannot fit (``force=True`` / ``--skip-memory-check`` tries
   anyway);
2. load the source in the chosen dtype on the device, read the pooled states of the pairs and
   benign anchors (layer ``"auto"``: :func:`safesteer.models.layers.choose_layer` on the
   source-side pairs only), **free it**;
3. optionally the same for a smaller *gate reader* (e.g. SmolLM2 gating a pack built from a
   7B source): its source gate is fitted on its own states of the same benign anchors and
   pairs, and the pack's ``source_gate_spec`` names it, so generation loads only that reader;
4. load the target, read the benign anchors (a ``native`` pack: also the pairs, target side),
   record its encoding spec, **free it**;
5. fit the map, calibrate, fit the gates (:func:`safesteer.build.assemble_pack`).

Example:
    >>> plan = BuildPlan(source="smollm2-135m", layer=15, target="tiny-flux")
    >>> pack, report = build_staged(plan)  # doctest: +SKIP
    >>> report["order"]  # doctest: +SKIP
    ['source smollm2-135m: loaded, read, freed', 'target tiny-flux: loaded, read, freed']
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from safesteer.build import (
    SidePairs,
    SourceSide,
    anchor_gate_fits,
    assemble_pack,
    data_provenance,
    fit_source_gate,
    native_pack,
    target_encoding,
)
from safesteer.errors import InputError, ModelLoadError
from safesteer.maths.steering import DEFAULT_PROJECTION_QUANTILE
from safesteer.models import memory
from safesteer.models.device import (
    check_offload,
    gib,
    peak_rss_bytes,
    release,
    reset_peak_rss,
    resolve_device,
    rss_bytes,
)
from safesteer.pack import SafetyPack, source_spec

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuildPlan:
    """Everything one staged build needs (see the module docstring)."""

    source: str
    layer: int | str
    target: str
    map_kind: str = "procrustes"
    calibration: str = "beta"
    pairs: tuple[Any, ...] | None = None  # PromptPair; None: SafeSteer direction part
    anchors: tuple[str, ...] | None = None  # None: "all" (data.partitions.default_anchors)
    anchor_groups: tuple[str, ...] | None = None  # each anchor's benign set: gates by set-max
    native: bool = False  # the baseline: directions from target-side unsafe data
    gate_reader: str | None = None  # a (smaller) reader for the source gate
    gate_layer: int | str = "auto"
    dtype: str | None = "auto"
    device: str | None = "auto"
    offload: str = "none"
    force: bool = False  # build even when the estimate says it will not fit
    also_native: bool = False  # also build the native baseline from the same target read
    max_sequence_length: int | None = None  # the target's encoding length (None: its default)
    direction_kind: str = "difference-of-means"  # or "shrunk-lda" (DIRECTION_KINDS)
    more_sources: tuple[tuple[str, int | str], ...] = ()  # (name, layer): averaged directions
    to_projection_q: float = DEFAULT_PROJECTION_QUANTILE  # τ of the "to-projection" rule
    source_options: dict[str, Any] = field(default_factory=dict)  # chat_template, cache…


def _is_small(name: str) -> bool:
    from safesteer.models.zoo import is_preset

    return name.startswith("tiny-") or is_preset(name)


def estimate(plan: BuildPlan) -> dict[str, Any]:
    """Memory estimates of the models the plan loads, and the peak (nothing is loaded)."""
    from safesteer.models.device import resolve_dtype

    device = resolve_device(plan.device or "auto")
    dtype = resolve_dtype(plan.dtype or "auto", device)
    out: dict[str, Any] = {"device": device, "dtype": str(dtype).removeprefix("torch.")}
    models: dict[str, memory.MemoryEstimate | None] = {}
    notes = []
    readers = [plan.source, *(name for name, _ in plan.more_sources)] if not plan.native else []
    if plan.gate_reader and not plan.native:
        readers.append(plan.gate_reader)
    for name in readers:
        if _is_small(name):
            notes.append(f"{name}: packaged / tiny model (well under 1 GiB)")
            models[name] = None
            continue
        try:
            models[name] = memory.estimate_model(name, dtype)
        except (ModelLoadError, InputError) as exc:
            notes.append(f"{name}: configs not readable here ({exc.message[:90]}…)")
            models[name] = None
    target: memory.MemoryEstimate | None = None
    if _is_small(plan.target):
        notes.append(f"{plan.target}: packaged / tiny model (well under 1 GiB)")
    else:
        try:
            target = memory.estimate_pipeline(plan.target, dtype)
        except (ModelLoadError, InputError) as exc:
            notes.append(f"{plan.target}: configs not readable here ({exc.message[:90]}…)")
    biggest_reader = max(
        (m for m in models.values() if m is not None), key=lambda m: m.bytes, default=None
    )
    need = memory.peak(biggest_reader, target, offload=plan.offload)
    out.update(
        readers={k: (None if v is None else v.to_json()) for k, v in models.items()},
        target=None if target is None else target.to_json(),
        peak_device_bytes=need.device_bytes,
        peak_ram_bytes=need.ram_bytes,
        rule=need.rule,
        notes=notes,
        _peak=need,
    )
    return out


def _describe(est: dict[str, Any]) -> list[str]:
    lines = []
    for name, m in est["readers"].items():
        if m is not None:
            lines.append(f"  source {name}: {m['params'] / 1e9:.2f} B params = {gib(m['bytes'])}")
    if est["target"] is not None:
        t = est["target"]
        lines.append(f"  target {t['model']}: {t['params'] / 1e9:.2f} B params = {gib(t['bytes'])}")
    lines += [f"  {n}" for n in est["notes"]]
    lines.append(
        f"  peak ≈ {gib(est['peak_device_bytes'])} on {est['device']} ({est['dtype']}; "
        f"{est['rule']})"
    )
    return lines


def _read_source(
    name: str,
    layer: int | str,
    texts: Sequence[str],
    pairs: Sequence[Any],
    plan: BuildPlan,
    log: Log,
) -> tuple[Any, int, dict[str, Any], str, int, Any]:
    """Load a reader, resolve the layer, read ``texts``, free it.

    Returns ``(states, layer, spec, model_id, num_layers, dead-ref)``.
    """
    from safesteer.models import load_source

    t0 = time.perf_counter()
    reader = load_source(name, dtype=plan.dtype, device=plan.device, **plan.source_options)
    if layer == "auto":
        from safesteer.models.layers import choose_layer

        resolved = choose_layer(reader, pairs=list(pairs))  # source-side pairs only
    else:
        resolved = reader.resolve_layer(int(layer))
    states = reader.pooled(list(texts), resolved)
    spec = source_spec(reader, resolved)
    model_id, num_layers = str(reader.model_id), int(reader.num_layers)
    ref = weakref.ref(reader.model)
    log(
        f"source {name}: layer {resolved} of {num_layers}, read {len(texts)} prompts in "
        f"{time.perf_counter() - t0:.1f} s on {reader.device} ({reader.dtype}); freeing it"
    )
    release(reader)
    del reader
    release()
    return states, resolved, spec, model_id, num_layers, ref


def build_staged(
    plan: BuildPlan,
    log: Log = print,
    *,
    target_loader: Callable[..., tuple[Any, Any]] | None = None,
) -> tuple[SafetyPack, dict[str, Any]]:
    """Run the plan (module docstring); returns the pack and a report of what ran where."""
    from safesteer.data.partitions import (
        DEFAULT_DATA_NOTE,
        default_anchor_sets,
        default_anchors,
        default_pairs,
    )

    device = resolve_device(plan.device or "auto")
    check_offload(plan.offload, device)
    pairs = list(default_pairs() if plan.pairs is None else plan.pairs)
    anchors = list(default_anchors() if plan.anchors is None else plan.anchors)
    if len(pairs) < 2:
        raise InputError(f"{len(pairs)} prompt pairs given", hint="pass at least 2 pairs")
    if len(anchors) < 8:
        raise InputError(f"{len(anchors)} benign anchors given", hint="pass at least 8")
    est = estimate(plan)
    log("memory estimate (parameters from configs on the meta device, before loading):")
    for line in _describe(est):
        log(line)
    log("  " + memory.check_fits(est.pop("_peak"), device, force=plan.force))
    reset_peak_rss()
    rss0 = rss_bytes()
    report: dict[str, Any] = {"estimate": est, "order": [], "rss_bytes": {"start": rss0}}
    safe_t, unsafe_t = [p.safe for p in pairs], [p.unsafe for p in pairs]
    n = len(pairs)
    cats = tuple(p.category for p in pairs)
    given = plan.pairs is not None or plan.anchors is not None
    prov: dict[str, Any] = {
        "data": "given by the caller" if given else DEFAULT_DATA_NOTE,
        **data_provenance(safe_t, unsafe_t, anchors),
        "loading": "sequential: each model freed before the next loads",
    }
    side = src_anchors = None
    spec: dict[str, Any] = {}
    gate_override: tuple[Any, dict[str, Any]] | None = None
    freed: list[Any] = []
    if not plan.native:
        texts = [*safe_t, *unsafe_t, *anchors]
        states, layer, spec, model_id, _, ref = _read_source(
            plan.source, plan.layer, texts, pairs, plan, log
        )
        freed.append(ref)
        side = SidePairs(states[:n], states[n : 2 * n], cats)
        src_anchors = states[2 * n :]
        prov.update(source_model=model_id, source_layer=layer)
        report["order"].append(f"source {plan.source}: loaded, read, freed")
        report["rss_bytes"]["after_source"] = rss_bytes()
        if plan.gate_reader and plan.gate_reader != plan.source:
            g_states, g_layer, g_spec, g_id, _, g_ref = _read_source(
                plan.gate_reader, plan.gate_layer, texts, pairs, plan, log
            )
            freed.append(g_ref)
            g_side = SidePairs(g_states[:n], g_states[n : 2 * n], cats)
            v_g, cat_g = g_side.directions("source", {"space": "gate reader"})
            gate = fit_source_gate(g_states[2 * n :], v_g, cat_g)
            gate_override = (gate, g_spec)
            prov.update(source_gate_reader=g_id, source_gate_layer=g_layer)
            report["order"].append(f"gate reader {plan.gate_reader}: loaded, read, freed")
    extra_sides: list[SourceSide] = []
    for extra, extra_layer in () if plan.native else plan.more_sources:
        e_states, e_layer, _, e_id, _, e_ref = _read_source(
            extra, extra_layer, texts, pairs, plan, log
        )
        freed.append(e_ref)
        extra_sides.append(
            SourceSide(
                SidePairs(e_states[:n], e_states[n : 2 * n], cats),
                e_states[2 * n :],
                {"source_model": e_id, "source_layer": e_layer},
            )
        )
        report["order"].append(f"source {extra}: loaded, read, freed")
    if target_loader is None:
        from safesteer.targets import load_target

        target_loader = load_target
    t0 = time.perf_counter()
    length = (
        {}
        if plan.max_sequence_length is None
        else {"max_sequence_length": int(plan.max_sequence_length)}
    )
    adapter, pipe = target_loader(
        plan.target, dtype=plan.dtype, device=plan.device, offload=plan.offload, **length
    )
    report["models_alive_when_target_loaded"] = sum(r() is not None for r in freed)
    with_pairs = plan.native or plan.also_native
    target_texts = [*anchors, *safe_t, *unsafe_t] if with_pairs else anchors
    target_states = adapter.pooled(target_texts)
    encoding = target_encoding(adapter)
    target_id, space = str(adapter.target_id), str(adapter.conditioning_space)
    random_weights = bool(getattr(adapter, "random_weights", False))
    log(
        f"target {plan.target}: read {len(target_texts)} prompts in "
        f"{time.perf_counter() - t0:.1f} s; freeing it"
    )
    release(adapter, pipe)
    del adapter, pipe
    release()
    report["order"].append(f"target {plan.target}: loaded, read, freed")
    report["rss_bytes"]["peak"] = peak_rss_bytes()
    prov.update(target_model=target_id, target_random_weights=random_weights)
    m = len(anchors)
    if with_pairs:
        native = native_pack(
            target=SidePairs(target_states[m : m + n], target_states[m + n :], cats),
            gate_anchors=target_states[:m],
            target_id=target_id,
            conditioning_space=space,
            provenance={**prov, "conditioning_space": space},
            encoding=encoding,
        ).pack
        if plan.native:
            return native, report
        report["native_pack"] = native
        target_states = target_states[:m]
    assert side is not None and src_anchors is not None
    # anchors of known benign sets: both gates by set-max over them (FINDINGS R1, R2)
    groups = default_anchor_sets() if plan.anchors is None else plan.anchor_groups
    fits = anchor_gate_fits(groups, len(anchors))
    built = assemble_pack(
        source=side,
        source_anchors=src_anchors,
        target_anchors=target_states,
        map_kind=plan.map_kind,
        target_id=target_id,
        conditioning_space=space,
        provenance=prov,
        calibration=plan.calibration,
        source_gate_spec=spec,
        encoding=encoding,
        direction_kind=plan.direction_kind,
        more_sources=extra_sides,
        to_projection_q=plan.to_projection_q,
        target_gate_fit=fits[0],
        source_gate_fit=fits[1],
    )
    pack = built.pack
    if gate_override is not None:
        gate, g_spec = gate_override
        pack = replace(
            pack,
            source_gate=gate,
            source_gate_spec=g_spec,
            provenance={
                **pack.provenance,
                "source_gate_fitted_on": "benign anchors' states in the gate reader "
                f"{g_spec['model_id']} (its own source directions as vectors)",
            },
        )
    return pack, report


__all__ = ["BuildPlan", "build_staged", "estimate"]
