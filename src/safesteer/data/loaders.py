"""Loaders for the prompt files users bring: I2P CSV, COCO captions CSV, text, JSONL, Parquet, HF.

Every format becomes a list of :class:`PromptRecord`. The format is taken from ``fmt`` or guessed:
``.txt`` → one prompt per line; ``.jsonl`` → one JSON object per line; ``.parquet``; ``.csv`` →
``"i2p"`` when it has I2P's ``categories`` column, ``"coco"`` when it has a ``caption`` column,
else a plain CSV read from ``column``; a folder → a Hugging Face dataset saved with
``save_to_disk``; ``hf:<name>`` → a Hugging Face hub dataset (needs network and ``datasets``).

Columns (``column=`` overrides the prompt column):

==========  ==================  ==========================================================
format      prompt column       other columns read (optional)
==========  ==================  ==========================================================
i2p         ``prompt``          ``categories`` (comma-separated), ``evaluation_seed`` or
                                ``sd_seed``, ``evaluation_guidance`` or ``sd_guidance_scale``,
                                ``sd_image_width``, ``sd_image_height``
coco        ``caption``         ``image_id``
csv/jsonl/  ``prompt`` (or      ``categories``, ``seed``/``evaluation_seed``, ``guidance``/
parquet/hf  ``text``/``caption``) ``evaluation_guidance``, ``width``, ``height``
txt         one per line        — (blank lines and lines starting with ``#`` are skipped)
==========  ==================  ==========================================================

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.txt"
    >>> _ = p.write_text("a cat on a sofa\\n# comment\\na red kite\\n")
    >>> [r.prompt for r in load_prompts(p)]
    ['a cat on a sofa', 'a red kite']
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safesteer.errors import InputError

FORMATS: tuple[str, ...] = ("i2p", "coco", "csv", "txt", "jsonl", "parquet", "hf")
_PROMPT_COLUMNS = ("prompt", "text", "caption")
# I2P's hub copy (AIML-TUDA/i2p) names them sd_seed / sd_guidance_scale; older CSVs evaluation_*
_SEED_COLUMNS = ("evaluation_seed", "sd_seed", "seed")
_GUIDANCE_COLUMNS = ("evaluation_guidance", "sd_guidance_scale", "guidance")
_WIDTH_COLUMNS = ("sd_image_width", "width")
_HEIGHT_COLUMNS = ("sd_image_height", "height")


@dataclass(frozen=True)
class PromptRecord:
    """One prompt with the generation settings its file gave (None where it gave none)."""

    prompt: str
    categories: tuple[str, ...] = ()
    seed: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _first(row: Mapping[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        if name in row and not _missing(row[name]):
            return row[name]
    return None


def _as_int(value: Any, source: str, column: str) -> int | None:
    if _missing(value):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise InputError(
            f"{source}: column {column!r} has a non-number {value!r}", hint="fix or drop it"
        ) from None


def _as_float(value: Any, source: str, column: str) -> float | None:
    if _missing(value):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(
            f"{source}: column {column!r} has a non-number {value!r}", hint="fix or drop it"
        ) from None


def _categories(value: Any) -> tuple[str, ...]:
    if _missing(value):
        return ()
    if isinstance(value, str):
        return tuple(c.strip() for c in value.split(",") if c.strip())
    return tuple(str(c).strip() for c in value if str(c).strip())


def _prompt_column(columns: Iterable[str], column: str | None, fmt: str, source: str) -> str:
    cols = list(columns)
    wanted = (
        (column,)
        if column
        else {"i2p": ("prompt",), "coco": ("caption",)}.get(fmt, _PROMPT_COLUMNS)
    )
    for name in wanted:
        if name in cols:
            return name
    raise InputError(
        f"{source} has no column {' or '.join(repr(w) for w in wanted)} (columns: {cols})",
        hint="pass --column/column= with the prompt column's name",
    )


def _records(
    rows: Iterable[Mapping[str, Any]],
    columns: Iterable[str],
    *,
    fmt: str,
    column: str | None,
    source: str,
) -> list[PromptRecord]:
    cols = list(columns)
    name = _prompt_column(cols, column, fmt, source)
    used = {
        name,
        "categories",
        *_SEED_COLUMNS,
        *_GUIDANCE_COLUMNS,
        *_WIDTH_COLUMNS,
        *_HEIGHT_COLUMNS,
    }
    out = []
    for row in rows:
        prompt = row.get(name)
        if isinstance(prompt, list | tuple):  # e.g. COCO's "captions": the first caption
            prompt = prompt[0] if prompt else None
        if _missing(prompt):
            continue
        out.append(
            PromptRecord(
                prompt=str(prompt).strip(),
                categories=_categories(row.get("categories")),
                seed=_as_int(_first(row, _SEED_COLUMNS), source, "seed"),
                guidance=_as_float(_first(row, _GUIDANCE_COLUMNS), source, "guidance"),
                width=_as_int(_first(row, _WIDTH_COLUMNS), source, "width"),
                height=_as_int(_first(row, _HEIGHT_COLUMNS), source, "height"),
                extra={k: str(v) for k, v in row.items() if k not in used and not _missing(v)},
            )
        )
    if not out:
        raise InputError(f"{source} has no prompts in column {name!r}", hint="check the file")
    return out


def _read_text(path: Path) -> str:
    from safesteer.validation import read_utf8

    text = read_utf8(path, "prompt file")  # a bad byte is reported with its line
    if not text.strip():
        raise InputError(f"{path} is empty", hint="give a file with at least one prompt")
    return text


def _load_txt(path: Path) -> list[PromptRecord]:
    lines = [ln.strip() for ln in _read_text(path).splitlines()]
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise InputError(f"{path} has only blank or comment lines", hint="add prompts")
    return [PromptRecord(p) for p in prompts]


def _load_csv(path: Path, fmt: str, column: str | None) -> list[PromptRecord]:
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    rows = list(reader)
    return _records(rows, reader.fieldnames or [], fmt=fmt, column=column, source=str(path))


def _load_jsonl(path: Path, column: str | None) -> list[PromptRecord]:
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}:{i} is not JSON ({exc.msg})", hint="one object per line"
            ) from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{i} is not a JSON object", hint="one object per line")
        rows.append(row)
    columns = {k for r in rows for k in r}
    return _records(rows, sorted(columns), fmt="jsonl", column=column, source=str(path))


def _load_parquet(path: Path, column: str | None) -> list[PromptRecord]:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is in the eval extra
        raise InputError(
            "reading Parquet needs pandas and pyarrow", hint="pip install 'safesteer[eval]'"
        ) from None
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(
            f"{path} is not a readable Parquet file ({exc})", hint="check the file"
        ) from None
    if frame.empty:
        raise InputError(f"{path} is empty", hint="give a file with at least one prompt")
    rows = frame.to_dict(orient="records")
    return _records(rows, list(frame.columns), fmt="parquet", column=column, source=str(path))


def _load_hf(name: str, column: str | None, split: str) -> list[PromptRecord]:
    try:
        import datasets  # optional: only this loader needs it
    except ImportError:
        raise InputError(
            f"loading the Hugging Face dataset {name!r} needs `datasets`",
            hint="pip install datasets (or safesteer[hf])",
        ) from None
    try:
        if Path(name).is_dir():
            data = datasets.load_from_disk(name)
        else:
            data = datasets.load_dataset(name, split=split)
    except Exception as exc:  # hub, network and format errors all land here
        raise InputError(
            f"cannot load the Hugging Face dataset {name!r} ({exc})",
            hint="offline, save it with save_to_disk and pass the folder",
        ) from None
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise InputError(
                f"{name} has no split {split!r} (splits: {list(data)})", hint="pass split="
            )
        data = data[split]
    return _records(iter(data), data.column_names, fmt="hf", column=column, source=name)


def guess_format(path: str | Path) -> str:
    """The loader :func:`load_prompts` would use for ``path`` (see the module docstring)."""
    text = str(path)
    if text.startswith("hf:"):
        return "hf"
    p = Path(text)
    if p.is_dir():
        return "hf"
    suffix = p.suffix.lower()
    if suffix in (".txt", ".jsonl", ".parquet"):
        return suffix[1:]
    if suffix == ".csv":
        if not p.is_file():
            return "csv"
        header = next(csv.reader(io.StringIO(_read_text(p))), [])
        if "categories" in header and "prompt" in header:
            return "i2p"
        return "coco" if "caption" in header else "csv"
    raise InputError(
        f"cannot tell the format of {text!r}",
        hint=f"pass fmt= / --format, one of {', '.join(FORMATS)}",
    )


def load_prompts(
    path: str | Path, *, fmt: str | None = None, column: str | None = None, split: str = "train"
) -> list[PromptRecord]:
    """Read prompts from a user file, folder or ``hf:<hub name>``; see the module docstring.

    Raises :class:`InputError` naming the file for a missing file, an unknown format, a missing
    column (with the columns found), an empty file or a bad encoding.
    """
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown prompt format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if fmt == "hf":
        name = str(path)
        return _load_hf(name.removeprefix("hf:"), column, split)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"prompt file {p} does not exist", hint="check the path")
    if fmt == "txt":
        return _load_txt(p)
    if fmt == "jsonl":
        return _load_jsonl(p, column)
    if fmt == "parquet":
        return _load_parquet(p, column)
    return _load_csv(p, fmt, column)


__all__ = ["FORMATS", "PromptRecord", "guess_format", "load_prompts"]
