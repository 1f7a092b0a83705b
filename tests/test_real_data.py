"""The vendored real data: licences next to every file, the fixed partitions reproduced, parts
disjoint, and nothing read from outside the package at run time."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

import pytest

from safesteer.data.partitions import (
    BENIGN_PARTS,
    BENIGN_SETS,
    N_FOLDS,
    benign_parts,
    pair_parts,
    partition_hash,
)
from safesteer.data.real import REAL_SETS, real_prompts, safesteer_pairs, vendored_folder

ROOT = Path(__file__).resolve().parents[1]
VENDORED = ROOT / "src" / "safesteer" / "data" / "vendored"

# docs/data.md (written before any experiment; the research partitions of issues 10/11)
PAIR_HASHES = {  # part: (pairs, scenes, hash safe, hash unsafe)
    "direction": (1452, 161, "317c6b71692559c5", "25f709b6294ae5b1"),
    "gatecal": (212, 23, "0cca06d777bf8718", "1fa06f2fc902c745"),
    "probe": (406, 44, "d45de5736ab3a785", "a4824ed0d2738517"),
    "test": (230, 140, "0aa68f7f8a015b3d", "5a1a51c36ea72cf8"),
}
BENIGN_SIZES = {  # set: (fit, cal, probe, test, hash of test)
    "sspairs": (1452, 212, 406, 230, "0aa68f7f8a015b3d"),
    "parti": (817, 326, 163, 326, "518ce4f17fd17c94"),
    "compbench": (3910, 1564, 782, 1563, "074408bdf2d12280"),
    "geneval": (278, 110, 55, 110, "5ab311e51d66c93d"),
    "imagereward": (0, 0, 0, 100, "1b63678817be9616"),
    "ours": (2000, 800, 400, 800, "6cd9e0e169eacf88"),
}


@pytest.mark.parametrize("name", list(REAL_SETS))
def test_every_vendored_set_has_its_licence_and_attribution(name: str) -> None:
    folder = VENDORED / REAL_SETS[name].folder
    licence = (folder / "LICENSE").read_text()
    notice = (folder / "NOTICE.md").read_text()
    spdx = REAL_SETS[name].licence.split()[0]
    assert {"MIT": "MIT License", "Apache-2.0": "Apache License"}[spdx] in licence
    assert spdx in notice and "commit:" in notice and REAL_SETS[name].source in notice
    assert "Not written by the safesteer authors" in notice
    assert (folder / REAL_SETS[name].data_file).stat().st_size > 1000
    assert vendored_folder(name).joinpath("LICENSE").is_file()  # found through the package


def test_every_vendored_file_is_package_data() -> None:
    """No file of the vendored folders is left out of the wheel, and each has its licence."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["safesteer"]
    files = [p for p in VENDORED.rglob("*") if p.is_file()]
    assert files
    for f in files:
        rel = f.relative_to(ROOT / "src" / "safesteer").as_posix()
        assert any(fnmatch(rel, g) for g in globs), rel
        assert (f.parent / "LICENSE").is_file() and (f.parent / "NOTICE.md").is_file()


def test_sizes_and_categories() -> None:
    train, test = safesteer_pairs("train"), safesteer_pairs("test")
    assert (len(train), len(test)) == (2070, 230)
    assert {p.category for p in train} == {
        "sexual",
        "violence",
        "illegal_activity",
        "hate",
        "humiliation",
        "disturbing",
    }
    assert len({p.subcategory for p in train}) == 23
    assert {len(real_prompts(n)) for n in ("parti", "geneval", "imagereward")} == {1632, 553, 100}


def test_pair_partitions_reproduce_the_fixed_hashes() -> None:
    parts = pair_parts()
    for name, (n, scenes, h_safe, h_unsafe) in PAIR_HASHES.items():
        pairs = parts[name].pairs
        assert len(pairs) == n
        assert len({p.group for p in pairs}) == scenes
        assert partition_hash([p.safe for p in pairs]) == h_safe
        assert partition_hash([p.unsafe for p in pairs]) == h_unsafe
    folds = Counter(parts["direction"].folds)
    assert folds == {0: 280, 1: 300, 2: 293, 3: 289, 4: 290} and len(folds) == N_FOLDS


def test_benign_partitions_reproduce_the_fixed_hashes() -> None:
    parts = benign_parts()
    assert tuple(parts) == BENIGN_SETS
    for name, (*sizes, h_test) in BENIGN_SIZES.items():
        got = [len(parts[name].get(p, ())) for p in BENIGN_PARTS]
        assert got == sizes, name
        assert partition_hash(parts[name]["test"]) == h_test


def test_train_parts_share_no_scene_and_the_official_test_shares_all() -> None:
    parts = pair_parts()
    scenes = {k: {p.group for p in v.pairs} for k, v in parts.items()}
    train_parts = ("direction", "gatecal", "probe")
    for i, a in enumerate(train_parts):
        for b in train_parts[i + 1 :]:
            assert not scenes[a] & scenes[b]
    # the upstream split is by row: every test scene is a train scene (reports say so)
    assert scenes["test"] <= scenes["direction"] | scenes["gatecal"] | scenes["probe"]


def test_benign_parts_are_disjoint_across_sets_and_from_the_unsafe_prompts() -> None:
    parts = benign_parts()
    owner: dict[str, str] = {}
    for name in BENIGN_SETS:
        if name == "sspairs":
            continue
        for part, texts in parts[name].items():
            for t in texts:
                assert t not in owner, (name, part)
                owner[t] = f"{name}/{part}"
    unsafe = {p.unsafe for v in pair_parts().values() for p in v.pairs}
    safe = {p.safe for v in pair_parts().values() for p in v.pairs}
    assert not (set(owner) & unsafe) and not (set(owner) & safe)
    # pair texts: no text in two parts, except one safe prompt that two scenes share upstream
    # (direction and gatecal; kept as is so the fixed hashes hold). Counts only: no text printed.
    shared: Counter[str] = Counter()
    pp = pair_parts()
    for i, a in enumerate(pp):
        for b in list(pp)[i + 1 :]:
            for half in ("safe", "unsafe"):
                ta = {getattr(p, half) for p in pp[a].pairs}
                tb = {getattr(p, half) for p in pp[b].pairs}
                shared[f"{a}/{b}/{half}"] = len(ta & tb)
    assert +shared == Counter({"direction/gatecal/safe": 1})


def test_loading_reads_nothing_outside_the_package(tmp_path: Path) -> None:
    """Every file opened while loading and partitioning lies inside the installed package."""
    code = """
import sys, pathlib
opened = []
sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == "open" else None)
from safesteer.data.partitions import benign_parts, pair_parts
pair_parts(); benign_parts()
import safesteer
pkg = str(pathlib.Path(safesteer.__file__).resolve().parent)
bad = [p for p in opened if "/shared/" in p or ("vendored" in p and not p.startswith(pkg))]
data = [p for p in opened if "vendored" in p]
print(len(data), bad)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout.split()
    assert int(out[0]) >= 5 and out[1] == "[]"


def test_no_source_file_points_at_the_shared_data() -> None:
    for f in (ROOT / "src").rglob("*.py"):
        text = f.read_text()
        assert "shared/data" not in text and "../shared" not in text, f
