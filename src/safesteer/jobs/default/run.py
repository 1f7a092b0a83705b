"""Running the default job: read the source once, report every target, write the results.

``run_default_job(JobConfig(out=Path("runs/default")))`` (or ``safesteer demo``):

1. reads the source (SmolLM2-135M by default) once on the real pairs and benign sets
   (:mod:`~safesteer.jobs.default.splits`), picks the layer (auto), the source directions and
   the source gate (:mod:`~safesteer.jobs.default.gates`; the default gating mode);
2. for each target (Gemma-3-270M, MiniLM by default) reads every prompt once, fits the
   target-side probes on the "judge" split, builds the native pack (the baseline the method
   avoids), one transferred pack per map, and random directions of equal norm
   (:mod:`~safesteer.jobs.default.target_report`); the map is chosen by a benign-only rule
   (transport fidelity ρ), every map is reported. Each transferred pack is scored always-on,
   gated by its target gate and gated by the source gate [ours] (decisions from the held-out
   prompts' source states, steering in the target), per benign set and per unsafe category;
3. writes ``metrics.json`` (:class:`~safesteer.jobs.default.records.JobMetrics`), plots and
   ``index.html``; the packs to ``packs/``; and images (:mod:`~safesteer.jobs.default.images`).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

from safesteer.atomic import write_json_atomic
from safesteer.build import data_provenance, stack_pairs
from safesteer.evaluation import transfer_metrics as tm
from safesteer.jobs.default.config import DEFAULT_LAYER, DEFAULT_LAYER_NOTE, JobConfig, Log
from safesteer.jobs.default.direction_scores import SetStates, set_rates
from safesteer.jobs.default.gates import DEFAULT_GATE_SIDE, GATE_RULES, fit_gate
from safesteer.jobs.default.records import JobMetrics
from safesteer.jobs.default.results_doc import write_results
from safesteer.jobs.default.splits import SCENES_NOTE, load_job_data, pooled_by_text, rows
from safesteer.jobs.default.summary import summarize
from safesteer.jobs.default.target_report import (
    Job,
    SourceSide,
    TargetLoader,
    run_target,
    single_thread,
)
from safesteer.jobs.default.variants import add_two_source_rows
from safesteer.models.device import release
from safesteer.models.source import load_source
from safesteer.pack import source_spec
from safesteer.provenance import environment_record

WHAT = (
    "transfer report of the safesteer default job (representation level; judges are probes on "
    "target states, not image classifiers)"
)


def run_default_job(
    config: JobConfig,
    log: Log = print,
    *,
    source_loader: Callable[[str], Any] = load_source,
    target_loader: TargetLoader | None = None,
) -> dict[str, Any]:
    """Run the job; write ``packs/``, ``metrics.json``, plots and ``index.html``; return metrics.

    ``source_loader`` / ``target_loader`` turn the names in ``config`` into a source reader and
    a (target adapter, pipeline or None); the defaults load presets or the user's models
    (:func:`safesteer.models.load_source`, :func:`safesteer.targets.load_target`). The return
    value is the content of ``metrics.json``.
    """
    if target_loader is None:
        from safesteer.targets import load_target  # imported on use: diffusers is heavy

        target_loader = functools.partial(
            load_target, dtype=config.dtype, device=config.device, offload=config.offload
        )
    if source_loader is load_source:
        source_loader = functools.partial(load_source, dtype=config.dtype, device=config.device)
    if config.n_images > 0:  # an image evaluation that cannot run is refused now, not at the end
        from safesteer.jobs.default.images import check_hand_over
        from safesteer.models.zoo import is_preset

        for name in config.targets:
            if not is_preset(name):
                check_hand_over(name, config)
    t0 = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    data = load_job_data(config)
    counts = data.sampling["counts"]
    log(
        f"data: pairs {data.pairs_label}: {len(data.train)} direction / {len(data.judge)} judge "
        f"/ {len(data.test)} test; benign fit {counts['fit']}, calibration "
        f"{counts['calibration']}, test {counts['test']} (labels in metrics.json)"
    )
    source = source_loader(config.source)
    log(
        f"source {source.model_id}: {source.num_layers} layers "
        f"(loaded in {time.perf_counter() - t0:.1f} s)"
    )
    src_texts = list(
        dict.fromkeys(
            [
                *(t for p in (*data.train, *data.test) for t in (p.safe, p.unsafe)),
                *data.benign_texts(),
            ]
        )
    )
    layer_report: dict[str, Any]
    if config.layer == "auto":
        from safesteer.models.layers import best_layer, score_layers

        # one pass over every layer, scored cross-fitted on the direction pairs (source side)
        scores = score_layers(source, None, data.train)
        layer = best_layer(scores).layer
        layer_report = {
            "rule": "auto: best cross-fitted AUROC of the difference-of-means source direction "
            "on the direction pairs read (safesteer.models.layers; source side only)",
            "scores": {str(s.layer): s.auroc for s in scores},
        }
    else:
        layer = source.resolve_layer(int(config.layer))
        note = DEFAULT_LAYER_NOTE if config.layer == DEFAULT_LAYER else "given by the user"
        layer_report = {"rule": note}
    src_states = pooled_by_text(functools.partial(source.pooled, layer=layer), src_texts)
    source_id = source.model_id
    spec = source_spec(source, layer)
    source_random = bool(getattr(source, "random_weights", False))
    source_exclusions = {
        str(k): dict(v.most_common(3)) for k, v in getattr(source, "exclusions", {}).items()
    }
    release(source)  # free the source model before loading targets: peak = max, not sum
    del source
    release()
    log(
        f"source layer {layer}; pooled {len(src_states)} prompts ({time.perf_counter() - t0:.1f} s)"
    )

    train_s, test_s = stack_pairs(src_states, data.train), stack_pairs(src_states, data.test)
    v_s, _ = train_s.directions("source", {"space": "source"})
    fit_s = rows(src_states, data.anchors.fit)
    cal_s = {n: rows(src_states, t) for n, t in data.calibration.items()}
    # the global direction only, as the rule was validated (FINDINGS R1: one score, so the
    # set-max level holds for it); the pack's categories still come from its target vectors
    source_gate = fit_gate("source", fit_s, cal_s, {"global": v_s.vector}, score=config.gate_score)
    side = SourceSide(
        train=train_s,
        test=test_s,
        anchors={t: src_states[t] for t in data.benign_texts()},
        provenance={
            "source_model": source_id,
            "source_layer": layer,
            "source_random_weights": source_random,
            "data": f"pairs: {data.pairs_label}, direction part; map-fit anchors: fit parts of "
            f"{', '.join(data.fit_sets)} (labels in metrics.json data.sets)",
            **data_provenance(
                [p.safe for p in data.train], [p.unsafe for p in data.train], data.anchors.fit
            ),
        },
        gate_spec=spec,
        gate=source_gate,
        sets=SetStates(
            {n: rows(src_states, t) for n, t in data.benign_test.items()},
            test_s.unsafe,
            test_s.categories,
        ),
    )
    metrics = JobMetrics(
        what=WHAT,
        source={
            "model": source_id,
            "layer": layer,
            "layer_choice": layer_report,
            "random_weights": source_random,
            "vector_norm": v_s.norm,
            "auroc_style_matched_source_side": tm.projection_auroc(
                v_s.vector, test_s.safe, test_s.unsafe
            ),
            "gate": {
                "rule": GATE_RULES["source"],
                "default_gating_mode": DEFAULT_GATE_SIDE == "source",
                **set_rates(source_gate, side.sets),
            },
            "pooling_check": {
                "outlier_tokens_dropped_by_position (prompts read this run, not cache hits)": (
                    source_exclusions
                ),
                "vector_top1_dim_share": tm.vector_top_dim_share(v_s.vector, 1),
                "anchor_top1_dim_energy_share": tm.top_dim_share(
                    rows(src_states, data.anchors.held_out), 1
                ),
            },
        },
        data={
            "pairs": data.pairs_label,
            "scenes_note": SCENES_NOTE if config.pairs == "safesteer" else None,
            "n_pairs": {"train": len(data.train), "judge": len(data.judge), "test": len(data.test)},
            "n_anchors": {
                "fit": len(data.anchors.fit),
                "held_out": len(data.anchors.held_out),
                "judge": len(data.anchors.judge),
            },
            "sets": data.labels,
            "sampling": data.sampling,
            "hashes": data.hashes,
            "roles": {
                "train": "direction part of the pairs: source and native directions",
                "judge": "probe part of the pairs + benign probe parts: target-side judges",
                "test": "reported only",
                "fit": "map fit, gate covariance (benign)",
                "calibration": "gate thresholds (benign), map choice by ρ",
                "held_out": "benign test parts, reported per set",
            },
        },
        config=config.to_json(),
        environment=environment_record(),
    )
    job = Job(config, data, side, log)
    for name in config.targets:
        metrics.targets[name] = run_target(name, job, target_loader)
    if config.variants != "none":
        t1 = time.perf_counter()
        with single_thread():
            added = add_two_source_rows(metrics.targets, config.source, data.train)
        if added:
            log(f"two-source variants: {added} rows in {time.perf_counter() - t1:.1f} s")
    metrics.summary = summarize(metrics, config)
    metrics.seconds = time.perf_counter() - t0
    result = metrics.to_json()
    write_json_atomic(config.out / "metrics.json", result, default=float)
    write_results(json.loads(json.dumps(result, default=float)), config.out / "results.md")
    try:
        from safesteer.jobs.default.report_page import write_page

        write_page(metrics, config.out)
    except ImportError:  # pragma: no cover - matplotlib missing
        log("plots skipped: matplotlib is not installed (pip install 'safesteer[eval]')")
    for line in metrics.summary.lines:
        log(line)
    return result
