"""Everything for one target: probes, the native pack, one transferred pack per map, random.

:func:`report_target` works on pooled states already read (the job reads each model once and
builds every pack from the same states); :func:`run_target` loads the target, reads its states,
reports, then makes the images (:mod:`~safesteer.jobs.default.images`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from safesteer.build import (
    BuiltPack,
    SidePairs,
    assemble_pack,
    native_pack,
    stack_pairs,
    target_encoding,
)
from safesteer.evaluation import transfer_metrics as tm
from safesteer.evaluation.probes import fit_probes
from safesteer.jobs.default import variants
from safesteer.jobs.default.config import QUOTED_PROBE, JobConfig, Log
from safesteer.jobs.default.direction_scores import (
    GateInputs,
    SetStates,
    score_direction,
    spread,
)
from safesteer.jobs.default.gates import GATE_RULES, fit_gate
from safesteer.jobs.default.map_choice import MAP_RULE, choose_map, transport_fidelity
from safesteer.jobs.default.records import MapResult, NativeResult, RandomResult, TargetReport
from safesteer.jobs.default.splits import JobData, pooled_by_text, rows
from safesteer.maths.calibration import calibrate_zscore
from safesteer.maths.directions import shrunk_lda
from safesteer.maths.gating import Gate
from safesteer.maths.metrics import cosine, r2_score
from safesteer.targets.pooled import cached_target_pooled

#: loads a target by name: (adapter, pipeline or None), as :func:`safesteer.targets.load_target`
TargetLoader = Callable[[str], tuple[Any, Any]]


@dataclass(frozen=True)
class SourceSide:
    """What the job read from the source model once, for every target (source states only)."""

    train: SidePairs  # the direction pairs: the source directions
    test: SidePairs  # the test pairs: what the source gates decide on
    anchors: dict[str, Tensor]  # every benign prompt (fit, calibration, tests), by text
    provenance: dict[str, Any]  # source model, layer and data hashes: every pack starts here
    gate_spec: dict[str, Any]  # which reader the source gates read (safesteer.pack.source_spec)
    gate: Gate  # the source gate (safesteer.jobs.default.gates), the same for every pack
    sets: SetStates  # the reported sets' source states (benign test sets, unsafe test)


@dataclass(frozen=True)
class Job:
    """One run of the default job: its settings, data, source side and log."""

    config: JobConfig
    data: JobData
    source: SourceSide
    log: Log


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run small-tensor analysis on one thread, then restore the thread count.

    The report is thousands of tiny matrix products; with two threads each one waits on a
    thread barrier, which on a busy machine costs ~80 ms instead of ~3 µs.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_target(name: str, job: Job, target_loader: TargetLoader) -> TargetReport:
    """Load the target, read every prompt once, report, then images or the image evaluation."""
    from safesteer.jobs.default.images import hand_over_to_evaluation, random_weight_images

    t0 = time.perf_counter()
    config, data, log = job.config, job.data, job.log
    adapter, pipe = target_loader(name)
    a = data.anchors
    texts = [*data.all_pair_texts(), *data.benign_texts(), *a.judge]
    states = pooled_by_text(
        functools.partial(cached_target_pooled, adapter, cache=config.cache), texts
    )
    log(f"[{name}] pooled {len(states)} prompts in {time.perf_counter() - t0:.1f} s")
    with single_thread():
        report, best = report_target(name, adapter, states, job)
        if pipe is None and config.n_images > 0 and best is not None:
            t2 = time.perf_counter()
            held = rows(states, a.held_out)
            report.images = random_weight_images(adapter, name, best.pack, config, data, held)
            log(
                f"[{name}] {config.n_images} random-weight images in "
                f"{time.perf_counter() - t2:.1f} s"
            )
        report.seconds = time.perf_counter() - t0
    if pipe is not None and config.n_images > 0 and report.chosen_map is not None:
        # evaluate() loads the pipeline itself (as Ray workers do): never hold two copies
        del adapter, pipe
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        t2 = time.perf_counter()
        evaluation = hand_over_to_evaluation(name, config, data, report.chosen_map)
        report.image_evaluation = evaluation
        log(
            f"[{name}] image evaluation ({evaluation['protocol']}) in "
            f"{evaluation['run_dir']} ({time.perf_counter() - t2:.1f} s)"
        )
    return report


def report_target(
    name: str, adapter: Any, states: dict[str, Tensor], job: Job
) -> tuple[TargetReport, BuiltPack | None]:
    """Probes, native, transferred packs (saved to ``packs/``) and random directions.

    Returns the report and the transferred pack of the map chosen by :func:`choose_map` (a
    benign-only rule fixed in advance; None when no map ran).
    """
    config, data, log, source = job.config, job.data, job.log, job.source
    a = data.anchors
    target_id, space = adapter.target_id, adapter.conditioning_space
    train_t, test_t = stack_pairs(states, data.train), stack_pairs(states, data.test)
    judge_t = stack_pairs(states, data.judge)
    fit_t, held_t = rows(states, a.fit), rows(states, a.held_out)
    probes = fit_probes(torch.cat([judge_t.safe, rows(states, a.judge)]), judge_t.unsafe)
    prov = {
        **source.provenance,
        "target_model": target_id,
        "conditioning_space": space,
        "target_random_weights": bool(getattr(adapter, "random_weights", False)),
    }
    packs_dir = config.out / "packs"
    packs_dir.mkdir(parents=True, exist_ok=True)
    quoted = probes[QUOTED_PROBE]

    def category_table(vectors: dict[str, Tensor]) -> dict[str, Any]:
        return tm.category_table(
            vectors,
            test_t.safe,
            test_t.unsafe,
            list(test_t.categories),
            quoted,
            config.category_alpha,
        )

    cal_t = {n: rows(states, t) for n, t in data.calibration.items()}
    target_sets = SetStates(
        {n: rows(states, t) for n, t in data.benign_test.items()},
        test_t.unsafe,
        test_t.categories,
    )
    sets = {"target": target_sets, "source": source.sets}

    def with_job_gates(built: BuiltPack, source_gate: Gate | None) -> BuiltPack:
        """The pack with the job's gates (benign fit + calibration parts of every set)."""
        pack = built.pack
        vectors = {"global": pack.global_vector, **pack.category_vectors}
        built.pack = replace(
            pack,
            gate=fit_gate("target", fit_t, cal_t, vectors),
            source_gate=source_gate,
            provenance={
                **pack.provenance,
                "gate_fitted_on": GATE_RULES["target"],
                **(
                    {"source_gate_fitted_on": GATE_RULES["source"], "default_gate": "source"}
                    if source_gate is not None
                    else {}
                ),
            },
        )
        return built

    native = native_pack(
        target=train_t,
        gate_anchors=fit_t,
        target_id=target_id,
        conditioning_space=space,
        provenance=prov,
        gate_score=config.gate_score,
        encoding=target_encoding(adapter),
    )
    native = with_job_gates(native, None)
    file_stem = name.replace("/", "_")  # a hub id names a file, not a folder
    native.pack.save(packs_dir / f"{file_stem}-native.safetensors")
    v_n = native.pack.global_vector
    native_result = NativeResult(
        scores=score_direction(
            v_n,
            test=test_t,
            easy_benign=held_t,
            probes=probes,
            alphas=config.alphas,
            built=native,
            sets=sets,
        ),
        label="native: fitted on target-side unsafe data (the baseline the method avoids)",
        categories=category_table(native.pack.category_vectors),
    )

    src_fit, src_held = rows(source.anchors, a.fit), rows(source.anchors, a.held_out)
    src_cal = torch.cat([rows(source.anchors, t) for t in data.calibration.values()])
    tgt_cal = torch.cat(list(cal_t.values()))
    source_states = GateInputs(source.test.unsafe, source.test.safe, src_held)
    maps: dict[str, MapResult] = {}
    built_by_map: dict[str, BuiltPack] = {}
    # the shrunk-LDA source direction (issue 11 variant): carried by each map, reported only
    v_lda = shrunk_lda(source.train.safe, source.train.unsafe).vector
    for kind in config.maps:
        t1 = time.perf_counter()
        built = assemble_pack(
            source=source.train,
            source_anchors=src_fit,
            target_anchors=fit_t,
            map_kind=kind,
            target_id=target_id,
            conditioning_space=space,
            provenance=prov,
            calibration=config.calibration,
            gate_score=config.gate_score,
            source_gate_spec=source.gate_spec,
            encoding=target_encoding(adapter),
        )
        built = with_job_gates(built, source.gate)
        built.pack.save(packs_dir / f"{file_stem}-{kind}.safetensors")
        built_by_map[kind] = built
        assert built.map is not None and built.source_direction is not None
        v_t = built.pack.global_vector
        fit = built.map.score(src_held, held_t)
        v_s = built.source_direction
        nulls = tm.null_cosines(
            built.map.transport, int(src_fit.shape[1]), v_s.norm, v_n, config.n_null, config.seed
        )
        scores = score_direction(
            v_t,
            test=test_t,
            easy_benign=held_t,
            probes=probes,
            alphas=config.alphas,
            built=built,
            source_states=source_states,
            sets=sets,
        )
        maps[kind] = MapResult(
            scores=scores,
            label=f"transferred ({kind} map fitted on benign anchors only)",
            fit_held_out={
                "r2": fit.r2,
                "mean_cosine": fit.mean_cosine,
                "n_anchors": fit.n_anchors,
                **_procrustes_scaled_r2(built, src_held, held_t),
            },
            cosine_to_native=cosine(v_t, v_n),
            null_cosine_random_source=spread(nulls),
            norm_ratio_to_native=tm.norm_ratio(v_t, v_n),
            beta=built.beta,
            categories=category_table(built.pack.category_vectors),
            category_cosine_to_native={
                c: cosine(v, native.pack.category_vectors[c])
                for c, v in built.pack.category_vectors.items()
                if c in native.pack.category_vectors
            },
            seconds=time.perf_counter() - t1,
            norm_ratio_to_native_zscore_rule=tm.norm_ratio(
                calibrate_zscore(built.map.transport(v_s.vector), v_s.vector, src_fit, fit_t), v_n
            ),
            transport_fidelity=transport_fidelity(src_cal, tgt_cal, v_s.vector, v_t),
            variants={
                "shrunk-lda direction": _carried(built, v_lda, src_cal, tgt_cal, test_t, v_n)
            },
        )
        log(
            f"[{name}] {kind}: ρ (benign calibration parts)={maps[kind].transport_fidelity:.3f}, "
            f"held-out R²={fit.r2:.3f}, style-matched AUROC={scores.auroc_style_matched:.3f} "
            f"(native {native_result.scores.auroc_style_matched:.3f})"
        )

    draws = tm.random_directions(
        int(fit_t.shape[1]), float(v_n.norm()), config.n_random, config.seed + 1
    )
    rnd = [
        score_direction(r, test=test_t, easy_benign=held_t, probes=probes, alphas=config.alphas)
        for r in draws
    ]
    report = TargetReport(
        target_model=target_id,
        target_random_weights=prov["target_random_weights"],
        conditioning_space=space,
        dim=int(fit_t.shape[1]),
        probes={
            n: {
                **p.describe(),
                "fitted_on": "judge-split pairs (safe + unsafe) + judge benign anchors",
            }
            for n, p in probes.items()
        },
        probe_check_on_test={
            n: {
                "unsafe_judged_unsafe": float(p.is_unsafe(test_t.unsafe).float().mean()),
                "safe_twins_judged_unsafe": float(p.is_unsafe(test_t.safe).float().mean()),
                "benign_held_out_judged_unsafe": float(p.is_unsafe(held_t).float().mean()),
            }
            for n, p in probes.items()
        },
        pooling_check={
            "held_out_anchor_top1_dim_energy_share": tm.top_dim_share(held_t, 1),
            "held_out_anchor_top5_dim_energy_share": tm.top_dim_share(held_t, 5),
        },
        native=native_result,
        maps=maps,
        random=RandomResult(
            label=f"{config.n_random} random directions of the native vector's norm (seeded)",
            auroc_style_matched=spread([r.auroc_style_matched for r in rnd]),
            auroc_easy_benign_vs_unsafe=spread([r.auroc_easy_benign_vs_unsafe for r in rnd]),
            always_on=[
                {
                    "alpha": config.alphas[i],
                    "unsafe_rate": {
                        n: spread([r.always_on[i]["unsafe_rate"][n] for r in rnd]) for n in probes
                    },
                    "benign_cosine": spread([r.always_on[i]["benign_cosine"] for r in rnd]),
                }
                for i in range(len(config.alphas))
            ],
        ),
    )
    chosen = choose_map({k: m.transport_fidelity for k, m in maps.items()})
    if chosen is not None:
        report.chosen_map = chosen
        report.map_choice = {
            "rule": MAP_RULE,
            "transport_fidelity": {k: m.transport_fidelity for k, m in maps.items()},
        }
    if chosen is not None and config.variants != "none":
        t1 = time.perf_counter()
        inputs = variants.VariantInputs(
            source_pairs=source.train,
            target_test=test_t,
            source_states=source.anchors,
            target_states=states,
            fit_sets=data.fit_sets,
            held_sets=variants.held_out_parts(data.calibration, data.benign_test),
            benign_test=target_sets.benign,
            tau_anchors=fit_t,
            judge=quoted,
            native=v_n,
            n_null=config.n_null,
            seed=config.seed,
        )
        report.variant_inputs = inputs
        report.variants = [
            r.to_json()
            for r in variant_rows(
                inputs,
                built_by_map,
                chosen,
                draws,
                src_fit,
                fit_t,
                maps[chosen].null_cosine_random_source["max"],
            )
        ]
        log(f"[{name}] {len(report.variants)} variants in {time.perf_counter() - t1:.1f} s")
    return report, (built_by_map[chosen] if chosen is not None else None)


def variant_rows(
    inputs: variants.VariantInputs,
    built_by_map: dict[str, BuiltPack],
    chosen: str,
    random: Tensor,
    src_fit: Tensor,
    fit_t: Tensor,
    default_null: float,
) -> list[variants.VariantRow]:
    """Issue 11's variants of one target (:mod:`~safesteer.jobs.default.variants`), reported only.

    Steering rule (native, the default vector, random), calibration (β vs z-score), anchors
    kinds (Procrustes and the chosen map), the MLP's transport modes and ridge's λ rule (when
    those maps ran). The two-source rows need another target's states: the job adds them.
    """
    default = built_by_map[chosen]
    assert default.map is not None and default.source_direction is not None
    out = variants.steering_rows(inputs, default.pack.global_vector, chosen, list(random))
    out += variants.calibration_rows(
        inputs, default.map, default.source_direction, src_fit, fit_t, chosen
    )
    out += variants.anchor_rows(inputs, variants.variant_map_kinds(chosen))
    mlp = built_by_map.get("mlp")
    if mlp is not None and mlp.map is not None and mlp.source_direction is not None:
        out += variants.mlp_rows(inputs, mlp.map, mlp.source_direction, src_fit, fit_t)
    if "ridge" in built_by_map:
        out += variants.ridge_rows(inputs, inputs_fit_texts(inputs))
    for row in out:  # the default pack's vector: the null of its map (as in the transfer table)
        if row.family in ("steering rule", "calibration") and row.name.startswith(f"{chosen},"):
            row.null_cosine_max = default_null
    return out


def inputs_fit_texts(inputs: variants.VariantInputs) -> list[str]:
    """Every map-fit anchor text (the default anchors), in fit-set order."""
    return list(dict.fromkeys(t for texts in inputs.fit_sets.values() for t in texts))


def _carried(
    built: BuiltPack, vector: Tensor, src_cal: Tensor, tgt_cal: Tensor, test: SidePairs, v_n: Tensor
) -> dict[str, float]:
    """Another source direction through the same fitted map: AUROC, ρ, cosine to native."""
    assert built.map is not None
    moved = built.map.transport(vector).float()
    return {
        "auroc_style_matched": tm.projection_auroc(moved, test.safe, test.unsafe),
        "transport_fidelity": transport_fidelity(src_cal, tgt_cal, vector, moved),
        "cosine_to_native": cosine(moved, v_n),
    }


def _procrustes_scaled_r2(built: BuiltPack, source: Tensor, target: Tensor) -> dict[str, float]:
    """R² of ``μ_t + β·W(x − μ_s)`` for a Procrustes map (β: the calibration ratio).

    Procrustes rotates without scaling, so its plain R² mixes fit quality with the two spaces'
    units; scaled by β it compares like with like. Other maps fit their own scale: nothing.
    """
    fitted = built.map
    if fitted is None or built.beta is None or fitted.kind != "procrustes":
        return {}
    mu_t = fitted.target_mean_
    pred = mu_t + built.beta * (fitted.transform(source) - mu_t)
    return {"r2_beta_scaled": r2_score(pred, target)}
