"""The resumable store: atomic files, torn JSONL tails, refusal of a changed protocol."""

from __future__ import annotations

import dataclasses
import json

import pytest
from PIL import Image

from safesteer.errors import InputError, SafeSteerWarning
from safesteer.evaluation.protocol import EvaluationSettings, ProtocolRecord, resolved_path
from safesteer.evaluation.store import ResultsStore, item_id, write_bytes_atomic


def _protocol(seed: int = 0) -> ProtocolRecord:
    return ProtocolRecord(
        pipeline={"id": "p"},
        conditions=[],
        prompt_sets=[],
        settings=dataclasses.asdict(EvaluationSettings(seed=seed)),
        classifiers=[],
    )


def _rec(id_: str, **extra: object) -> dict:
    """A complete item record, as the runner writes it."""
    return {
        "id": id_,
        "condition": "none",
        "alpha": 0.0,
        "role": "safety",
        "prompt_set": "s",
        "prompt_index": 0,
        "image_index": 0,
        "flagged": False,
        "files": [f"{id_}.png"],
        "verdicts": {},
        "clip_score": None,
        **extra,
    }


def test_item_ids_are_deterministic_and_distinct():
    a = item_id("pack", 3.0, "i2p", 1, 0, 7)
    assert a == item_id("pack", 3, "i2p", 1, 0, 7) and len(a) == 16
    others = {
        item_id("pack", 5.0, "i2p", 1, 0, 7),
        item_id("none", 3.0, "i2p", 1, 0, 7),
        item_id("pack", 3.0, "i2p", 2, 0, 7),
        item_id("pack", 3.0, "i2p", 1, 1, 7),
        item_id("pack", 3.0, "i2p", 1, 0, 8),
        item_id("pack", 3.0, "coco", 1, 0, 7),
    }
    assert a not in others and len(others) == 6


def test_append_and_torn_tail_is_dropped_on_reopen(tmp_path):
    store = ResultsStore(tmp_path)
    store.open(_protocol())
    store.append(_rec("a", x=1))
    store.append(_rec("b", x=2))
    with open(store.results_path, "a") as f:
        f.write('{"id": "c", "x"')  # a kill in the middle of a write
    assert set(store.completed()) == {"a", "b"}
    store.open(_protocol())
    store.append(_rec("d", x=4))
    lines = store.results_path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "d"]


def test_duplicates_keep_the_first_record(tmp_path):
    store = ResultsStore(tmp_path)
    store.open(_protocol())
    store.append(_rec("a", x=1))
    store.append(_rec("a", x=2))
    assert store.completed()["a"]["x"] == 1


def test_changed_protocol_is_refused(tmp_path):
    ResultsStore(tmp_path).open(_protocol(seed=0))
    ResultsStore(tmp_path).open(_protocol(seed=0))  # same: resumes
    with pytest.raises(InputError, match=r"different protocol.*settings"):
        ResultsStore(tmp_path).open(_protocol(seed=1))


def test_images_are_written_whole_and_no_temp_files_remain(tmp_path):
    store = ResultsStore(tmp_path)
    path = store.write_image("c/a+1/s/p0.png", Image.new("RGB", (8, 8), (10, 20, 30)))
    assert Image.open(path).getpixel((0, 0)) == (10, 20, 30)
    write_bytes_atomic(path, b"replaced")
    assert path.read_bytes() == b"replaced"
    assert [p.name for p in path.parent.iterdir()] == ["p0.png"]


def test_protocol_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="not an evaluation run"):
        ResultsStore(tmp_path).protocol()


def test_reopen_removes_temp_files_of_interrupted_writes(tmp_path):
    store = ResultsStore(tmp_path)
    store.open(_protocol())
    kept = store.write_image("c/p0.png", Image.new("RGB", (4, 4)))
    stale = kept.parent / ".p1.png.abc.tmp"
    stale.write_bytes(b"half")
    store.open(_protocol())
    assert kept.exists() and not stale.exists()


def test_a_damaged_line_is_skipped_with_a_warning_and_the_rest_kept(tmp_path):
    store = ResultsStore(tmp_path)
    store.open(_protocol())
    store.append(_rec("a"))
    with open(store.results_path, "ab") as f:
        f.write(b"\xff\xfe not text\n")
        f.write(b'{"id": "b", "alpha": \n')
        f.write(json.dumps(_rec("c", alpha="high")).encode() + b"\n")
        f.write(b"[1, 2]\n")
        f.write(json.dumps({"id": "e"}).encode() + b"\n")
        f.write(json.dumps(_rec("f", verdicts={"q16": {"flagged": "yes"}})).encode() + b"\n")
    store.append(_rec("g"))
    with pytest.warns(SafeSteerWarning, match="skipped 6 damaged") as caught:
        done = store.completed()
    assert set(done) == {"a", "g"}
    message = str(caught[0].message)
    for says in (
        "line 2: not JSON",
        "line 3: not JSON",
        "line 4: 'alpha' is 'high'",
        "line 5: a JSON list",
        "line 6: no 'condition'",
        "line 7: 'verdicts'",
    ):
        assert says in message
    store.open(_protocol())  # reopening keeps every line (only a torn tail is cut)
    store.append(_rec("c"))  # a rerun redoes a skipped item; its good record is used
    assert store.completed()["c"]["alpha"] == 0.0  # (warned once per store, not again)


def test_stale_temp_files_of_the_run_folder_are_removed_on_reopen(tmp_path):
    """A crash while writing protocol.json / summary.json leaves a temp file: reopening the run
    (only one writer holds it) removes it; the files themselves are whole or absent."""
    store = ResultsStore(tmp_path)
    store.open(_protocol())
    stale = [tmp_path / ".protocol.json.x1y2.tmp", tmp_path / ".summary.json.k9.tmp"]
    for p in stale:
        p.write_bytes(b'{"half": ')
    other = tmp_path / "notes.tmp"  # not one of ours: kept
    other.write_text("mine")
    store.open(_protocol())
    assert not any(p.exists() for p in stale) and other.exists()
    assert ProtocolRecord.load(store.protocol_path).fingerprint() == _protocol().fingerprint()


def test_a_damaged_side_file_is_ignored_with_a_warning(tmp_path):
    store = ResultsStore(tmp_path)
    (tmp_path / "fid.json").write_bytes(b'{"results": [')
    with pytest.warns(SafeSteerWarning, match="fid.json is damaged"):
        assert store.read_json("fid.json") is None


def test_a_relative_and_an_absolute_path_of_one_prompt_file_resume(tmp_path, monkeypatch):
    def protocol(source: str) -> ProtocolRecord:
        return ProtocolRecord(
            pipeline={"id": "p"},
            conditions=[
                {"name": "ours", "kind": "pack", "source": source.replace("p.txt", "a.st")}
            ],
            prompt_sets=[{"name": "s", "role": "safety", "n": 1, "source": source}],
            settings=dataclasses.asdict(EvaluationSettings()),
            classifiers=[],
        )

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    ResultsStore(tmp_path / "run").open(protocol("data/p.txt"))  # as written by older versions
    ResultsStore(tmp_path / "run").open(protocol(str(tmp_path / "data" / "p.txt")))
    ResultsStore(tmp_path / "run").open(protocol("./data/../data/p.txt"))
    with pytest.raises(InputError, match="prompt_sets"):
        ResultsStore(tmp_path / "run").open(protocol("other/p.txt"))
    assert resolved_path("data/p.txt") == str(tmp_path / "data" / "p.txt")
    assert resolved_path("hf:nateraw/parti-prompts") == "hf:nateraw/parti-prompts"
