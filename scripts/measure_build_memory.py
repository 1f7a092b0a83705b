"""Peak RSS of building a pack with the models loaded one at a time vs both at once (CPU).

Each mode runs in a fresh subprocess (peak RSS is per process): ``staged`` is what
``safesteer build`` does (source loaded, read, freed, then the target); ``together`` loads the
target first and the source next, both resident while reading (what ``build`` did before).
Packaged real models, our data; float32 on CPU. Usage:

    PYTHONPATH=src python scripts/measure_build_memory.py [--source smollm2-135m] [--target gemma3-270m]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, torch
torch.set_num_threads(1)
from safesteer.data import benign_anchors, load_pairs
from safesteer.models.device import peak_rss_bytes, rss_bytes
mode, source, target = sys.argv[1:4]
pairs, anchors = tuple(load_pairs("train")[:64]), tuple(benign_anchors(256))
start = rss_bytes()
if mode == "staged":
    from safesteer.jobs.staged_build import BuildPlan, build_staged
    build_staged(BuildPlan(source=source, layer=15, target=target, pairs=pairs, anchors=anchors),
                 lambda _: None)
else:
    from safesteer.build import build_pack
    from safesteer.models import load_source
    from safesteer.targets import load_target
    adapter, _ = load_target(target)
    reader = load_source(source)
    build_pack(reader, 15, adapter, pairs=pairs, anchors=anchors)
print(json.dumps({"start": start, "peak": peak_rss_bytes()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", default="smollm2-135m")
    parser.add_argument("--target", default="gemma3-270m")
    args = parser.parse_args()
    rows = {}
    for mode in ("staged", "together"):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, mode, args.source, args.target],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    gib = 1 << 30
    print(
        f"source {args.source}, target {args.target} (packaged real models, float32 on CPU; "
        "64 of our train pairs, 256 of our benign anchors)"
    )
    for mode, r in rows.items():
        print(
            f"  {mode:<9} peak RSS {r['peak'] / gib:.2f} GiB (after imports {r['start'] / gib:.2f})"
        )
    saved = (rows["together"]["peak"] - rows["staged"]["peak"]) / gib
    print(f"  loading one model at a time saves {saved:.2f} GiB of peak RSS")


if __name__ == "__main__":
    main()
