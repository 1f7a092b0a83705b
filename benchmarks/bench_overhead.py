"""Steering overhead: steered vs unsteered pipeline calls, same pipeline and seed, alternating.

The pipeline is the tiny **random-weight** StableDiffusionPipeline from
``safesteer.targets.tiny`` run at a larger size (default 128×128, 4 steps, CFG on) so that the
UNet does real work per call; the images are noise, only the timing is meaningful. The steered
call adds ``α·v`` to the conditioning once per prompt (global vector, all tokens, α = 5).

Also reports the absolute cost of steering per call, measured on the hook's work alone (the plan
of one ``encode_prompt`` output, the rows' decision, one add at the denoiser input), many
repetitions — the floor is one vector add per prompt.

Run: ``python benchmarks/bench_overhead.py [--quick] [--reps 15] [--size 128] [--steps 4]
[--threads 1]``. Figures (FIGURE lines): steered vs unsteered call (minimum of the alternating
repeats; the median of adjacent pairs is printed too), and unsteered call + the gated wrapper's
cost vs the unsteered call; aim ≤ 1.01 each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from safesteer.maths.gating import Gate
from safesteer.pack import SafetyPack
from safesteer.targets import attach, detach, load_pipeline


def _pack(adapter) -> SafetyPack:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    return SafetyPack(
        global_vector=torch.randn(adapter.dim, generator=g),
        category_vectors={},
        target_id=adapter.target_id,
        conditioning_space=adapter.conditioning_space,
        calibration={"beta": 1.0},
        provenance={"note": "random benchmark vector"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7 repeats, 100 encode reps")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--encode-reps", type=int, default=300)
    args = parser.parse_args()
    if args.quick:
        args.reps, args.encode_reps = min(args.reps, 7), min(args.encode_reps, 100)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    pipe, adapter = load_pipeline("tiny-sd")
    pack = _pack(adapter)
    call = {
        "prompt": "a photo of a cat",
        "num_inference_steps": args.steps,
        "height": args.size,
        "width": args.size,
        "guidance_scale": 7.5,
        "output_type": "np",
    }

    def timed() -> float:
        start = time.perf_counter()
        pipe(generator=torch.Generator().manual_seed(0), **call)
        return time.perf_counter() - start

    timed()  # warm-up (lazy imports, allocator)
    plain, steered = [], []
    for rep in range(args.reps):
        order = ("plain", "steered") if rep % 2 == 0 else ("steered", "plain")
        for which in order:
            if which == "steered":
                attach(pipe, pack, alpha=5.0)
                steered.append(timed())
                detach(pipe)
            else:
                plain.append(timed())
    med_plain, med_steer = statistics.median(plain), statistics.median(steered)

    # absolute steering cost per call: what the hook does once per pipeline call (record the
    # encode_prompt output's plan, decide the rows, add α·v to the [negative; positive] batch at
    # the denoiser), timed alone so text-encoder and UNet noise drop out
    from safesteer.targets.hook import _SCOPE, Scope, steering_hook

    device = pipe._execution_device
    out = pipe.encode_prompt("a photo of a cat", device, 1, True)
    arguments = {
        "prompt": "a photo of a cat",
        "device": device,
        "num_images_per_prompt": 1,
        "do_classifier_free_guidance": True,
    }
    batch = torch.cat([out[1], out[0]])

    def wrapper_cost(n: int) -> float:
        hook = steering_hook(pipe)
        adapter = hook.adapter_for(pipe)
        start = time.perf_counter()
        for _ in range(n):
            scope = Scope(pipe, hook, adapter, None)
            token = _SCOPE.set(scope)
            hook.observe(pipe, arguments, out)
            scope.steer(batch)
            _SCOPE.reset(token)
        return (time.perf_counter() - start) / n

    attach(pipe, pack, alpha=5.0)
    wrapper_cost(50)
    cost = statistics.median(wrapper_cost(args.encode_reps) for _ in range(5))
    detach(pipe)
    # gated mode adds a masked mean, a tokenizer call for the mask and the gate's scores
    benign = torch.randn(64, pack.dim, generator=torch.Generator().manual_seed(1))
    pack.gate = Gate(false_trigger_rate=0.05).fit(benign, {"global": pack.global_vector})
    attach(pipe, pack, alpha=5.0, gated=True)
    wrapper_cost(50)
    gated_cost = statistics.median(wrapper_cost(args.encode_reps) for _ in range(5))
    detach(pipe)

    params = sum(p.numel() for p in pipe.unet.parameters())
    print("safesteer steering overhead benchmark")
    print(
        f"  pipeline: tiny-sd (StableDiffusionPipeline, RANDOM weights, UNet {params / 1e6:.1f} M "
        f"params), {args.size}x{args.size}, {args.steps} steps, CFG 7.5, 1 prompt, seed 0"
    )
    print(
        f"  machine: {os.cpu_count()} CPUs, torch threads {args.threads}, torch {torch.__version__}"
    )
    print(f"  reps: {args.reps} alternating pairs; pack: random vector, dim {pack.dim}, alpha 5")
    print(f"  unsteered call: median {med_plain * 1e3:.1f} ms (min {min(plain) * 1e3:.1f})")
    print(f"  steered call:   median {med_steer * 1e3:.1f} ms (min {min(steered) * 1e3:.1f})")
    paired = statistics.median(st / pl for st, pl in zip(steered, plain, strict=True))
    print(
        f"  ratio steered/unsteered: median of adjacent pairs {paired:.4f}, of medians "
        f"{med_steer / med_plain:.4f}, of minimums {min(steered) / min(plain):.4f}  (aim <= 1.01; "
        "the machine is shared, so pairs and minimums are the robust figures)"
    )
    print(
        f"  steering cost per pipeline call (hook: plan, rows, one add; median of 5 x "
        f"{args.encode_reps} reps): {cost * 1e6:.1f} us = {cost / med_plain * 100:.4f}% of a call"
    )
    print(
        f"  gated steering cost per call (gate on random 'benign' states, same timing): "
        f"{gated_cost * 1e6:.1f} us = {gated_cost / med_plain * 100:.4f}% of a call"
    )


if __name__ == "__main__":
    main()
