"""A resumable results store: atomic image files plus an append-only JSONL of finished items.

Layout of a run folder::

    protocol.json      the ProtocolRecord (a rerun with another fingerprint is refused)
    results.jsonl      one JSON line per finished item, appended and fsync'ed
    images/...         image files, each written to a temp file then os.replace'd

An item is recorded only after its files are whole, so killing the process at any moment
loses at most the item in flight; a torn last line and stale temp files (``images/`` and the
run folder's own, e.g. of ``protocol.json``) are dropped when the store is reopened (only one
evaluation may write a run at a time: the runner holds a lock). Items are keyed by a
deterministic id (:func:`item_id`), so a rerun skips what is done.

A damaged line in the middle (bad bytes, not JSON, a field of the wrong type such as
``"alpha": "high"``) is skipped with a :class:`~safesteer.errors.SafeSteerWarning` naming its
line; the other records are kept, a rerun redoes the skipped item, and ``safesteer report``
works on what is readable.

Example:
    >>> store = ResultsStore("runs/demo")  # doctest: +SKIP
    >>> store.open(protocol)  # doctest: +SKIP
    >>> done = store.completed()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from safesteer.atomic import write_bytes_atomic
from safesteer.errors import InputError, SafeSteerWarning
from safesteer.evaluation.protocol import ProtocolRecord, resolve_record_paths

PROTOCOL_FILE = "protocol.json"
RESULTS_FILE = "results.jsonl"
IMAGES_DIR = "images"


def item_id(
    condition: str, alpha: float, prompt_set: str, prompt_index: int, image_index: int, seed: int
) -> str:
    """Deterministic id: first 16 hex of sha256 over the item's defining fields."""
    key = f"{condition}|{float(alpha)!r}|{prompt_set}|{prompt_index}|{image_index}|{seed}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


#: what a usable item record holds (summaries, FID and the report read these fields)
_ROLES = ("safety", "utility")


def record_problem(record: Any) -> str | None:
    """Why an item record cannot be used (None when it can): a field missing or mistyped."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"

    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    def integer(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    checks = {
        "id": lambda x: isinstance(x, str) and bool(x),
        "condition": lambda x: isinstance(x, str),
        "alpha": number,
        "role": lambda x: x in _ROLES,
        "prompt_set": lambda x: isinstance(x, str),
        "prompt_index": integer,
        "image_index": integer,
        "flagged": lambda x: isinstance(x, bool),
        "files": lambda x: isinstance(x, list) and bool(x) and all(isinstance(f, str) for f in x),
    }
    for key, ok in checks.items():
        if key not in record:
            return f"no {key!r}"
        if not ok(record[key]):
            return f"{key!r} is {record[key]!r}"
    verdicts = record.get("verdicts", {})
    if not isinstance(verdicts, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("flagged"), bool) for v in verdicts.values()
    ):
        return f"'verdicts' is {verdicts!r}"
    clip = record.get("clip_score")
    if clip is not None and not number(clip):
        return f"'clip_score' is {clip!r}"
    if not isinstance(record.get("categories") or [], list | tuple):
        return f"'categories' is {record['categories']!r}"
    if not isinstance(record.get("steering") or {}, dict):  # per-item gate records
        return f"'steering' is {record['steering']!r}"
    return None


def encode_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class ResultsStore:
    """The folder of one evaluation run."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.protocol_path = self.run_dir / PROTOCOL_FILE
        self.results_path = self.run_dir / RESULTS_FILE
        self.images_dir = self.run_dir / IMAGES_DIR
        self._warned: list[str] = []

    def open(self, protocol: ProtocolRecord) -> None:
        """Create the run, or check that ``protocol`` matches the one already there."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.protocol_path.exists():
            old = ProtocolRecord.load(self.protocol_path)
            if old.fingerprint() != protocol.fingerprint():
                new_d, old_d = (resolve_record_paths(p.to_dict()) for p in (protocol, old))
                diff = sorted(
                    k
                    for k, v in new_d.items()
                    if k not in ("environment", "created") and old_d.get(k) != v
                )
                raise InputError(
                    f"{self.run_dir} holds a run with a different protocol (differs in {diff})",
                    hint="rerun with the same settings to resume, or choose a new --out folder",
                )
        else:
            write_bytes_atomic(
                self.protocol_path,
                (json.dumps(protocol.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
            )
        self._drop_torn_tail()
        self._remove_stale_temps()

    def _remove_stale_temps(self) -> None:
        # temp files of atomic writes a kill interrupted (images, protocol.json, summary.json…);
        # nothing references them, and the runner's lock says no one else writes this run
        stale = list(self.run_dir.glob(".*.tmp"))
        if self.images_dir.is_dir():
            stale += self.images_dir.rglob(".*.tmp")
        for tmp in stale:
            if tmp.is_file():
                tmp.unlink(missing_ok=True)

    def protocol(self) -> ProtocolRecord:
        if not self.protocol_path.exists():
            raise InputError(
                f"{self.run_dir} is not an evaluation run (no {PROTOCOL_FILE})",
                hint="pass the --out folder of `safesteer evaluate`",
            )
        return ProtocolRecord.load(self.protocol_path)

    def _drop_torn_tail(self) -> None:
        # A kill mid-append leaves a partial last line; cut it so the next append starts clean.
        if not self.results_path.exists():
            return
        data = self.results_path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with open(self.results_path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete, usable record, in order.

        A torn last line (a kill mid-append) is skipped silently; a damaged line elsewhere
        (bad bytes, not JSON, a missing or mistyped field, see :func:`record_problem`) is
        skipped with a :class:`SafeSteerWarning` naming its line, and the rest is kept.
        """
        if not self.results_path.exists():
            return
        data = self.results_path.read_bytes()
        lines = data.split(b"\n")[:-1]  # after the last newline: nothing, or a torn tail
        skipped = []
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                skipped.append(f"line {number}: not JSON ({type(exc).__name__})")
                continue
            problem = record_problem(record)
            if problem is not None:
                skipped.append(f"line {number}: {problem}")
                continue
            yield record
        if skipped and skipped != self._warned:  # once per store, not on every read
            self._warned = skipped
            shown = "; ".join(skipped[:10]) + (
                f"; … {len(skipped) - 10} more" if len(skipped) > 10 else ""
            )
            warnings.warn(
                f"{self.results_path}: skipped {len(skipped)} damaged record(s) ({shown}); the "
                "other records are used and a rerun of `safesteer evaluate` redoes the skipped "
                "items",
                SafeSteerWarning,
                stacklevel=2,
            )

    def completed(self) -> dict[str, dict[str, Any]]:
        """Finished items by id; the first record of an id wins (later duplicates are ignored)."""
        done: dict[str, dict[str, Any]] = {}
        for r in self.records():
            done.setdefault(str(r["id"]), r)
        return done

    def write_image(self, relpath: str, image: Image.Image) -> Path:
        """Write an image atomically under ``images/``; returns its path."""
        path = self.images_dir / relpath
        write_bytes_atomic(path, encode_png(image))
        return path

    def write_image_bytes(self, relpath: str, data: bytes) -> Path:
        path = self.images_dir / relpath
        write_bytes_atomic(path, data)
        return path

    def append(self, record: Mapping[str, Any]) -> None:
        """Record a finished item (call only after its files are written)."""
        line = json.dumps(dict(record), sort_keys=True) + "\n"
        with open(self.results_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def write_json(self, name: str, obj: Any) -> Path:
        """Write a side file (e.g. ``fid.json``) atomically in the run folder."""
        path = self.run_dir / name
        write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
        return path

    def read_json(self, name: str) -> Any:
        """A side file's content; None (with a warning when damaged) when it cannot be read."""
        path = self.run_dir / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            warnings.warn(
                f"{path} is damaged ({type(exc).__name__}); ignored (a rerun rewrites it)",
                SafeSteerWarning,
                stacklevel=2,
            )
            return None
