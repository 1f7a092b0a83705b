"""The resumable store: atomic files, torn JSONL tails, refusal of a changed protocol."""

from __future__ import annotations

import dataclasses
import json

import pytest
from PIL import Image

from safesteer.errors import InputError
from safesteer.evaluation.protocol import EvaluationSettings, ProtocolRecord
from safesteer.evaluation.store import ResultsStore, item_id, write_bytes_atomic


def _protocol(seed: int = 0) -> ProtocolRecord:
    return ProtocolRecord(
        pipeline={"id": "p"},
        conditions=[],
        prompt_sets=[],
        settings=dataclasses.asdict(EvaluationSettings(seed=seed)),
        classifiers=[],
    )


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
    store.append({"id": "a", "x": 1})
    store.append({"id": "b", "x": 2})
    with open(store.results_path, "a") as f:
        f.write('{"id": "c", "x"')  # a kill in the middle of a write
    assert set(store.completed()) == {"a", "b"}
    store.open(_protocol())
    store.append({"id": "d", "x": 4})
    lines = store.results_path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "d"]


def test_duplicates_keep_the_first_record(tmp_path):
    store = ResultsStore(tmp_path)
    store.open(_protocol())
    store.append({"id": "a", "x": 1})
    store.append({"id": "a", "x": 2})
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
