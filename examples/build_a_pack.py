"""Build a safety pack from your own models: a source LLM, a layer, a target, a map.

The pack carries the source's safety direction (learned on safe/unsafe prompt pairs) into
the target's conditioning space with a map fitted on benign prompts only::

    source = ss.load_source("smollm2-135m")            # a preset, hub id, folder or GGUF file
    target, _ = ss.load_target("tiny-sd")              # a diffusers id, folder, tiny-<family>
    pack = ss.build_pack(source, 15, target, "procrustes")  # SafeSteerDataset + real anchors

Without ``pairs`` / ``anchors`` a pack is built from the library's defaults (SafeSteerDataset's
1,452 direction pairs and 8,457 real + our benign anchors: many minutes on a CPU). This example
passes our own 156 train pairs and a few hundred of our anchors to stay under a minute.

Offline the defaults use a packaged model (SmolLM2-135M, real weights) and ``tiny-sd`` (a
diffusers pipeline with RANDOM weights); with the hub, pass e.g. ``--source
meta-llama/Llama-3.1-8B --target black-forest-labs/FLUX.1-schnell --layer 20``. A few hundred
anchors keep this under a minute on a CPU; real packs use thousands (``safesteer build``).

Run: ``python examples/build_a_pack.py --out pack.safetensors``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import safesteer as ss
from safesteer.maths.alignment import MAPS


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="smollm2-135m")
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--target", default="tiny-sd")
    parser.add_argument("--map", default="procrustes", choices=list(MAPS))
    parser.add_argument("--anchors", type=int, default=300, help="benign anchors (ours)")
    parser.add_argument("--out", type=Path, default=Path("pack.safetensors"))
    args = parser.parse_args(argv)

    source = ss.load_source(args.source)
    target, _ = ss.load_target(args.target)
    pairs = ss.load_pairs("train")  # ours: small; the default is SafeSteerDataset
    pack = ss.build_pack(
        source, args.layer, target, args.map, pairs=pairs, anchors=ss.benign_anchors(args.anchors)
    )
    path = pack.save(args.out)

    again = ss.SafetyPack.load(path)  # checked on load: hash, shapes, metadata
    print(
        f"wrote {path}: {args.source} layer {args.layer} → {again.target_id} "
        f"({again.conditioning_space}, d={again.dim}), {args.map} map on {args.anchors} benign "
        f"anchors (ours), categories: {', '.join(again.categories)}"
    )
    return path


if __name__ == "__main__":
    main()
