"""A resumable results store: atomic image files plus an append-only JSONL of finished items.

Layout of a run folder::

    protocol.json      the ProtocolRecord (a rerun with another fingerprint is refused)
    results.jsonl      one JSON line per finished item, appended and fsync'ed
    images/...         image files, each written to a temp file then os.replace'd

An item is recorded only after its files are whole, so killing the process at any moment
loses at most the item in flight; a torn last line and stale temp files are dropped when the
store is reopened (only one evaluation may write a run at a time: the runner holds a lock).
Items are keyed by a deterministic id (:func:`item_id`), so a rerun skips what is done.

Example:
    >>> store = ResultsStore("runs/demo")  # doctest: +SKIP
    >>> store.open(protocol)  # doctest: +SKIP
    >>> done = store.completed()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from safesteer.atomic import write_bytes_atomic
from safesteer.errors import InputError
from safesteer.evaluation.protocol import ProtocolRecord

PROTOCOL_FILE = "protocol.json"
RESULTS_FILE = "results.jsonl"
IMAGES_DIR = "images"


def item_id(
    condition: str, alpha: float, prompt_set: str, prompt_index: int, image_index: int, seed: int
) -> str:
    """Deterministic id: first 16 hex of sha256 over the item's defining fields."""
    key = f"{condition}|{float(alpha)!r}|{prompt_set}|{prompt_index}|{image_index}|{seed}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


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

    def open(self, protocol: ProtocolRecord) -> None:
        """Create the run, or check that ``protocol`` matches the one already there."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.protocol_path.exists():
            old = ProtocolRecord.load(self.protocol_path)
            if old.fingerprint() != protocol.fingerprint():
                diff = sorted(
                    k
                    for k, v in protocol.to_dict().items()
                    if k not in ("environment", "created") and old.to_dict().get(k) != v
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
        # temp files of writes that a kill interrupted; no item references them
        if self.images_dir.exists():
            for tmp in self.images_dir.rglob(".*.tmp"):
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
        """Every complete record, in order (a torn or corrupt line is skipped)."""
        if not self.results_path.exists():
            return
        with open(self.results_path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue

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
        path = self.run_dir / name
        return json.loads(path.read_text()) if path.exists() else None
