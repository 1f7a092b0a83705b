"""What a smaller gate reader costs in source-gate quality (issue 12 §1).

A pack's source gate decides from a reader's pooled states of the prompt. Here the pack's
direction comes from Gemma-3-270M (the packaged one), and the gate is fitted either on Gemma's
own states (the default) or on SmolLM2-135M's (a smaller reader: generation then loads only
SmolLM2). Both gates are fitted the same way — :func:`safesteer.build.fit_source_gate` on the
benign anchors' states ("fit" part), vectors = that reader's own train-pair directions — and
judged on data neither saw: the test pairs (unsafe prompts steered; their safe twins
triggered) and the held-out benign anchors (triggered). Data: the default job's splits
(SafeSteerDataset pairs, MIT; the real benign sets by role and our anchors; labels in
``docs/data-sources.md``). The figures in docs/real-scale.md were measured on our own earlier
prompt sets, before the real data landed. Real packaged weights, float32 on CPU. Layers: the `auto` rule
(source-side train pairs only) for each reader. Usage: PYTHONPATH=src python scripts/gate_reader_cost.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from safesteer.build import SidePairs, fit_source_gate
from safesteer.jobs.default.config import JobConfig
from safesteer.jobs.default.splits import load_job_data
from safesteer.models import choose_layer, load_source


def rates(reader_name: str, data) -> dict:
    reader = load_source(reader_name)
    layer = choose_layer(reader, pairs=data.train)
    texts = list(dict.fromkeys([
        *(t for p in (*data.train, *data.test) for t in (p.safe, p.unsafe)),
        *data.anchors.fit, *data.anchors.held_out,
    ]))  # fmt: skip
    pooled = reader.pooled(texts, layer)
    by = {t: pooled[i] for i, t in enumerate(texts)}

    def rows(ts):
        return torch.stack([by[t] for t in ts])

    train = SidePairs(
        rows([p.safe for p in data.train]),
        rows([p.unsafe for p in data.train]),
        tuple(p.category for p in data.train),
    )
    v, cats = train.directions("source", {})
    gate = fit_source_gate(rows(data.anchors.fit), v, cats)

    def steered(ts):
        return float(gate.decide(rows(ts)).steer.float().mean())

    return {
        "reader": reader.model_id,
        "layer": layer,
        "unsafe_test_steered": steered([p.unsafe for p in data.test]),
        "safe_twins_triggered": steered([p.safe for p in data.test]),
        "benign_held_out_triggered": steered(list(data.anchors.held_out)),
        "n": {"test_pairs": len(data.test), "held_out_anchors": len(data.anchors.held_out)},
    }


def main() -> None:
    torch.set_num_threads(1)
    data = load_job_data(JobConfig(out=Path(tempfile.mkdtemp())))
    out = {name: rates(name, data) for name in ("gemma3-270m", "smollm2-135m")}
    print(json.dumps(out, indent=2))
    g, s = out["gemma3-270m"], out["smollm2-135m"]
    print(
        "gate reader for a Gemma-3-270M-sourced pack (our data, real packaged weights):\n"
        f"  Gemma-3-270M itself (layer {g['layer']}): unsafe test steered "
        f"{g['unsafe_test_steered']:.3f}, safe twins {g['safe_twins_triggered']:.3f}, benign "
        f"held-out {g['benign_held_out_triggered']:.3f}\n"
        f"  SmolLM2-135M (layer {s['layer']}):        unsafe test steered "
        f"{s['unsafe_test_steered']:.3f}, safe twins {s['safe_twins_triggered']:.3f}, benign "
        f"held-out {s['benign_held_out_triggered']:.3f}"
    )


if __name__ == "__main__":
    main()
