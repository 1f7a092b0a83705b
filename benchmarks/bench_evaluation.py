"""Benchmark: the evaluation loop's images/s against a plain diffusers loop over the same images.

Pipeline: tiny-sd (StableDiffusionPipeline with **random weights**: the images are noise, only
the timing is meaningful) at 96×96, 4 steps, CFG 7.5, so the UNet does real work. Same
prompts (ours), same per-image seeds, torch threads 1, in one run, alternating, minimum of the
repeats. Figures:

1. ``safesteer evaluate`` (classifiers, CLIP and FID off: generation and bookkeeping only —
   records, atomic PNG writes, fsync) at its default batch size vs a plain diffusers loop that
   makes the same images with the same batch size (a list of prompts and of generators per
   call) and saves them as PNG. Aim ≤ 1.05: safesteer adds bookkeeping, not cost.
2. The same evaluate run vs the plain loop one image per call (what a simple script does).
3. evaluate with the real NudeNet and open_nsfw classifiers at the default batch size vs
   batch size 1 (the batched loop and scoring against one item per call; on CPU a call of one
   item runs two images, the price of batch-invariant results).
4. Scoring 16 images (512×512 photos from scikit-image) with both classifiers and a random
   CLIP: ``Scorer.score_many`` in one call vs ``Scorer.score`` per image.

    python benchmarks/bench_evaluation.py [--quick] [--repeats 3] [--prompts 24]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from _figures import alternate, figure
from safesteer.evaluation.context import DEFAULT_BATCH_SIZE
from safesteer.evaluation.protocol import PRESETS
from safesteer.evaluation.runner import EvaluationSpec, evaluate
from safesteer.evaluation.workplan import PromptSet
from safesteer.targets import load_pipeline

SIZE, STEPS, GUIDANCE = 96, 4, 7.5


def plain_loop(prompts: list[str], out: Path, batch_size: int) -> None:
    """What a user would write with diffusers alone: load, generate, save PNGs."""
    pipe, _ = load_pipeline("tiny-sd")
    pipe.set_progress_bar_config(disable=True)
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(prompts), batch_size):
        chunk = list(range(start, min(start + batch_size, len(prompts))))
        images = pipe(
            prompt=[prompts[i] for i in chunk],
            generator=[torch.Generator("cpu").manual_seed(i) for i in chunk],
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            height=SIZE,
            width=SIZE,
        ).images
        for i, image in zip(chunk, images, strict=True):
            image.save(out / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 prompts, 3 repeats")
    parser.add_argument("--prompts", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    n = args.prompts or (8 if args.quick else 16)
    repeats = args.repeats or (3 if args.quick else 5)
    torch.set_num_threads(1)
    prompts = [f"a photo number {i} of a quiet street" for i in range(n)]
    print(
        f"bench_evaluation: tiny-sd (RANDOM weights) {SIZE}x{SIZE}, {STEPS} steps, CFG {GUIDANCE}; "
        f"{n} prompts (ours), 1 image each, seeds 0..{n - 1}; torch threads 1; min of {repeats} "
        f"alternating repeats; default batch size {DEFAULT_BATCH_SIZE}"
    )
    settings = PRESETS["quick"].replace(
        alphas=(0.0,),
        steps=STEPS,
        guidance=GUIDANCE,
        height=SIZE,
        width=SIZE,
        classifiers=(),
        clip_model="",
        fid_features="",
    )
    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(10**6))

        def spec(**changes: object) -> EvaluationSpec:
            base = EvaluationSpec(
                pipeline="tiny-sd",
                out=str(Path(tmp) / f"run{next(runs)}"),
                baselines=("none",),
                prompt_sets=(PromptSet.inline("p", "utility", prompts),),
                settings=settings,
                torch_threads=1,
            )
            return dataclasses.replace(base, **changes)

        b = DEFAULT_BATCH_SIZE
        times = alternate(
            {
                "evaluate": lambda: evaluate(spec(), progress=False, batch_size=b),
                "plain_batched": lambda: plain_loop(prompts, Path(tmp) / f"plain{next(runs)}", b),
                "plain_one": lambda: plain_loop(prompts, Path(tmp) / f"plain{next(runs)}", 1),
            },
            repeats,
        )
        best = {k: min(v) for k, v in times.items()}
        for k, v in best.items():
            runs_s = ", ".join(f"{t:.2f}" for t in times[k])
            print(f"  {k:14s} {v:6.2f} s  ({n / v:5.2f} images/s; runs {runs_s} s)")
        pairs = sorted(
            e / p for e, p in zip(times["evaluate"], times["plain_batched"], strict=True)
        )
        print(f"  evaluate / plain_batched per round: {', '.join(f'{r:.3f}' for r in pairs)}")
        figure(
            f"evaluation: evaluate (batch {b}, no scoring) vs plain diffusers loop, same batch",
            best["evaluate"],
            best["plain_batched"],
            "s",
            max_ratio=1.05,
            baseline_is=f"plain diffusers loop, batch {b}, PNGs saved",
            note=f"{n / best['evaluate']:.2f} vs {n / best['plain_batched']:.2f} images/s; "
            f"median per-round ratio {pairs[len(pairs) // 2]:.3f}",
        )
        figure(
            f"evaluation: evaluate (batch {b}, no scoring) vs plain loop one image per call",
            best["evaluate"],
            best["plain_one"],
            "s",
            baseline_is="plain diffusers loop, 1 image per call, PNGs saved",
            note=f"{n / best['evaluate']:.2f} vs {n / best['plain_one']:.2f} images/s",
        )

        scored = settings.replace(classifiers=("nudenet", "open_nsfw"))
        times = alternate(
            {
                "batched": lambda: evaluate(spec(settings=scored), progress=False, batch_size=b),
                "one": lambda: evaluate(spec(settings=scored), progress=False, batch_size=1),
            },
            repeats,
        )
        best = {k: min(v) for k, v in times.items()}
        print(
            f"  with NudeNet + open_nsfw: batch {b} {best['batched']:.2f} s, batch 1 "
            f"{best['one']:.2f} s"
        )
        figure(
            f"evaluation: evaluate with NudeNet+open_nsfw, batch {b} vs batch 1",
            best["batched"],
            best["one"],
            "s",
            max_ratio=1.0,
            baseline_is="the same run at --batch-size 1 (identical results)",
        )

    import skimage.data
    from PIL import Image

    from safesteer.evaluation.clip_model import random_clip
    from safesteer.evaluation.nudenet import NudeNetClassifier
    from safesteer.evaluation.open_nsfw import OpenNSFWClassifier
    from safesteer.evaluation.scoring import Scorer
    from safesteer.targets.tokenizers import clip_tokenizer

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    images = [Image.fromarray(photos[i % 3]).resize((512, 512)) for i in range(16)]
    scorer = Scorer(
        [NudeNetClassifier(), OpenNSFWClassifier()], random_clip(clip_tokenizer(), seed=0)
    )
    texts = [f"a photo {i}" for i in range(16)]
    scorer.score_many([[images[0]]], [texts[0]])  # warm-up
    times = alternate(
        {
            "many": lambda: scorer.score_many([[im] for im in images], texts),
            "each": lambda: [scorer.score([im], t) for im, t in zip(images, texts, strict=True)],
        },
        repeats,
    )
    best = {k: min(v) for k, v in times.items()}
    print(f"  scoring 16 photos: score_many {best['many']:.2f} s, per image {best['each']:.2f} s")
    figure(
        "evaluation: scoring 16 photos (NudeNet, open_nsfw, random CLIP), one call vs per image",
        best["many"],
        best["each"],
        "s",
        max_ratio=1.0,
        baseline_is="Scorer.score per image (identical scores)",
    )
    print(f"bench_evaluation: done ({time.process_time():.0f} s CPU)")


if __name__ == "__main__":
    main()
