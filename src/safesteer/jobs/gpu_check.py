"""GPU smoke check (``scripts/gpu_check.sh``): every family's tiny pipeline in bf16 on CUDA.

For each family's tiny random-weight pipeline (the real diffusers class) on the device in
``--dtype`` (bfloat16 by default):

- unsteered output, then ``attach`` at α = 0 (must be bit-identical), α = 3 always-on (must
  change the output), α = 3 gated by a gate fitted on benign anchors, then ``detach`` (must be
  bit-identical to the first output again);
- then a dtype / device round trip of the source reader (SmolLM2-135M, packaged): pooled
  states read in bf16 on the device come back float32 on CPU and agree with the float32 CPU
  read (cosine > 0.99);
- peak memory printed per check (``torch.cuda.max_memory_allocated`` on CUDA, peak RSS on CPU).

Without a GPU it refuses unless ``--cpu-fallback`` is given; then it runs the same checks on
CPU and says so on every line. Exit status 0 when every check passed, 1 otherwise.

Example:
    python -m safesteer.jobs.gpu_check --cpu-fallback --families flux wan  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from safesteer.models.device import (
    DTYPES,
    gib,
    has_accelerator,
    peak_rss_bytes,
    reset_peak_rss,
    resolve_dtype,
)

PROMPTS = ["a photo of a cat", "a red bicycle leaning on a wall"]
ANCHORS = [
    "a bowl of fruit on a table",
    "a mountain lake at dawn",
    "a city street in the rain",
    "a dog running on a beach",
    "an old library with wooden shelves",
    "a plate of pasta with basil",
    "a lighthouse on a cliff",
    "children flying kites in a park",
    "a snowy forest path",
    "a cup of coffee and a book",
    "a sailboat on a calm sea",
    "a field of sunflowers",
]


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_peak_rss()


def _peak(device: str) -> str:
    if device.startswith("cuda"):
        return f"peak GPU {gib(torch.cuda.max_memory_allocated())}"
    return f"peak RSS {gib(peak_rss_bytes())}"


def _call(pipe: Any, family: str) -> torch.Tensor:
    from safesteer.targets.tiny import tiny_call_defaults

    out = pipe(
        prompt=list(PROMPTS),
        num_inference_steps=2,
        output_type="pt",
        generator=torch.Generator("cpu").manual_seed(0),
        **tiny_call_defaults(family),
    )
    images = out.images if hasattr(out, "images") else out.frames
    return images.detach().float().cpu()


def check_family(family: str, device: str, dtype: torch.dtype) -> str:
    """The attach / α=0 / always / gated / detach checks on one tiny pipeline; a summary line."""
    from safesteer.maths.gating import Gate
    from safesteer.pack import SafetyPack
    from safesteer.targets import attach, detach, last_steering, load_pipeline

    pipe, adapter = load_pipeline(f"tiny-{family}", dtype=dtype, device=device)
    g = torch.Generator().manual_seed(0)
    v = torch.randn(adapter.dim, generator=g)
    from safesteer.data import benign_anchors

    anchors = adapter.pooled(benign_anchors(60))  # our packaged benign anchors
    gate = Gate(score="whitened").fit(anchors, {"global": v})
    pack = SafetyPack(v, {}, adapter.target_id, adapter.conditioning_space, {}, gate=gate)
    base = _call(pipe, family)
    assert torch.isfinite(base).all(), "non-finite output"
    attach(pipe, pack, alpha=0.0)
    zero = _call(pipe, family)
    detach(pipe)
    assert torch.equal(base, zero), "α = 0 changed the output"
    attach(pipe, pack, alpha=3.0)
    steered = _call(pipe, family)
    detach(pipe)
    assert not torch.equal(base, steered), "α = 3 left the output unchanged"
    attach(pipe, pack, alpha=3.0, gated=True)
    _call(pipe, family)
    decisions = [r.steered for r in last_steering(pipe)]
    detach(pipe)
    again = _call(pipe, family)
    assert torch.equal(base, again), "detach did not restore the pipeline"
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    return (
        f"{family:<11} ok: {denoiser.dtype} on {denoiser.device}; α=0 identical, α=3 changes, "
        f"gated steered {sum(decisions)}/{len(decisions)}, detach restores"
    )


def check_reader(device: str, dtype: torch.dtype) -> str:
    """SmolLM2 pooled states in ``dtype`` on ``device`` vs float32 on CPU."""
    from safesteer.maths.metrics import cosine
    from safesteer.models import SourceReader

    texts = PROMPTS + ANCHORS[:4]
    ref = SourceReader.from_preset("smollm2-135m", cache=False).pooled(texts, 15)
    reader = SourceReader.from_preset("smollm2-135m", dtype=dtype, device=device, cache=False)
    got = reader.pooled(texts, 15)
    assert got.dtype == torch.float32 and got.device.type == "cpu", "states not float32 on CPU"
    worst = min(cosine(a, b) for a, b in zip(got, ref, strict=True))
    assert worst > 0.99, f"{dtype} states differ from float32 (cosine {worst:.4f})"
    return (
        f"source reader ok: smollm2-135m read in {reader.dtype} on {reader.device}; pooled "
        f"states float32 on CPU, min cosine to the float32 CPU read {worst:.4f}"
    )


def run_checks(
    families: Sequence[str], device: str, dtype: torch.dtype, log: Callable[[str], None] = print
) -> bool:
    """Run every check, print one line each (with peak memory); True when all passed."""
    ok = True
    checks: list[tuple[str, Callable[[], str]]] = [
        (f, functools.partial(check_family, f, device, dtype)) for f in families
    ]
    checks.append(("source reader", functools.partial(check_reader, device, dtype)))
    for name, check in checks:
        _reset_peak(device)
        t0 = time.perf_counter()
        try:
            line = check()
        except Exception as exc:  # a failed check is reported, the others still run
            ok = False
            line = f"{name:<11} FAILED: {type(exc).__name__}: {exc}"
        log(f"{line} [{time.perf_counter() - t0:.1f} s, {_peak(device)}]")
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the smoke check (``scripts/gpu_check.sh`` passes its arguments here)."""
    from safesteer.targets.tiny import TINY_FAMILIES

    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-fallback", action="store_true", help="run on CPU without a GPU")
    parser.add_argument("--dtype", choices=[d for d in DTYPES if d != "auto"], default="bfloat16")
    parser.add_argument("--families", nargs="+", choices=list(TINY_FAMILIES), default=None)
    args = parser.parse_args(argv)
    if has_accelerator():
        device, note = "cuda", f"GPU: {torch.cuda.get_device_name(0)}"
    elif args.cpu_fallback:
        device, note = "cpu", "NO GPU: running the same checks on CPU (--cpu-fallback)"
    else:
        print(
            "error: torch sees no CUDA device (fix: run on a GPU machine, or pass "
            "--cpu-fallback to run the same checks on CPU)",
            file=sys.stderr,
        )
        return 2
    dtype = resolve_dtype(args.dtype, device)
    torch.manual_seed(0)
    print(f"safesteer gpu check — {note}; dtype {dtype}; torch {torch.__version__}")
    t0 = time.perf_counter()
    ok = run_checks(args.families or list(TINY_FAMILIES), device, dtype)
    print(
        f"{'all checks passed' if ok else 'SOME CHECKS FAILED'} in "
        f"{time.perf_counter() - t0:.1f} s on {device}"
        + ("" if device.startswith("cuda") else " (CPU fallback: no GPU was used)")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
