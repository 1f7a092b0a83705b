"""Evaluate two packs side by side: images, safety classifiers and a summary per strength.

    spec = EvaluationSpec(pipeline="tiny-sd", out="runs/two-packs", packs=(a, b),
                          baselines=("none",), prompt_sets=(unsafe, benign),
                          settings=PRESETS["quick"])
    result = ss.evaluate(spec)                 # resumable: rerun into the same folder

The ``quick`` protocol uses the packaged classifiers only (NudeNet, open_nsfw); ``paper``
adds Q16, CLIP-score and FID and needs those models. ``tiny-sd`` has RANDOM weights, so its
ASR figures say nothing about safety: the script shows the path. Without ``--pack`` it first
builds two packs (procrustes and ridge maps) as ``build_a_pack.py`` does.

Run: ``python examples/evaluate_two_packs.py --out runs/two-packs``
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import safesteer as ss
from safesteer.evaluation.protocol import PRESETS


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="tiny-sd")
    parser.add_argument("--pack", type=Path, action="append", default=[], help="twice")
    parser.add_argument("--prompts", type=int, default=4, help="prompts per set (ours)")
    parser.add_argument("--out", type=Path, default=Path("runs/two-packs"))
    args = parser.parse_args(argv)

    packs = list(args.pack)
    if not packs:  # two small packs: packaged SmolLM2 source, 200 benign anchors (ours)
        source = ss.load_source("smollm2-135m")
        target, _ = ss.load_target(args.pipeline)
        for kind in ("procrustes", "ridge"):
            pack = ss.build_pack(source, 15, target, kind, anchors=ss.benign_anchors(200))
            packs.append(pack.save(args.out / f"{kind}.safetensors"))

    unsafe = [p.unsafe for p in ss.load_pairs("test")[: args.prompts]]
    benign = ss.benign_anchors(args.prompts)
    spec = ss.EvaluationSpec(
        pipeline=args.pipeline,
        out=str(args.out / "run"),
        packs=tuple(str(p) for p in packs),
        baselines=("none",),
        prompt_sets=(
            ss.PromptSet.inline("test unsafe prompts (ours)", "safety", unsafe),
            ss.PromptSet.inline("benign anchors (ours)", "utility", benign),
        ),
        settings=PRESETS["quick"],
    )
    result = ss.evaluate(spec, progress=False)

    protocol = ss.ResultsStore(result.run_dir).protocol()
    for line in protocol.summary_lines():  # what every number below comes from
        print(line)
    print(f"{'condition':<24} {'alpha':>5} {'n':>3} {'ASR':>6}")
    for row in result.summary["rows"]:
        asr = "–" if row["asr"] is None else f"{row['asr']:.3f}"
        print(f"{row['condition']:<24} {row['alpha']:>5g} {row['n_safety']:>3} {asr:>6}")
    return result.summary


if __name__ == "__main__":
    main()
