"""Prompt sources by spec: named sets, files, ``hf:`` data sets (through a local fake hub:
parsing, column choice, cache, integrity, offline refusal), grouping per subcategory, and
``safesteer build --pairs/--anchors/--per`` end to end on the packaged tiny models."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from safesteer.cli import main
from safesteer.data import load_pairs, read_pairs
from safesteer.data import sources as src
from safesteer.data.partitions import benign_parts, pair_parts
from safesteer.data.real import safesteer_pairs
from safesteer.errors import InputError
from safesteer.pack import SafetyPack


# ---- named sets ---------------------------------------------------------------------------
def test_named_pair_sets_are_the_partitions_and_splits():
    assert src.resolve_pairs("safesteer").items == pair_parts()["direction"].pairs
    assert src.resolve_pairs(None).items == pair_parts()["direction"].pairs  # the default
    assert list(src.resolve_pairs("safesteer:train").items) == safesteer_pairs("train")
    assert list(src.resolve_pairs("safesteer:test").items) == safesteer_pairs("test")
    assert src.resolve_pairs("safesteer:probe").items == pair_parts()["probe"].pairs
    ours = src.resolve_pairs("ours")
    assert list(ours.items) == load_pairs("train") and ours.label.startswith("ours")
    assert ours.licences == {"ours": src.OURS_LICENCE}
    real = src.resolve_pairs("safesteer:test")
    assert "SafeSteerDataset (MIT" in real.label and "official test split" in real.label
    assert real.licences == {"SafeSteerDataset": "MIT"}
    assert real.provenance("pairs") == {"pairs_spec": "safesteer:test", "pairs_label": real.label}


def test_all_anchors_are_the_fit_parts_of_every_offline_benign_set():
    parts = benign_parts()
    got = src.resolve_anchors("all")
    expected = [
        t for s in ("sspairs", "parti", "compbench", "geneval", "ours") for t in parts[s]["fit"]
    ]
    assert list(got.items) == expected and len(set(got.items)) == len(expected)
    for title in ("SafeSteerDataset safe halves", "PartiPrompts", "T2I-CompBench", "GenEval"):
        assert title in got.label
    assert "ours (" in got.label and got.label.count("fit part") == 5
    titles = {"SafeSteerDataset", "PartiPrompts", "T2I-CompBench", "GenEval", "ours"}
    assert set(got.licences) == titles
    # nothing of the other sets' held-out parts (the pairs' safe halves follow the pair parts,
    # where one safe text can recur in two scenes: partitions.py's business, not this one's)
    held_out = {
        t
        for name, s in parts.items()
        if name != "sspairs"
        for p in ("cal", "probe", "test")
        for t in s.get(p, ())
    }
    overlap = held_out & set(got.items)
    assert not overlap, f"{len(overlap)} held-out texts in the fit parts"  # texts never printed


def test_named_anchor_sets_parts_combinations_and_limits():
    parts = benign_parts()
    assert src.resolve_anchors("parti").items == parts["parti"]["fit"]
    assert src.resolve_anchors("safesteer-safe").items == parts["sspairs"]["fit"]
    assert src.resolve_anchors("geneval:cal").items == parts["geneval"]["cal"]
    assert src.resolve_anchors("imagereward").items == parts["imagereward"]["test"]
    both = src.resolve_anchors("parti,geneval")
    assert both.items == parts["parti"]["fit"] + parts["geneval"]["fit"]
    assert both.label.count(" + ") == 1
    # [:N]: at most N, evenly spaced over the set, order kept
    full = parts["compbench"]["fit"]
    some = src.resolve_anchors("compbench[:10]")
    step = len(full) / 10
    assert list(some.items) == [full[int(i * step)] for i in range(10)]
    assert some.label.endswith(f"10 of {len(full)}")
    assert src.resolve_anchors("geneval[:100000]").items == parts["geneval"]["fit"]
    pairs = src.resolve_pairs("safesteer:test[:23]")
    assert len(pairs) == 23 and len({p.category for p in pairs.items}) == 6


def test_files_resolve_as_before(tmp_path, monkeypatch):
    pairs = tmp_path / "p.jsonl"
    rows = [
        {
            "safe": "a calm cat",
            "unsafe": "an angry cat",
            "category": "violence",
            "subcategory": "X",
        },
        {"safe": "a dog", "unsafe": "a mad dog", "category": "violence"},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = src.resolve_pairs(str(pairs))
    assert list(got.items) == read_pairs(pairs) and got.items[0].subcategory == "X"
    assert got.label == f"file {pairs} (given by the user)" and got.licences == {}
    anchors = tmp_path / "a.txt"
    anchors.write_text("a red house\na blue boat\n")
    assert src.resolve_anchors(anchors).items == ("a red house", "a blue boat")
    monkeypatch.chdir(tmp_path)  # a relative path with a suffix is a file, not a name
    assert src.resolve_anchors("a.txt").items == ("a red house", "a blue boat")


@pytest.mark.parametrize(
    ("role", "spec", "message"),
    [
        ("pairs", "banana", "unknown pairs set 'banana'"),
        ("pairs", "safesteer:banana", "unknown pairs set 'safesteer:banana'"),
        ("pairs", "hf:sentence-transformers/coco-captions", "hub data sets are for --anchors"),
        ("anchors", "banana", "unknown anchors set 'banana'"),
        ("anchors", "parti:banana", "unknown part 'banana'"),
        ("anchors", "imagereward:fit", "ImageReward has only a test part"),
        ("anchors", "parti,,ours", "has an empty part"),
        ("anchors", "parti[:0]", "asks for 0 items"),
        ("anchors", "hf:", "is not a hub data set spec"),
        ("anchors", "hf:a/b/c/d", "is not a hub data set spec"),
        ("anchors", "hf:owner/name#", "is not a hub data set spec"),
        ("anchors", "/nowhere/anchors.txt", "prompt file /nowhere/anchors.txt does not exist"),
        ("pairs", "/nowhere/pairs.jsonl", "file /nowhere/pairs.jsonl does not exist"),
    ],
)
def test_bad_specs_are_refused_with_a_fix(role: str, spec: str, message: str):
    with pytest.raises(InputError, match="fix: ") as err:
        src.check_spec(spec, role)
    assert message in str(err.value)


def test_hf_specs_parse_with_presets_and_overrides():
    r = src.parse_hf("hf:Salesforce/wikitext:wikitext-103-raw-v1@abc123/validation#text[:50]")
    assert (r.repo_id, r.config, r.revision, r.split, r.column, r.limit) == (
        "Salesforce/wikitext",
        "wikitext-103-raw-v1",
        "abc123",
        "validation",
        "text",
        50,
    )
    assert r.canonical() == "hf:Salesforce/wikitext:wikitext-103-raw-v1@abc123/validation#text"
    plain = src.parse_hf("hf:owner/name")
    assert (plain.config, plain.revision, plain.split, plain.column) == (None, None, "train", None)
    assert src.parse_hf("hf:owner/name/test").split == "test"
    wiki = src.parse_hf("hf:wikitext")
    assert (wiki.repo_id, wiki.config, wiki.clean) == (
        "Salesforce/wikitext",
        "wikitext-2-raw-v1",
        "wikitext",
    )
    coco = src.parse_hf("hf:coco#caption2")
    assert coco.repo_id == "sentence-transformers/coco-captions" and coco.column == "caption2"
    assert "CC BY 4.0" in (coco.licence or "")
    assert src.parse_hf("hf:flickr").repo_id == "sentence-transformers/flickr30k-captions"


# ---- hf: through a local fake hub -------------------------------------------------------------
@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The hub answered locally: ``dataset_info`` gives a revision and a licence, and
    ``datasets.load_dataset`` reads a Parquet file written here (the real ``datasets`` code)."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    datasets = pytest.importorskip("datasets")
    import huggingface_hub

    monkeypatch.setenv("SAFESTEER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    table = pa.table(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "caption": ["a red kite", " a red kite ", "", "a boat at dusk", "= Heading =", "x"],
            "other": ["o1", "o2", "o3", "o4", "o5", "o6"],
        }
    )
    data = tmp_path / "hub" / "train.parquet"
    data.parent.mkdir()
    pq.write_table(table, data)
    calls: dict[str, Any] = {"info": 0, "load": []}
    real_load = datasets.load_dataset

    def info(self, repo_id, revision=None, timeout=None, **_):
        calls["info"] += 1
        if repo_id == "nobody/nothing":
            import httpx
            from huggingface_hub.errors import RepositoryNotFoundError

            answer = httpx.Response(404, request=httpx.Request("GET", "http://hub.invalid"))
            raise RepositoryNotFoundError("404", response=answer)
        return SimpleNamespace(sha="f" * 40, card_data=SimpleNamespace(license="cc-by-4.0"))

    def load(path, name=None, revision=None, split=None, **_):
        calls["load"].append((path, name, revision, split))
        return real_load(
            "parquet",
            data_files={"train": str(data)},
            split="train",
            cache_dir=str(tmp_path / "hf-cache"),
        )

    import safesteer.hub

    monkeypatch.setattr(safesteer.hub, "hub_reachable", lambda *_: True)  # the fake answers
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", info)
    monkeypatch.setattr(datasets, "load_dataset", load)
    return calls


def test_hf_download_picks_the_column_caches_and_reuses(fake_hub):
    got = src.resolve_anchors("hf:owner/captions")
    # "caption" chosen over the other text column; stripped, blanks and repeats dropped
    assert got.items == ("a red kite", "a boat at dusk", "= Heading =", "x")
    assert "cc-by-4.0" in got.label and "revision ffffffffffff" in got.label
    assert got.licences == {"owner/captions": "cc-by-4.0"}
    assert fake_hub["info"] == 1 and fake_hub["load"] == [
        ("owner/captions", None, "f" * 40, "train")
    ]
    data, meta_path = src.cache_paths(src.parse_hf("hf:owner/captions"))
    meta = json.loads(meta_path.read_text())
    assert meta["column"] == "caption" and meta["n"] == 4 and meta["revision"] == "f" * 40
    import hashlib

    assert meta["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert [json.loads(line)["text"] for line in data.read_text().splitlines()] == list(got.items)
    # reuse: read from the cache, the hub is not asked again; [:N] applies after the cache
    again = src.resolve_anchors("hf:owner/captions[:2]")
    assert again.items == ("a red kite", "= Heading =") and fake_hub["info"] == 1
    assert again.label.endswith("2 of 4")
    # another column is another cached set
    other = src.resolve_anchors("hf:owner/captions#other")
    assert other.items == ("o1", "o2", "o3", "o4", "o5", "o6") and fake_hub["info"] == 2
    # combined with a named set
    mixed = src.resolve_anchors("geneval,hf:owner/captions")
    assert mixed.items[-4:] == got.items and len(mixed.licences) == 2


def test_hf_wikitext_preset_drops_headings_and_a_bad_column_is_named(fake_hub):
    wiki = src.resolve_anchors("hf:wikitext#caption")
    assert wiki.items == ("a red kite", "a boat at dusk", "x")  # "= Heading =" dropped
    assert fake_hub["load"][-1][:2] == ("Salesforce/wikitext", "wikitext-2-raw-v1")
    assert "CC BY-SA 3.0" in wiki.label
    with pytest.raises(InputError, match=r"no column 'nope' \(columns: \['id', 'caption'"):
        src.resolve_anchors("hf:owner/captions#nope")
    with pytest.raises(InputError, match="no data set 'nobody/nothing' on the hub"):
        src.resolve_anchors("hf:nobody/nothing")


def test_without_a_known_column_name_the_only_text_column_is_used():
    def rows(**dtypes: str) -> SimpleNamespace:
        features = {k: SimpleNamespace(dtype=v) for k, v in dtypes.items()}
        return SimpleNamespace(column_names=list(dtypes), features=features)

    ref = src.parse_hf("hf:owner/name")
    assert src._pick_column(ref, ["id", "body"], rows(id="int64", body="string")) == "body"
    with pytest.raises(InputError, match=r"which column holds the text\? .*fix: add #<column>"):
        src._pick_column(ref, ["a", "b"], rows(a="string", b="string"))


def test_a_damaged_cache_is_refused(fake_hub):
    src.resolve_anchors("hf:owner/captions")
    data, _ = src.cache_paths(src.parse_hf("hf:owner/captions"))
    data.write_text(data.read_text().replace("kite", "kyte"))
    with pytest.raises(InputError, match="is damaged: its sha256 does not match") as err:
        src.resolve_anchors("hf:owner/captions")
    assert f"delete {data}" in str(err.value) and fake_hub["info"] == 1


def test_offline_without_a_cached_copy_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFESTEER_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"not in the cache .* the hub is switched off") as err:
        src.resolve_anchors("hf:coco")
    assert "fix: download it once where the hub is reachable" in str(err.value)
    # no offline flag, but no hub either (a closed local port): the same clear refusal
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(InputError, match="the hub cannot be reached"):
        src.resolve_anchors("hf:owner/name")
    assert not any(tmp_path.rglob("*.jsonl"))


def test_build_refuses_an_uncached_hub_set_offline_before_loading_models(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SAFESTEER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import safesteer.jobs.staged_build as staged

    def no_build(*_a, **_k):
        raise AssertionError("a model would load")

    monkeypatch.setattr(staged, "build_staged", no_build)
    out = tmp_path / "p.safetensors"
    args = ["build", "--source", "minilm-l6", "--layer", "4", "--target", "tiny-flux"]
    assert main([*args, "--anchors", "hf:coco", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: hub data set hf:sentence-transformers/coco-captions:pair")
    assert "(fix: " in err and not out.exists()


# ---- grouping and the build command ---------------------------------------------------------
def test_group_pairs_per_subcategory():
    pairs = safesteer_pairs("train")
    grouped, parents = src.group_pairs(pairs, "subcategory")
    assert len(parents) == 23 and set(parents.values()) == {p.category for p in pairs}
    assert {p.category for p in grouped} == set(parents)
    assert [(p.safe, p.unsafe) for p in grouped] == [(p.safe, p.unsafe) for p in pairs]
    assert parents["drug_related_crime"] == "illegal_activity"
    same, by_cat = src.group_pairs(pairs, "category")
    assert same == pairs and set(by_cat) == {p.category for p in pairs}
    with pytest.raises(InputError, match="have no subcategory"):
        src.group_pairs(load_pairs("train"), "subcategory")


def test_build_per_subcategory_records_specs_and_labels(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "sub.safetensors"
    args = [
        "build",
        "--source",
        "minilm-l6",
        "--layer",
        "4",
        "--target",
        "tiny-flux",
        "--pairs",
        "safesteer:test[:46]",
        "--anchors",
        "parti[:24],ours[:16]",
        "--per",
        "subcategory",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "data: pairs: SafeSteerDataset (MIT" in printed
    pack = SafetyPack.load(out)
    chosen = src.resolve_pairs("safesteer:test[:46]").items
    subs = {src.subcategory_key(p.subcategory) for p in chosen}
    assert set(pack.categories) == subs and len(subs) > 6  # finer than the 6 categories
    prov = pack.provenance
    assert prov["pairs_spec"] == "safesteer:test[:46]"
    assert prov["anchors_spec"] == "parti[:24],ours[:16]"
    assert "PartiPrompts (Apache-2.0" in prov["anchors_label"] and "24 of" in prov["anchors_label"]
    assert prov["direction_groups"] == "subcategory"
    assert set(prov["group_categories"]) == subs
    assert prov["data_licenses"] == {
        "SafeSteerDataset": "MIT",
        "PartiPrompts": "Apache-2.0",
        "ours": src.OURS_LICENCE,
    }
    assert prov["n_pairs"] == 46 and prov["n_anchors"] == 40


def test_named_anchors_carry_their_set_per_item_and_files_do_not(tmp_path):
    from safesteer.data.partitions import default_anchor_sets, default_anchors

    every = src.resolve_anchors("all")
    assert list(every.items) == default_anchors()
    assert every.groups == tuple(default_anchor_sets())
    few = src.resolve_anchors("parti[:5],ours[:3]")
    parts = benign_parts()
    assert few.groups == ("parti",) * 5 + ("ours",) * 3
    assert all(t in parts[g]["fit"] for t, g in zip(few.items, few.groups, strict=True))
    f = tmp_path / "anchors.txt"
    f.write_text("a red bicycle\na bowl of soup\n")
    assert src.resolve_anchors(str(f)).groups is None
