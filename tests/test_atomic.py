"""Atomic writes: whole new file or the old one, no temporary left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safesteer.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic


def test_writes_replace_and_create_folders(tmp_path: Path) -> None:
    p = tmp_path / "a" / "b.bin"
    assert write_bytes_atomic(p, b"one") == p
    write_bytes_atomic(p, b"two")
    assert p.read_bytes() == b"two"
    write_text_atomic(tmp_path / "t.txt", "αβ")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "αβ"
    write_json_atomic(tmp_path / "j.json", {"b": 1, "a": 2}, sort_keys=True)
    assert (tmp_path / "j.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": 2, "b": 1}
    assert sorted(q.name for q in tmp_path.rglob("*") if q.is_file()) == [
        "b.bin",
        "j.json",
        "t.txt",
    ]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "keep.json"
    write_json_atomic(p, {"ok": True})
    with pytest.raises(TypeError):
        write_json_atomic(p, {"bad": object()})  # fails while encoding, before the rename
    with pytest.raises(TypeError):
        write_bytes_atomic(p, "not bytes")  # type: ignore[arg-type]  # fails inside the write
    assert json.loads(p.read_text()) == {"ok": True}
    assert [q.name for q in tmp_path.iterdir()] == ["keep.json"]
