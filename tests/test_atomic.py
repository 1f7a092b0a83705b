"""Atomic writes: whole new file or the old one, no temporary left behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from safesteer.atomic import current_umask, write_bytes_atomic, write_json_atomic, write_text_atomic


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


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_respect_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        p = write_bytes_atomic(tmp_path / "new.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    p = tmp_path / "shared.json"
    p.write_text("{}")
    p.chmod(0o640)
    write_json_atomic(p, {"a": 1})
    assert stat.S_IMODE(p.stat().st_mode) == 0o640 and json.loads(p.read_text()) == {"a": 1}
