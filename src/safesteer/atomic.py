"""Atomic file writes: a reader sees the old file, or the whole new one, never a half.

Every file safesteer writes that a later step or a resumed run reads goes through here.

Example:
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out" / "a.json"
    >>> write_json_atomic(p, {"alpha": 5.0}) == p
    True
    >>> p.read_text()
    '{\\n  "alpha": 5.0\\n}\\n'
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["current_umask", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows opening a folder
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read from ``/proc`` where possible; else set and restored at once)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _new_file_mode(path: Path) -> int:
    """An existing file keeps its mode; a new one gets ``0o666 & ~umask`` like ``open()``."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file in the same folder, fsync it, rename it over ``path``.

    A failure removes the temporary file and leaves any existing ``path`` untouched. The file's
    mode is what a plain ``open()`` would give (the umask's, or the replaced file's own), not
    the temporary file's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """:func:`write_bytes_atomic` of UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any, **dumps: Any) -> Path:
    """:func:`write_text_atomic` of ``json.dumps(obj, indent=2, **dumps)`` plus a newline."""
    return write_text_atomic(path, json.dumps(obj, indent=2, **dumps) + "\n")
