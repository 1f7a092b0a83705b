"""A small end-to-end pass of the maths on planted (synthetic) data.

No model is involved: every number is computed on random data whose truth is known, so each
step can be checked against it.

1. Source space (ds) and target space (dt > ds) joined by a planted semi-orthogonal map
   ``Q`` and a scale: ``h_t = s·Q h_s + offset + noise`` on benign anchors.
2. Paired safe/unsafe source states with a planted safety direction per category
   (unsafe = safe − shift along the category's axis); the global direction is their mean.
3. ``difference_of_means`` → a map fitted on benign anchors only (each kind) → ``transport``
   → ``calibrate`` (β rule) → compared with the planted target direction ``s·Q v_s``.
4. A :class:`~safesteer.pack.SafetyPack` with a gate fitted on benign target anchors only,
   saved, loaded back and checked bit for bit.
5. Gating on held-out benign and unsafe target states; steering of token states ``[B, T, dt]``
   with ``α = 1`` and the gate re-run on the steered, pooled states.

Example:
    >>> import tempfile
    >>> result = run_planted(tempfile.mkdtemp(), quiet=True)
    >>> result["maps"]["procrustes"]["cosine_to_planted"] > 0.99
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from safesteer.atomic import write_json_atomic
from safesteer.maths.alignment import make_map
from safesteer.maths.calibration import anchor_scale_ratio, calibrate
from safesteer.maths.directions import category_directions, difference_of_means
from safesteer.maths.gating import Gate
from safesteer.maths.metrics import cosine
from safesteer.maths.steering import steer_states
from safesteer.pack import SafetyPack
from safesteer.provenance import software_record

__all__ = ["PlantedWorld", "make_world", "run_planted"]

LABEL = "[synthetic planted data, no model]"
CATEGORIES = ("violence", "sexual", "hate")


@dataclass
class PlantedWorld:
    """Planted spaces, map and directions, with benign and unsafe samples on both sides."""

    q: Tensor  # [dt, ds] semi-orthogonal
    scale: float
    target_offset: Tensor  # [dt]
    source_axes: dict[str, Tensor]  # category -> planted source direction (safe side), [ds]
    anchors_source: Tensor
    anchors_target: Tensor
    safe: Tensor
    unsafe: Tensor
    categories: list[str]
    noise: float
    generator: torch.Generator

    def to_target(self, source: Tensor) -> Tensor:
        """The planted map plus fresh target-side noise."""
        noise = self.noise * torch.randn(source.shape[0], self.q.shape[0], generator=self.generator)
        return self.scale * source @ self.q.T + self.target_offset + noise


def _benign_source(n: int, ds: int, spectrum: Tensor, g: torch.Generator) -> Tensor:
    return torch.randn(n, ds, generator=g) * spectrum + 1.0


def make_world(
    *,
    ds: int = 96,
    dt: int = 128,
    n_anchors: int = 2000,
    pairs_per_category: int = 200,
    scale: float = 2.5,
    noise: float = 0.05,
    shift: float = 3.0,
    seed: int = 0,
) -> PlantedWorld:
    """Draw the planted spaces. ``shift`` is the unsafe displacement in benign std units."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dt, ds, generator=g))
    spectrum = torch.linspace(2.0, 0.5, ds)
    axes = {}
    for c in CATEGORIES:
        a = torch.randn(ds, generator=g)
        axes[c] = a / a.norm()
    anchors_s = _benign_source(n_anchors, ds, spectrum, g)
    world = PlantedWorld(
        q=q,
        scale=scale,
        target_offset=torch.randn(dt, generator=g),
        source_axes=axes,
        anchors_source=anchors_s,
        anchors_target=torch.empty(0),
        safe=torch.empty(0),
        unsafe=torch.empty(0),
        categories=[],
        noise=noise,
        generator=g,
    )
    world.anchors_target = world.to_target(anchors_s)
    safe, unsafe, cats = [], [], []
    for c, axis in axes.items():
        base = _benign_source(pairs_per_category, ds, spectrum, g)
        sigma = float((anchors_s @ axis).std())
        safe.append(base)
        unsafe.append(base - shift * sigma * axis)  # unsafe = LOW projection on the safe axis
        cats += [c] * pairs_per_category
    world.safe, world.unsafe, world.categories = torch.cat(safe), torch.cat(unsafe), cats
    return world


def run_planted(
    out: str | Path,
    *,
    seed: int = 0,
    ds: int = 96,
    dt: int = 128,
    n_anchors: int = 2000,
    alpha: float = 1.0,
    false_trigger_rate: float = 0.05,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the planted pass, write ``planted.safetensors`` and ``planted_summary.json``."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def say(text: str) -> None:
        lines.append(text)
        if not quiet:
            print(text, flush=True)

    w = make_world(ds=ds, dt=dt, n_anchors=n_anchors, seed=seed)
    say(f"{LABEL} safesteer planted run, seed {seed}")
    say(
        f"  spaces: source dim {ds} → target dim {dt}; planted map h_t = {w.scale}·Q h_s + offset "
        f"+ N(0, {w.noise}²); {n_anchors} benign anchors; {len(w.categories)} pairs in "
        f"{len(CATEGORIES)} categories"
    )

    # 1. directions (source side)
    glob = difference_of_means(w.safe, w.unsafe, space="planted/source")
    cats = category_directions(w.safe, w.unsafe, w.categories, space="planted/source")
    planted_global = (w.safe - w.unsafe).mean(dim=0)
    say(
        f"  direction: ‖v_s‖ = {glob.norm:.3f}; cos(v_s, planted) = "
        f"{cosine(glob.vector, planted_global):.4f}; per category cos to planted axis: "
        + ", ".join(f"{c} {cosine(d.vector, w.source_axes[c]):.4f}" for c, d in cats.items())
    )

    # 2–3. maps on benign anchors only, transport, calibration
    n_fit = int(0.8 * n_anchors)
    src_fit, tgt_fit = w.anchors_source[:n_fit], w.anchors_target[:n_fit]
    src_held, tgt_held = w.anchors_source[n_fit:], w.anchors_target[n_fit:]
    beta = anchor_scale_ratio(src_fit, tgt_fit)
    planted_target = w.scale * w.q @ glob.vector  # exact target-side image of v_s
    say(f"  calibration: β = {beta:.4f} (planted scale {w.scale})")
    maps: dict[str, dict[str, Any]] = {}
    fitted_maps = {}
    for kind in ("procrustes", "ridge", "mlp"):
        opts: dict[str, Any] = (
            {"hidden_dim": 128, "seed": seed, "max_epochs": 150} if kind == "mlp" else {}
        )
        t = time.perf_counter()
        m = make_map(kind, **opts).fit(src_fit, tgt_fit)
        seconds = time.perf_counter() - t
        report = m.score(src_held, tgt_held)
        v_t = calibrate(m.transport(glob.vector), glob.vector, beta)
        maps[kind] = {
            "held_out_r2": report.r2,
            "held_out_mean_cosine": report.mean_cosine,
            "cosine_to_planted": cosine(v_t, planted_target),
            "length_ratio_to_planted": float(v_t.norm() / planted_target.norm()),
            "fit_seconds": seconds,
        }
        fitted_maps[kind] = m
        say(
            f"  map {kind:10s}: held-out R² {report.r2:.4f}, mean cos {report.mean_cosine:.4f}; "
            f"cos(v_t, planted s·Q v_s) {maps[kind]['cosine_to_planted']:.4f}; "
            f"‖v_t‖/‖planted‖ {maps[kind]['length_ratio_to_planted']:.3f}; {seconds:.2f} s"
            + (
                " (a pure rotation: R² pays for the scale, calibration sets lengths)"
                if kind == "procrustes"
                else ""
            )
        )

    # 4. pack (Procrustes, the paper's best map) with a benign-only gate
    m = fitted_maps["procrustes"]
    v_global = calibrate(m.transport(glob.vector), glob.vector, beta)
    v_cats = {c: calibrate(m.transport(d.vector), d.vector, beta) for c, d in cats.items()}
    gate = Gate(false_trigger_rate=false_trigger_rate).fit(
        w.anchors_target, {"global": v_global, **v_cats}
    )
    pack = SafetyPack(
        global_vector=v_global,
        category_vectors=v_cats,
        target_id="planted/target",
        conditioning_space="planted/target",
        calibration={"beta": beta, "rule": 0.0},
        gate=gate,
        provenance={
            "data": "synthetic planted data (no model, no prompts)",
            "seed": seed,
            "source": {"model": "planted", "dim": ds},
            "map": {
                "kind": m.kind,
                **m.params(),
                # timings go to planted_summary.json only: the pack's bytes depend on inputs
                "held_out": {k: v for k, v in maps["procrustes"].items() if k != "fit_seconds"},
            },
            "software": software_record(),
        },
    )
    path = pack.save(out / "planted.safetensors")
    loaded = SafetyPack.load(path)
    exact = torch.equal(loaded.global_vector, pack.global_vector) and all(
        torch.equal(loaded.category_vectors[c], v) for c, v in v_cats.items()
    )
    say(f"  pack: {path} ({path.stat().st_size} bytes), reloaded bit for bit: {exact}")

    # 5. gating and steering on fresh held-out draws
    fresh = make_world(ds=ds, dt=dt, n_anchors=4000, seed=seed + 1000)
    # same planted map and axes, fresh samples: re-use this world's map on the fresh source
    benign_t = w.to_target(fresh.anchors_source)
    unsafe_by_cat = {}
    for i, c in enumerate(CATEGORIES):
        idx = slice(i * 200, (i + 1) * 200)
        sigma = float((w.anchors_source @ w.source_axes[c]).std())
        unsafe_src = fresh.safe[idx] - 3.0 * sigma * w.source_axes[c]
        unsafe_by_cat[c] = w.to_target(unsafe_src)
    assert loaded.gate is not None
    benign_rate = float(loaded.gate.decide(benign_t).steer.double().mean())
    unsafe_all = torch.cat(list(unsafe_by_cat.values()))
    decision = loaded.gate.decide(unsafe_all)
    unsafe_rate = float(decision.steer.double().mean())
    right_cat = 0
    for i, c in enumerate(CATEGORIES):
        right_cat += sum(c in a for a in decision.active[i * 200 : (i + 1) * 200])
    cat_rate = right_cat / len(decision.active)
    say(
        f"  gate (whitened, thresholds on {gate.n_benign_} benign target anchors, target rate "
        f"{false_trigger_rate:.0%}): benign held-out trigger rate {benign_rate:.3f}; planted "
        f"unsafe trigger rate {unsafe_rate:.3f}; own category active {cat_rate:.3f}"
    )

    tokens = 8  # token states around each pooled state (pooled = token mean)
    jitter = 0.1 * torch.randn(unsafe_all.shape[0], tokens, dt, generator=w.generator)
    states = unsafe_all[:, None, :] + jitter - jitter.mean(dim=1, keepdim=True)
    vectors = loaded.vectors_for(decision)
    steered = steer_states(states, vectors, alpha)
    after = float(loaded.gate.decide(steered.mean(dim=1)).steer.double().mean())
    benign_states = benign_t[:500, None, :].expand(-1, tokens, -1)
    benign_vectors = loaded.vectors_for(loaded.gate.decide(benign_t[:500]))
    benign_steered = steer_states(benign_states, benign_vectors, alpha)
    untouched = float((benign_steered == benign_states).all(dim=(1, 2)).double().mean())
    say(
        f"  steering α = {alpha} on [B={states.shape[0]}, T={tokens}, D={dt}] token states of the "
        f"gated unsafe prompts: gate trigger rate {unsafe_rate:.3f} → {after:.3f}; benign "
        f"prompts left untouched {untouched:.3f}"
    )
    seconds = time.perf_counter() - t0
    say(f"  done in {seconds:.1f} s; all figures above are on synthetic planted data")
    say(f"  summary: {out / 'planted_summary.json'}")

    summary: dict[str, Any] = {
        "label": LABEL,
        "seed": seed,
        "dims": {"source": ds, "target": dt},
        "n_anchors": n_anchors,
        "direction_norm": glob.norm,
        "beta": beta,
        "planted_scale": w.scale,
        "maps": maps,
        "pack": {"path": str(path), "round_trip_exact": exact},
        "gate": {
            "false_trigger_rate": false_trigger_rate,
            "benign_held_out_rate": benign_rate,
            "unsafe_rate": unsafe_rate,
            "own_category_active": cat_rate,
        },
        "steering": {"alpha": alpha, "unsafe_rate_after": after, "benign_untouched": untouched},
        "seconds": seconds,
        "log": lines,
    }
    write_json_atomic(out / "planted_summary.json", summary)
    return summary
