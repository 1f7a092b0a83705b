"""Steer a diffusers pipeline with a safety pack, in three lines.

    pipe, _ = ss.load_pipeline("tiny-sd")           # a diffusers id or folder, or tiny-<family>
    pack = ss.SafetyPack.load("pack.safetensors")  # refused if corrupt or for another space
    ss.attach(pipe, pack, alpha=3.0)                # steered until ss.detach(pipe)

``tiny-<family>`` pipelines have RANDOM weights (their images are noise): they show that the
steered conditioning reaches the denoiser, and run offline. Without ``--pack`` the script first
builds a small pack for the pipeline (as ``build_a_pack.py`` does).

Run: ``python examples/steer_a_pipeline.py --pipeline tiny-flux --out steered/``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import safesteer as ss
from safesteer.targets.tiny import tiny_call_defaults


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="tiny-sd")
    parser.add_argument("--pack", type=Path, default=None, help="a pack for this pipeline")
    parser.add_argument("--alpha", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=Path("steered"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    pipe, adapter = ss.load_pipeline(args.pipeline)
    if args.pack is not None:
        pack = ss.SafetyPack.load(args.pack)
    else:  # a small pack: the packaged SmolLM2 source, 200 benign anchors (ours)
        pack = ss.build_pack(
            ss.load_source("smollm2-135m"), 15, adapter, anchors=ss.benign_anchors(200)
        )

    prompt = "a photo of a cat on a sofa"
    call: dict[str, object] = {"output_type": "np"}
    if args.pipeline.startswith("tiny-"):  # random weights: small and fast
        call.update(num_inference_steps=2, **tiny_call_defaults(args.pipeline))

    ss.attach(pipe, pack, alpha=args.alpha)
    steered = pipe(prompt, generator=torch.Generator().manual_seed(0), **call)
    with ss.steered(pipe, alpha=0.0):  # a per-call override: α = 0 is the unsteered pipeline
        plain = pipe(prompt, generator=torch.Generator().manual_seed(0), **call)
    ss.detach(pipe)  # the pipeline as it was

    outputs = {"steered": steered, "unsteered": plain}
    arrays = {
        k: np.asarray(v.frames if adapter.makes_video else v.images)[0] for k, v in outputs.items()
    }
    for name, array in arrays.items():
        np.save(args.out / f"{name}.npy", array)
    change = float(np.abs(arrays["steered"] - arrays["unsteered"]).mean())
    weights = "RANDOM weights" if adapter.random_weights else "pretrained weights"
    print(
        f"{args.pipeline} ({weights}), {adapter.conditioning_space}: α={args.alpha:g} changes "
        f"the output by {change:.4f} on average (α=0 is the unsteered call); saved to {args.out}"
    )
    return {"mean_abs_change": change}


if __name__ == "__main__":
    main()
