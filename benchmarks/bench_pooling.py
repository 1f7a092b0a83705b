"""Benchmark: pooling many prompts — same-token-count batches (ours) vs the previous batching.

Real packaged models (MiniLM-L6, Gemma-3-270M as encoder targets; SmolLM2-135M as the source,
layer 15), our benign anchors (safesteer, ours), fp32, torch threads 1 (see --threads). Each
figure compares ours with the previous code path on the same prompts in the same run,
alternating, minimum of the repeats:

- targets: ours = :func:`safesteer.targets.pooled.pooled_by_length` (batches of one token count,
  unpadded); baselines = the previous ``pooled_by_length`` (sorted by length, each batch padded
  to its longest: the default job's path) and the previous ``EncoderTarget.pooled`` (every
  prompt padded to 77, batches of 16: ``build_pack``'s path);
- source: ours = :class:`SourceReader` (same-length batches); baseline = the previous reader
  (sorted by length, batches of 32 padded to their longest).

The pooled states are checked against the baselines (max abs difference printed).

    python benchmarks/bench_pooling.py [--quick] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from _figures import alternate, figure
from safesteer.data import benign_anchors
from safesteer.maths.pooling import masked_mean, robust_mean
from safesteer.models import SourceReader
from safesteer.targets import EncoderTarget
from safesteer.targets.pooled import pooled_by_length


def previous_sorted_padded(
    adapter: Any, texts: Sequence[str], batch_size: int = 32
) -> torch.Tensor:
    """The previous ``pooled_by_length``: sorted by length, each batch padded to its longest."""
    tokenizer, full = adapter.tokenizer, adapter.max_length
    ids = tokenizer(list(texts), truncation=True, max_length=full)["input_ids"]
    lengths = [len(i) for i in ids]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    rows: dict[int, torch.Tensor] = {}
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            adapter.max_length = max(lengths[i] for i in idx)
            enc = adapter.encode([texts[i] for i in idx])
            rows.update(zip(idx, masked_mean(enc.states, enc.mask), strict=True))
    finally:
        adapter.max_length = full
    return torch.stack([rows[i] for i in range(len(texts))])


def previous_padded_to_full(
    adapter: Any, texts: Sequence[str], batch_size: int = 16
) -> torch.Tensor:
    """The previous ``TargetAdapter.pooled``: every prompt padded to 77, batches of 16."""
    rows = []
    for i in range(0, len(texts), batch_size):
        enc = adapter.encode(list(texts[i : i + batch_size]))
        rows.append(masked_mean(enc.states, enc.mask))
    return torch.cat(rows)


class PreviousReader(SourceReader):
    """The previous SourceReader batching: sorted by length, batches padded to their longest."""

    def _compute(self, prompts: Sequence[str], layers: Sequence[int]) -> dict[int, torch.Tensor]:
        texts = self._texts(prompts)
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        lengths = [len(i) for i in ids]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        out = {layer: torch.empty(len(texts), self.hidden_size) for layer in layers}
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            states, mask = self.token_states([texts[i] for i in idx], layers)
            for layer, s in states.items():
                result = robust_mean(s, mask, self.outlier_ratio)
                out[layer][idx] = result.pooled
                self.exclusions.setdefault(layer, Counter()).update(
                    result.excluded.nonzero()[:, 1].tolist()
                )
        return out


def compare(
    label: str,
    ours: Callable[[], torch.Tensor],
    baselines: dict[str, tuple[Callable[[], torch.Tensor], float]],
    repeats: int,
    n: int,
) -> None:
    """Time ours and each baseline (alternating); one figure per baseline with its aim ratio."""
    results: dict[str, torch.Tensor] = {}

    def keep(name: str, fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            results[name] = fn()

        return run

    fns = {"ours": keep("ours", ours), **{k: keep(k, f) for k, (f, _) in baselines.items()}}
    times = alternate(fns, repeats)
    best = {k: min(v) for k, v in times.items()}
    for name, (_, aim) in baselines.items():
        diff = float((results["ours"] - results[name]).abs().max())
        scale = float(results[name].abs().max())
        print(
            f"  {label}: ours {best['ours']:.2f} s, {name} {best[name]:.2f} s "
            f"({n} prompts; max |Δ| {diff:.1e} of max |h| {scale:.1e})",
            flush=True,
        )
        figure(
            f"pooling: {label} ({n} prompts) vs {name.replace('_', ' ')}",
            best["ours"],
            best[name],
            "s",
            max_ratio=aim,
            baseline_is=name.replace("_", " "),
            note=f"states equal to {diff / scale:.0e} (relative)",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer prompts, MiniLM and SmolLM2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = (
        {"minilm": 600, "gemma": 0, "smollm2": 200}
        if args.quick
        else {
            "minilm": 2000,
            "gemma": 300,
            "smollm2": 600,
        }
    )
    print(
        f"bench_pooling: real packaged models, our benign anchors, fp32, torch threads "
        f"{args.threads}, min of {args.repeats} alternating repeats"
    )
    t0 = time.perf_counter()
    for name in ("minilm", "gemma"):
        if not sizes[name]:
            continue
        target = EncoderTarget.from_preset(f"{name}-l6" if name == "minilm" else "gemma3-270m")
        texts = benign_anchors(sizes[name])
        compare(
            f"{name} target",
            lambda t=target, x=texts: pooled_by_length(t, x),
            {
                # deterministic at no cost: the same work as length-sorted padded batches
                "previous_sorted_padded_batches": (
                    lambda t=target, x=texts: previous_sorted_padded(t, x),
                    1.05,
                ),
                "previous_padded_to_77": (
                    lambda t=target, x=texts: previous_padded_to_full(t, x),
                    0.5,
                ),
            },
            args.repeats,
            len(texts),
        )
    texts = benign_anchors(sizes["smollm2"])
    ours = SourceReader.from_preset("smollm2-135m", cache=False, progress=False)
    previous = PreviousReader(ours.loaded, cache=False, progress=False)
    compare(
        "smollm2 source layer 15",
        lambda: ours.pooled(texts, 15),
        {"previous_sorted_padded_batches": (lambda: previous.pooled(texts, 15), 1.05)},
        args.repeats,
        len(texts),
    )
    print(f"bench_pooling: {time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
