"""Vendor the real prompt sets into the package (run once by a maintainer; never at run time).

Reads the upstream copies (default ``../shared/data``, each folder with its ``LICENSE`` and
``COMMIT``) and writes compact, deterministic JSON lines (gzip, mtime 0) with the licence text and
an attribution note next to each, under ``src/safesteer/data/vendored/<set>/``. Only the columns
safesteer uses are kept. The texts are exactly those the research partitions read
(``/work/research/common.py``): the same parsing (pandas for the TSV / Parquet, ``strip()``,
empty lines dropped), so the partition hashes of ``docs/data.md`` are reproduced.

Usage::

    python scripts/vendor_data.py [--from ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "safesteer" / "data" / "vendored"

#: set → (upstream folder, title, licence name, upstream repository, what we keep)
SETS = {
    "safesteer_dataset": (
        "safesteer-dataset",
        "SafeSteerDataset",
        "MIT",
        "https://github.com/NASK-AISafety/conditional-activation-transport (data/)",
        "all 2,300 pairs of the official train and test splits; columns split, category, "
        "subcategory, situation, safe, unsafe",
    ),
    "partiprompts": (
        "partiprompts",
        "PartiPrompts",
        "Apache-2.0",
        "https://github.com/google-research/parti (PartiPrompts.tsv)",
        "every prompt with its Category",
    ),
    "t2i_compbench": (
        "t2i-compbench",
        "T2I-CompBench",
        "MIT",
        "https://github.com/Karine-Huang/T2I-CompBench (examples/dataset/*.txt)",
        "every prompt with the name of its file (colour, shape, texture, spatial, …)",
    ),
    "geneval": (
        "geneval",
        "GenEval",
        "MIT",
        "https://github.com/djghosh13/geneval (prompts/evaluation_metadata.jsonl)",
        "every prompt with its tag",
    ),
    "imagereward": (
        "imagereward",
        "ImageReward benchmark prompts",
        "Apache-2.0 (prompts from DiffusionDB, CC0)",
        "https://github.com/THUDM/ImageReward (benchmark/benchmark-prompts.json)",
        "the 100 prompts (real user prompts typed into Stable Diffusion)",
    ),
}


def _rows(name: str, src: Path) -> list[dict[str, str]]:
    import pandas as pd

    if name == "safesteer_dataset":
        rows = []
        for split in ("train", "test"):
            df = pd.read_parquet(src / f"SafeSteer_{split}.parquet")
            for r in df.itertuples():
                rows.append(
                    {
                        "split": split,
                        "category": str(r.category),
                        "subcategory": str(r.subcategory),
                        "situation": str(r.situation),
                        "safe": str(r.safe_prompt),
                        "unsafe": str(r.unsafe_prompt),
                    }
                )
        return rows
    if name == "partiprompts":
        df = pd.read_csv(src / "PartiPrompts.tsv", sep="\t")
        return [
            {"prompt": str(p).strip(), "stratum": str(c)}
            for p, c in zip(df.Prompt, df.Category, strict=True)
            if str(p).strip()
        ]
    if name == "t2i_compbench":
        rows = []
        for f in sorted(src.glob("*.txt")):
            rows += [
                {"prompt": ln.strip(), "stratum": f.stem}
                for ln in f.read_text().splitlines()
                if ln.strip()
            ]
        return rows
    if name == "geneval":
        lines = (src / "evaluation_metadata.jsonl").read_text().splitlines()
        return [
            {"prompt": g["prompt"].strip(), "stratum": g["tag"]}
            for g in (json.loads(ln) for ln in lines if ln.strip())
        ]
    if name == "imagereward":
        items = json.loads((src / "benchmark-prompts.json").read_text())
        kept = [r["prompt"].strip() for r in items]
        return [{"prompt": p, "stratum": ""} for p in kept if p]
    raise KeyError(name)


def vendor(source_root: Path) -> None:
    for name, (folder, title, licence, repo, kept) in SETS.items():
        src = source_root / folder
        rows = _rows(name, src)
        out = OUT / name
        out.mkdir(parents=True, exist_ok=True)
        body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        data_file = "pairs.jsonl.gz" if name == "safesteer_dataset" else "prompts.jsonl.gz"
        (out / data_file).write_bytes(gzip.compress(body.encode("utf-8"), mtime=0))
        (out / "LICENSE").write_bytes((src / "LICENSE").read_bytes())
        commit = (src / "COMMIT").read_text().strip()
        (out / "NOTICE.md").write_text(
            f"# {title}\n\n"
            f"- source: {repo}\n"
            f"- commit: {commit}\n"
            f"- licence: {licence} (full text: `LICENSE` in this folder)\n"
            f"- kept: {kept} ({len(rows)} rows, `{data_file}`: gzip JSON lines)\n"
            f"- changes: columns dropped; whitespace stripped; empty prompts dropped\n\n"
            f"Not written by the safesteer authors. Vendored by `scripts/vendor_data.py`.\n"
        )
        print(f"{name}: {len(rows)} rows → {out / data_file}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    source = Path(args.source)
    if not source.is_dir():
        source = Path("/work/shared/data")
    vendor(source)


if __name__ == "__main__":
    main()
