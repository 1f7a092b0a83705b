"""Evaluation throughput on this machine: classifier latency and the cost of one stored item.

Run: ``.venv/bin/python benchmarks/bench_evaluation.py`` (CPU, ~30 s). Numbers come from the
real packaged NudeNet 320n / open_nsfw models on scikit-image photos (512×512 astronaut), and from
a tiny **random-weight** tiny-sd pipeline (2 steps, 32×32) for the per-item loop.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import skimage.data
import torch
from PIL import Image

from safesteer.evaluation.nudenet import NudeNetClassifier
from safesteer.evaluation.open_nsfw import OpenNSFWClassifier
from safesteer.evaluation.protocol import PRESETS
from safesteer.evaluation.runner import EvaluationSpec, evaluate
from safesteer.evaluation.workplan import PromptSet


def _ms(fn, n: int = 20) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    image = Image.fromarray(skimage.data.astronaut())
    for clf in (NudeNetClassifier(), OpenNSFWClassifier()):
        print(
            f"{clf.name:<10} {_ms(lambda c=clf: c.classify([image])):7.1f} ms/image "
            f"(512x512 astronaut, median of 20, 1 torch thread)"
        )
    prompts = [f"a photo number {i}" for i in range(20)]
    with tempfile.TemporaryDirectory() as out:
        spec = EvaluationSpec(
            pipeline="tiny-sd",
            out=out,
            baselines=("none",),
            prompt_sets=(PromptSet.inline("u", "utility", prompts),),
            settings=PRESETS["quick"],
            torch_threads=1,
        )
        t = time.perf_counter()
        result = evaluate(spec, progress=False)
        total = time.perf_counter() - t
        print(
            f"tiny-sd loop: {result.done_now} items in {total:.1f} s "
            f"({1000 * total / result.done_now:.0f} ms/item incl. start-up; random weights; "
            "generation + NudeNet + open_nsfw + atomic PNG + fsync'ed record)"
        )


if __name__ == "__main__":
    main()
