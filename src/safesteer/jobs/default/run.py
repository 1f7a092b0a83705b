"""The default job: build safety packs on real models and judge the transfer, end to end.

``run_default_job(JobConfig(out=Path("runs/default")))`` (or ``safesteer demo``):

1. reads the source (SmolLM2-135M by default) once on our train pairs and benign anchors;
2. for each target (Gemma-3-270M, MiniLM by default) reads every prompt once, fits the
   target-side judges on the "judge" split, builds the native pack (the baseline the method
   avoids), one transferred pack per map, and random directions of equal norm;
   Each transferred pack is judged always-on, gated by its target gate and gated by its source
   gate [ours] (decisions from the held-out prompts' source states, steering in the target);
3. writes the transfer report (:mod:`safesteer.jobs.transfer_report`) to ``metrics.json``,
   plots and ``index.html``; the packs to ``packs/``; and a few random-weight images.

Benign anchors are split three ways, deterministically: *fit* (maps, β and gates), *held-out*
(map fit quality, benign drift and the gate's benign trigger rate) and *judge* (benign examples
for the judges). Test pairs are never used to fit anything.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from safesteer.atomic import write_json_atomic
from safesteer.errors import InputError
from safesteer.jobs import transfer_report as tr
from safesteer.jobs.build import (
    MAP_KINDS,
    BuiltPack,
    SidePairs,
    assemble_pack,
    data_provenance,
    native_pack,
    stack_pairs,
)
from safesteer.jobs.judges import Judge, fit_judges
from safesteer.maths.gating import Gate
from safesteer.maths.metrics import cosine, r2_score
from safesteer.pack import source_spec
from safesteer.provenance import environment_record, text_set_hash

#: SmolLM2-135M layer used by default; see DEFAULT_LAYER_NOTE for how it was chosen.
DEFAULT_LAYER = 15
DEFAULT_LAYER_NOTE = (
    "layer 15 of 30: what `safesteer layers` / --layer auto picks for SmolLM2-135M (best "
    "cross-fitted AUROC of the source direction on held-out source-side train pairs; no target "
    "data). Measured 2026-11-28 against layer 20 (the method.md §9 pilot's pick): at 15 the "
    "source gate steers 97% of held-out unsafe prompts at 5% benign (93% at 7.7% for 20) and "
    "MiniLM's best style-matched AUROC is 0.73 (0.65 for 20)"
)
DEFAULT_SOURCE = "smollm2-135m"
DEFAULT_TARGETS: tuple[str, ...] = ("gemma3-270m", "minilm-l6")

Log = Callable[[str], None]
JUDGE = "linear-probe"  # the judge the summary quotes (both are in metrics.json)


@dataclass
class JobConfig:
    """Everything the default job takes; the defaults are ``safesteer demo``'s."""

    out: Path
    source: str = DEFAULT_SOURCE
    targets: tuple[str, ...] = DEFAULT_TARGETS
    layer: int | str = DEFAULT_LAYER
    maps: tuple[str, ...] = MAP_KINDS
    calibration: str = "beta"
    gate_score: str = "whitened"  # Gate's score: "whitened" or "projection"
    n_anchors: int = 2000
    holdout_fraction: float = 0.15
    judge_anchor_fraction: float = 0.15
    max_pairs: int | None = None  # cap on pairs per split (for quick runs and tests)
    n_random: int = 5
    n_null: int = 20
    alphas: tuple[float, ...] = tr.DEFAULT_ALPHAS
    category_alpha: float = 1.0
    max_unsafe_rate: float = 0.05
    n_images: int = 2
    seed: int = 0
    cache: bool = True  # reuse pooled states from the user cache ($SAFESTEER_CACHE)


@dataclass
class AnchorSplit:
    """The benign anchors, split three ways (never overlapping)."""

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


def _is_preset(name: str) -> bool:
    """A packaged model preset (anything else is a hub id, a folder or ``tiny-<family>``)."""
    from safesteer.models.zoo import PRESETS

    return name in PRESETS


def load_source(name: str) -> Any:
    """A :class:`SourceReader` for a packaged preset or a user model id/path."""
    from safesteer.models import SourceReader

    return (
        SourceReader.from_preset(name) if _is_preset(name) else SourceReader.from_pretrained(name)
    )


def load_target(name: str) -> tuple[Any, Any]:
    """(adapter, pipeline or None): an EncoderTarget preset, or a user's diffusers pipeline."""
    if _is_preset(name):
        from safesteer.targets.encoder import EncoderTarget

        return EncoderTarget.from_preset(name), None
    from safesteer.targets import load_pipeline

    pipe, pipe_adapter = load_pipeline(name)
    return pipe_adapter, pipe


def _pooled_by_text(
    pooled_fn: Callable[[list[str]], Tensor], texts: Sequence[str]
) -> dict[str, Tensor]:
    unique = list(dict.fromkeys(texts))
    states = pooled_fn(unique).float()
    return {t: states[i] for i, t in enumerate(unique)}


def pooled_by_length(adapter: Any, texts: Sequence[str], batch_size: int = 32) -> Tensor:
    """``adapter.pooled(texts)``, batched by token count with each batch padded to its longest.

    For an encoder target (right padding, masked attention) real-token states do not depend on
    how far a prompt is padded, so the pooled states equal those at the full ``max_length``
    while skipping most of the padding work (prompts here are ~16 tokens, padded to 77).
    Adapters without a ``tokenizer`` / ``max_length`` are called as they are.
    """
    tokenizer, full = getattr(adapter, "tokenizer", None), getattr(adapter, "max_length", None)
    if tokenizer is None or not isinstance(full, int):
        return adapter.pooled(list(texts))
    ids = tokenizer(list(texts), truncation=True, max_length=full)["input_ids"]
    lengths = [len(i) for i in ids]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    rows: dict[int, Tensor] = {}
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            adapter.max_length = max(lengths[i] for i in idx)
            pooled = adapter.pooled([texts[i] for i in idx], batch_size=batch_size)
            rows.update(zip(idx, pooled, strict=True))
    finally:
        adapter.max_length = full
    return torch.stack([rows[i] for i in range(len(texts))])


def cached_target_pooled(adapter: Any, texts: Sequence[str], cache: bool = True) -> Tensor:
    """Pooled target states through the models' disk cache (:class:`StateCache`), if enabled."""
    if not cache:
        return pooled_by_length(adapter, texts)
    from safesteer.models import StateCache, cache_dir

    settings = {
        "space": adapter.conditioning_space,
        "pooling": "masked_mean over real tokens (target adapter)",
        "max_length": getattr(adapter, "max_length", None),
    }
    store = StateCache(cache_dir(), f"target:{adapter.target_id}", settings)
    found = store.get(0, texts)
    missing = [t for t, v in zip(texts, found, strict=True) if v is None]
    if missing:
        computed = pooled_by_length(adapter, missing)
        store.put(0, missing, computed)
        fresh = dict(zip(missing, computed, strict=True))
        found = [v if v is not None else fresh[t] for t, v in zip(texts, found, strict=True)]
    return torch.stack([v for v in found if v is not None])


def _rows(states: dict[str, Tensor], texts: Sequence[str]) -> Tensor:
    return torch.stack([states[t] for t in texts])


@dataclass
class JobData:
    """Prompts the job uses, by role."""

    train: list[Any]
    judge: list[Any]
    test: list[Any]
    anchors: AnchorSplit
    hashes: dict[str, str] = field(default_factory=dict)

    def all_pair_texts(self) -> list[str]:
        return [t for p in (*self.train, *self.judge, *self.test) for t in (p.safe, p.unsafe)]


def load_job_data(config: JobConfig) -> JobData:
    """Our pair splits and benign anchors (labelled as ours in the provenance)."""
    from safesteer.data import benign_anchors, load_pairs

    def cap(pairs: list[Any]) -> list[Any]:
        return pairs if config.max_pairs is None else pairs[: config.max_pairs]

    train, judge, test = (cap(list(load_pairs(s))) for s in ("train", "judge", "test"))
    split = split_anchors(
        benign_anchors(config.n_anchors),
        config.holdout_fraction,
        config.judge_anchor_fraction,
        config.seed,
    )
    hashes = {
        "train_pairs": text_set_hash([t for p in train for t in (p.safe, p.unsafe)]),
        "judge_pairs": text_set_hash([t for p in judge for t in (p.safe, p.unsafe)]),
        "test_pairs": text_set_hash([t for p in test for t in (p.safe, p.unsafe)]),
        "anchors_fit": text_set_hash(split.fit),
        "anchors_held_out": text_set_hash(split.held_out),
        "anchors_judge": text_set_hash(split.judge),
    }
    return JobData(train, judge, test, split, hashes)


@dataclass(frozen=True)
class GateInputs:
    """Pooled states of the held-out prompts in the space a gate reads (target or source).

    Rows match the target-side rows they decide for: ``unsafe`` / ``safe`` the test pairs,
    ``benign`` the held-out anchors.
    """

    unsafe: Tensor
    safe: Tensor
    benign: Tensor


#: (key suffix in the report, label) per gate; "" keeps the original ``curve_gated`` / ``gate``
GATES: tuple[tuple[str, str], ...] = (("", "target gate"), ("_source", "source gate"))


def gated_evaluation(
    vector: Tensor,
    gate: Gate,
    decide_on: GateInputs,
    *,
    test: SidePairs,
    easy_benign: Tensor,
    judges: dict[str, Judge],
    alphas: Sequence[float],
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """A gate's steering curve and trigger rates on the held-out prompts.

    ``m = gate.decide(decide_on).steer``; the target states move as ``h̄ + α·m·v``
    (:func:`~safesteer.jobs.transfer_report.steering_curve`), so rows the gate leaves alone stay
    bit-identical whichever space decided.
    """
    steer_u = gate.decide(decide_on.unsafe).steer.bool()
    steer_b = gate.decide(decide_on.benign).steer.bool()
    steer_twins = gate.decide(decide_on.safe).steer.bool()
    curve = tr.steering_curve(
        vector,
        test.unsafe,
        easy_benign,
        judges,
        alphas,
        steer_unsafe=steer_u,
        steer_benign=steer_b,
    )
    rates = {
        "unsafe_test_steered": float(steer_u.float().mean()),
        "benign_held_out_steered": float(steer_b.float().mean()),
        "safe_twins_steered": float(steer_twins.float().mean()),
    }
    return curve, rates


def judge_direction(
    vector: Tensor,
    *,
    test: SidePairs,
    easy_benign: Tensor,
    judges: dict[str, Judge],
    alphas: Sequence[float],
    built: BuiltPack | None = None,
    source_states: GateInputs | None = None,
) -> dict[str, Any]:
    """AUROCs (style-matched and easy), ‖v‖, and always-on / gated steering curves.

    Gated curves: ``curve_gated`` / ``gate`` with the pack's target gate (on the target states),
    ``curve_gated_source`` / ``gate_source`` with its source gate on ``source_states``.
    """
    out: dict[str, Any] = {
        "norm": float(vector.norm()),
        "auroc_style_matched": tr.projection_auroc(vector, test.safe, test.unsafe),
        "auroc_easy_benign_vs_unsafe": tr.projection_auroc(vector, easy_benign, test.unsafe),
        "curve_always_on": tr.steering_curve(vector, test.unsafe, easy_benign, judges, alphas),
    }
    if built is None:
        return out
    gates = {
        "": (built.pack.gate, GateInputs(test.unsafe, test.safe, easy_benign)),
        "_source": (built.pack.source_gate, source_states),
    }
    for suffix, (gate, decide_on) in gates.items():
        if gate is None or decide_on is None:
            continue
        out[f"curve_gated{suffix}"], out[f"gate{suffix}"] = gated_evaluation(
            vector,
            gate,
            decide_on,
            test=test,
            easy_benign=easy_benign,
            judges=judges,
            alphas=alphas,
        )
    return out


def run_target(
    name: str,
    target_loader: Callable[[str], tuple[Any, Any]],
    config: JobConfig,
    data: JobData,
    source_pairs: SidePairs,
    source_anchors: dict[str, Tensor],
    base_provenance: dict[str, Any],
    log: Log,
    source_test: SidePairs | None = None,
    source_gate_spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything for one target: judges, native, transferred packs, random, report rows.

    ``source_test`` (the test pairs' source states) lets the source gates decide on the test
    prompts; ``source_gate_spec`` names the reader those states came from (stored in packs).
    """
    t0 = time.perf_counter()
    adapter, pipe = target_loader(name)
    a = data.anchors
    texts = [*data.all_pair_texts(), *a.fit, *a.held_out, *a.judge]
    states = _pooled_by_text(
        functools.partial(cached_target_pooled, adapter, cache=config.cache), texts
    )
    log(f"[{name}] pooled {len(states)} prompts in {time.perf_counter() - t0:.1f} s")
    with single_thread():
        report = _report_target(
            name,
            adapter,
            pipe,
            states,
            config,
            data,
            source_pairs,
            source_anchors,
            base_provenance,
            log,
            t0,
            source_test,
            source_gate_spec,
        )
    if pipe is not None and config.n_images > 0 and "best_map" in report:
        # evaluate() loads the pipeline itself (as Ray workers do): never hold two copies
        del adapter, pipe
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        t2 = time.perf_counter()
        report["images"] = hand_over_to_evaluation(name, config, data, report["best_map"])
        log(
            f"[{name}] image evaluation ({report['images']['protocol']}) in "
            f"{report['images']['run_dir']} ({time.perf_counter() - t2:.1f} s)"
        )
    return report


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


def _report_target(
    name: str,
    adapter: Any,
    pipe: Any,
    states: dict[str, Tensor],
    config: JobConfig,
    data: JobData,
    source_pairs: SidePairs,
    source_anchors: dict[str, Tensor],
    base_provenance: dict[str, Any],
    log: Log,
    t0: float,
    source_test: SidePairs | None = None,
    source_gate_spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    a = data.anchors
    target_id, space = adapter.target_id, adapter.conditioning_space
    train_t, test_t = stack_pairs(states, data.train), stack_pairs(states, data.test)
    judge_t = stack_pairs(states, data.judge)
    fit_t, held_t = _rows(states, a.fit), _rows(states, a.held_out)
    judges = fit_judges(torch.cat([judge_t.safe, _rows(states, a.judge)]), judge_t.unsafe)
    prov = {
        **base_provenance,
        "target_model": target_id,
        "conditioning_space": space,
        "target_random_weights": bool(getattr(adapter, "random_weights", False)),
    }
    packs_dir = config.out / "packs"
    packs_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "target_model": target_id,
        "target_random_weights": prov["target_random_weights"],
        "conditioning_space": space,
        "dim": int(fit_t.shape[1]),
        "judges": {
            n: {
                **j.describe(),
                "fitted_on": "judge-split pairs (safe + unsafe) + judge benign anchors",
            }
            for n, j in judges.items()
        },
        "judge_check_on_test": {
            n: {
                "unsafe_judged_unsafe": float(j.is_unsafe(test_t.unsafe).float().mean()),
                "safe_twins_judged_unsafe": float(j.is_unsafe(test_t.safe).float().mean()),
                "benign_held_out_judged_unsafe": float(j.is_unsafe(held_t).float().mean()),
            }
            for n, j in judges.items()
        },
        "pooling_check": {
            "held_out_anchor_top1_dim_energy_share": tr.top_dim_share(held_t, 1),
            "held_out_anchor_top5_dim_energy_share": tr.top_dim_share(held_t, 5),
        },
    }
    linear = judges[JUDGE]

    native = native_pack(
        target=train_t,
        gate_anchors=fit_t,
        target_id=target_id,
        conditioning_space=space,
        provenance=prov,
        gate_score=config.gate_score,
    )
    file_stem = name.replace("/", "_")  # a hub id names a file, not a folder
    native.pack.save(packs_dir / f"{file_stem}-native.safetensors")
    v_n = native.pack.global_vector
    report["native"] = judge_direction(
        v_n, test=test_t, easy_benign=held_t, judges=judges, alphas=config.alphas, built=native
    )
    report["native"]["label"] = (
        "native: fitted on target-side unsafe data (the baseline the method avoids)"
    )
    report["native"]["categories"] = tr.category_table(
        native.pack.category_vectors,
        test_t.safe,
        test_t.unsafe,
        list(test_t.categories),
        linear,
        config.category_alpha,
    )

    src_fit, src_held = _rows(source_anchors, a.fit), _rows(source_anchors, a.held_out)
    source_states = (
        None if source_test is None else GateInputs(source_test.unsafe, source_test.safe, src_held)
    )
    report["maps"] = {}
    best_built: BuiltPack | None = None
    for kind in config.maps:
        t1 = time.perf_counter()
        built = assemble_pack(
            source=source_pairs,
            source_anchors=src_fit,
            target_anchors=fit_t,
            map_kind=kind,
            target_id=target_id,
            conditioning_space=space,
            provenance=prov,
            calibration=config.calibration,
            gate_score=config.gate_score,
            source_gate_spec=source_gate_spec,
        )
        built.pack.save(packs_dir / f"{file_stem}-{kind}.safetensors")
        assert built.map is not None and built.source_direction is not None
        v_t = built.pack.global_vector
        fit = built.map.score(src_held, held_t)
        src_norm = built.source_direction.norm
        nulls = tr.null_cosines(
            built.map.transport, int(src_fit.shape[1]), src_norm, v_n, config.n_null, config.seed
        )
        row = judge_direction(
            v_t,
            test=test_t,
            easy_benign=held_t,
            judges=judges,
            alphas=config.alphas,
            built=built,
            source_states=source_states,
        )
        row.update(
            {
                "label": f"transferred ({kind} map fitted on benign anchors only)",
                "fit_held_out": {
                    "r2": fit.r2,
                    "mean_cosine": fit.mean_cosine,
                    "n_anchors": fit.n_anchors,
                    **_procrustes_scaled_r2(built, src_held, held_t),
                },
                "cosine_to_native": cosine(v_t, v_n),
                "null_cosine_random_source": _spread(nulls),
                "norm_ratio_to_native": tr.norm_ratio(v_t, v_n),
                "beta": built.beta,
                "categories": tr.category_table(
                    built.pack.category_vectors,
                    test_t.safe,
                    test_t.unsafe,
                    list(test_t.categories),
                    linear,
                    config.category_alpha,
                ),
                "category_cosine_to_native": {
                    c: cosine(v, native.pack.category_vectors[c])
                    for c, v in built.pack.category_vectors.items()
                    if c in native.pack.category_vectors
                },
                "seconds": time.perf_counter() - t1,
            }
        )
        try:
            from safesteer.maths.calibration import calibrate_zscore

            moved = built.map.transport(built.source_direction.vector)
            vz = calibrate_zscore(moved, built.source_direction.vector, src_fit, fit_t)
            row["norm_ratio_to_native_zscore_rule"] = tr.norm_ratio(vz, v_n)
        except ImportError:  # pragma: no cover - the z-score rule is optional
            pass
        report["maps"][kind] = row
        best_auroc = max(r["auroc_style_matched"] for r in report["maps"].values())
        if row["auroc_style_matched"] >= best_auroc:
            best_built = built
        log(
            f"[{name}] {kind}: held-out R²={fit.r2:.3f}, style-matched AUROC="
            f"{row['auroc_style_matched']:.3f} "
            f"(native {report['native']['auroc_style_matched']:.3f})"
        )

    draws = tr.random_directions(
        int(fit_t.shape[1]), float(v_n.norm()), config.n_random, config.seed + 1
    )
    rnd = [
        judge_direction(r, test=test_t, easy_benign=held_t, judges=judges, alphas=config.alphas)
        for r in draws
    ]
    report["random"] = {
        "label": f"{config.n_random} random directions of the native vector's norm (seeded)",
        "auroc_style_matched": _spread([r["auroc_style_matched"] for r in rnd]),
        "auroc_easy_benign_vs_unsafe": _spread([r["auroc_easy_benign_vs_unsafe"] for r in rnd]),
        "curve_always_on": [
            {
                "alpha": config.alphas[i],
                "unsafe_rate": {
                    n: _spread([r["curve_always_on"][i]["unsafe_rate"][n] for r in rnd])
                    for n in judges
                },
                "benign_cosine": _spread([r["curve_always_on"][i]["benign_cosine"] for r in rnd]),
            }
            for i in range(len(config.alphas))
        ],
    }
    if pipe is None and config.n_images > 0 and best_built is not None:
        t2 = time.perf_counter()
        report["images"] = _images(adapter, name, best_built, config, data, held_t)
        log(f"[{name}] {config.n_images} random-weight images in {time.perf_counter() - t2:.1f} s")
    if best_built is not None:
        report["best_map"] = best_built.pack.provenance.get("map_kind", "procrustes")
    report["seconds"] = time.perf_counter() - t0
    return report


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


def _spread(values: Sequence[float]) -> dict[str, float]:
    t = torch.tensor(list(values), dtype=torch.float64)
    return {
        "mean": float(t.mean()),
        "std": float(t.std()) if len(t) > 1 else 0.0,
        "min": float(t.min()),
        "max": float(t.max()),
        "n": len(t),
    }


def _images(
    adapter: Any, name: str, pack: BuiltPack, config: JobConfig, data: JobData, held: Tensor
) -> Any:
    """Step 4: a few random-weight images, unsteered and steered (see :mod:`.images`)."""
    from safesteer.jobs.images import steered_images

    prompts = [p.unsafe for p in data.test[: config.n_images]]
    alpha = 3.0  # mid-range of the paper's sweep
    benign = None
    if pack.pack.gate is not None:
        quiet = (~pack.pack.gate.decide(held).steer.bool()).nonzero().flatten().tolist()
        benign = data.anchors.held_out[quiet[0]] if quiet else None
    out = config.out / "images"
    return steered_images(adapter, name, pack.pack, prompts, alpha, out, benign)


def hand_over_to_evaluation(
    pipeline: str, config: JobConfig, data: JobData, map_kind: str
) -> dict[str, Any]:
    """For a generator: image-level ASR / utility of the best pack against native and none.

    Runs :func:`safesteer.evaluation.runner.evaluate` on our held-out test unsafe prompts and
    ``n_images`` × 10 held-out benign anchors, the best pack always-on, target-gated and
    source-gated. A real pipeline gets the ``paper`` protocol (Q16 ∨ NudeNet, CLIP, FID: it needs
    those models); a ``tiny-<family>`` pipeline (random weights) the ``quick`` one (packaged
    classifiers only), which tests the path and says nothing about safety.
    """
    from safesteer.evaluation.protocol import PRESETS
    from safesteer.evaluation.runner import EvaluationSpec, evaluate
    from safesteer.evaluation.workplan import PromptSet

    packs_dir = config.out / "packs"
    safe_name = pipeline.replace("/", "_")
    protocol = "quick" if pipeline.startswith("tiny-") else "paper"
    spec = EvaluationSpec(
        pipeline=pipeline,
        out=str(config.out / "evaluation"),
        packs=(str(packs_dir / f"{safe_name}-{map_kind}.safetensors"),),
        baselines=("none", f"native={packs_dir / f'{safe_name}-native.safetensors'}"),
        modes=("always", "gated", "gated-source"),
        prompt_sets=(
            PromptSet.inline("test-unsafe (ours)", "safety", [p.unsafe for p in data.test]),
            PromptSet.inline(
                "held-out benign anchors (ours)",
                "utility",
                data.anchors.held_out[: 10 * config.n_images],
            ),
        ),
        settings=PRESETS[protocol],
    )
    result = evaluate(spec, progress=False)
    return {"run_dir": str(result.run_dir), "protocol": protocol, "summary": result.summary}


def run_default_job(
    config: JobConfig,
    log: Log = print,
    *,
    source_loader: Callable[[str], Any] = load_source,
    target_loader: Callable[[str], tuple[Any, Any]] = load_target,
) -> dict[str, Any]:
    """Run the job; write ``packs/``, ``metrics.json``, plots and ``index.html``; return metrics.

    ``source_loader`` / ``target_loader`` turn the names in ``config`` into a source reader and
    a (target adapter, pipeline or None); the defaults load presets or the user's models.
    """
    t0 = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    data = load_job_data(config)
    log(
        f"data: {len(data.train)} train / {len(data.judge)} judge / {len(data.test)} test "
        "pairs (ours); "
        f"anchors {len(data.anchors.fit)} fit / {len(data.anchors.held_out)} held-out / "
        f"{len(data.anchors.judge)} judge (ours)"
    )
    source = source_loader(config.source)
    log(
        f"source {source.model_id}: {source.num_layers} layers "
        f"(loaded in {time.perf_counter() - t0:.1f} s)"
    )
    src_texts = list(
        dict.fromkeys(
            [
                *(t for p in (*data.train, *data.judge, *data.test) for t in (p.safe, p.unsafe)),
                *data.anchors.fit,
                *data.anchors.held_out,
            ]
        )
    )
    layer_report: dict[str, Any]
    if config.layer == "auto":
        from safesteer.models.layers import best_layer, score_layers

        # one pass over every layer, scored cross-fitted on train pairs (source side only)
        scores = score_layers(source, None, data.train)
        layer = best_layer(scores).layer
        layer_report = {
            "rule": "auto: best cross-fitted AUROC of the source direction on held-out "
            "source-side train folds (safesteer.models.layers)",
            "scores": {str(s.layer): s.auroc for s in scores},
        }
    else:
        layer = source.resolve_layer(int(config.layer))
        note = DEFAULT_LAYER_NOTE if layer == DEFAULT_LAYER else "given by the user"
        layer_report = {"rule": note}
    src_states = _pooled_by_text(functools.partial(source.pooled, layer=layer), src_texts)
    source_id = source.model_id
    spec = source_spec(source, layer)
    source_random = bool(getattr(source, "random_weights", False))
    source_exclusions = {
        str(k): dict(v.most_common(3)) for k, v in getattr(source, "exclusions", {}).items()
    }
    del source  # free the source model before loading targets
    log(
        f"source layer {layer}; pooled {len(src_states)} prompts ({time.perf_counter() - t0:.1f} s)"
    )

    source_pairs, source_test = (
        stack_pairs(src_states, data.train),
        stack_pairs(src_states, data.test),
    )
    v_s = source_pairs.safe.mean(0) - source_pairs.unsafe.mean(0)
    base_prov: dict[str, Any] = {
        "source_model": source_id,
        "source_layer": layer,
        "source_random_weights": source_random,
        "data": "safesteer's own prompt sets (pairs: train split; anchors: fit part)",
        **data_provenance(
            [p.safe for p in data.train], [p.unsafe for p in data.train], data.anchors.fit
        ),
    }
    metrics: dict[str, Any] = {
        "what": "transfer report of the safesteer default job (representation level; judges are "
        "probes on target states, not image classifiers)",
        "source": {
            "model": source_id,
            "layer": layer,
            "layer_choice": layer_report,
            "random_weights": source_random,
            "vector_norm": float(v_s.norm()),
            "auroc_style_matched_source_side": tr.projection_auroc(
                v_s, source_test.safe, source_test.unsafe
            ),
            "pooling_check": {
                "outlier_tokens_dropped_by_position (prompts read this run, not cache hits)": (
                    source_exclusions
                ),
                "vector_top1_dim_share": tr.vector_top_dim_share(v_s, 1),
                "anchor_top1_dim_energy_share": tr.top_dim_share(
                    _rows(src_states, data.anchors.held_out), 1
                ),
            },
        },
        "data": {
            "n_pairs": {"train": len(data.train), "judge": len(data.judge), "test": len(data.test)},
            "n_anchors": {
                "fit": len(data.anchors.fit),
                "held_out": len(data.anchors.held_out),
                "judge": len(data.anchors.judge),
            },
            "hashes": data.hashes,
            "origin": "safesteer's own prompt sets (not COCO/I2P)",
        },
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "environment": environment_record(),
        "targets": {},
    }
    for name in config.targets:
        metrics["targets"][name] = run_target(
            name,
            target_loader,
            config,
            data,
            source_pairs,
            {t: src_states[t] for t in [*data.anchors.fit, *data.anchors.held_out]},
            base_prov,
            log,
            source_test,
            spec,
        )
    metrics["summary"] = summarise(metrics, config)
    metrics["seconds"] = time.perf_counter() - t0
    write_json_atomic(config.out / "metrics.json", metrics, default=float)
    try:
        from safesteer.jobs.page import write_page

        write_page(metrics, config.out)
    except ImportError:  # pragma: no cover - matplotlib missing
        log("plots skipped: matplotlib is not installed (pip install 'safesteer[eval]')")
    for line in metrics["summary"]["lines"]:
        log(line)
    return metrics


def _pct(x: Any) -> str:
    return f"{x:.1%}" if isinstance(x, float) else "n/a"


def summarise(metrics: dict[str, Any], config: JobConfig) -> dict[str, Any]:
    """Which map won per target, AUROCs against native, the α reaching the unsafe-rate goal."""
    src = metrics["source"]
    goal = f"≤{config.max_unsafe_rate:.0%}"
    random_parts = [
        n for n, r in metrics["targets"].items() if r.get("target_random_weights", False)
    ] + (["source"] if src.get("random_weights") else [])
    weights = (
        f"RANDOM weights in: {', '.join(random_parts)}"
        if random_parts
        else "pretrained weights (images: random-weight denoiser)"
    )
    lines = [
        f"safesteer default job — source {src['model']} layer {src['layer']}; judge: linear probe "
        f"(threshold 0.5) on target states; {weights}"
    ]
    per_target: dict[str, Any] = {}
    for name, rep in metrics["targets"].items():
        maps = rep["maps"]
        if not maps:
            continue
        best = max(maps, key=lambda k: maps[k]["auroc_style_matched"])
        nat = rep["native"]["auroc_style_matched"]
        row = maps[best]
        always = tr.alpha_reaching(row["curve_always_on"], JUDGE, config.max_unsafe_rate)
        gated = {
            suffix: tr.alpha_reaching(
                row.get(f"curve_gated{suffix}", []), JUDGE, config.max_unsafe_rate
            )
            for suffix, _ in GATES
        }
        per_target[name] = {
            "best_map": best,
            "auroc_transferred": row["auroc_style_matched"],
            "auroc_native": nat,
            "alpha_always_on": always,
            **{f"alpha_gated{suffix}": hit for suffix, hit in gated.items()},
        }
        rnd = rep["random"]["auroc_style_matched"]
        lines.append(
            f"[{name}] best map {best}: style-matched AUROC {row['auroc_style_matched']:.3f} vs "
            f"native {nat:.3f} (random {rnd['mean']:.3f}±{rnd['std']:.3f}); "
            f"test pairs n={metrics['data']['n_pairs']['test']}"
        )
        if always is not None:
            lines.append(
                f"[{name}]   always-on: α={always['alpha']:g} → "
                f"{_pct(always['unsafe_rate'][JUDGE])} of held-out unsafe judged unsafe, "
                f"benign cos {always['benign_cosine']:.3f}"
            )
        else:
            lines.append(f"[{name}]   always-on: no α in {list(config.alphas)} reaches {goal}")
        for suffix, label in GATES:
            if f"curve_gated{suffix}" in row:
                lines.append(f"[{name}]   " + _gated_line(row, suffix, label, gated[suffix], goal))
    return {"per_target": per_target, "lines": lines}


def _gated_line(
    row: dict[str, Any], suffix: str, label: str, hit: dict[str, Any] | None, goal: str
) -> str:
    """One summary line for a gate: the α reaching the goal (or the last α), trigger rates."""
    g = row.get(f"gate{suffix}", {})
    steered = (
        f"benign held-out steered {_pct(g.get('benign_held_out_steered'))}, "
        f"unsafe steered {_pct(g.get('unsafe_test_steered'))}"
    )
    if hit is not None:
        return (
            f"gated ({label}): α={hit['alpha']:g} → {_pct(hit['unsafe_rate'][JUDGE])} "
            f"judged unsafe, benign cos {hit['benign_cosine']:.3f}; {steered}"
        )
    last = row[f"curve_gated{suffix}"][-1]
    rate = _pct(last["unsafe_rate"][JUDGE])
    return (
        f"gated ({label}): no α reaches {goal} (α={last['alpha']:g}: {rate}, "
        f"benign cos {last['benign_cosine']:.3f}); {steered}"
    )
