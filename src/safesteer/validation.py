"""Checks of user inputs, done before any model loads: one place for every command (core).

Each check exists in two forms:

* a **value check** (``check_*``, ``read_utf8``, ``refuse``) raising :class:`InputError`
  (``<what> (fix: <how>)``), for library code and for checks that read several options;
* an **argparse type** (the names in :data:`ARG_TYPES`): a callable of one string, raising
  ``argparse.ArgumentTypeError``, so argparse names the option (``error: argument --alpha:
  ...``) and exits with status 2 before the command runs.

Which type an option takes (new options: pick from this table, do not write a new parser):

======================================  ===================================================
option                                   ``type=`` (``from safesteer import validation as v``)
======================================  ===================================================
strength α (``--alpha``, ``--alphas``)   ``v.alpha`` (finite, ``|α| ≤ 1e3``); lists:
                                         ``nargs="+", action=v.Distinct``
a count ≥ 1 (steps, limit, frames,       ``v.positive_int``
threads, workers, max pairs, batch size)
a count ≥ 0 (images, layer)              ``v.non_negative_int``
folds and other "at least n"             ``v.int_at_least(2)``
seed                                     ``v.seed`` (0 … 2⁶³−1)
any finite float / ≥ 0 / > 0             ``v.finite_float`` / ``v.non_negative_float`` /
                                         ``v.positive_float``
threshold, probability in [0, 1]         ``v.probability``
rate in (0, 1)                           ``v.open_fraction``
image size ``N`` or ``WxH``              ``v.size`` (family multiples: ``targets.sizes``)
device                                   ``v.device`` (auto, cpu, cuda[:N], mps; present here)
dtype                                    ``v.dtype`` (float32, float16, bfloat16, …)
a file to read / a folder to read        ``v.input_file`` (``v.text_file``: also UTF-8) /
                                         ``v.input_dir``
a prompt file (txt/csv/jsonl/parquet…)   ``v.prompt_file``
pairs / anchors spec (``--pairs``,       ``sources.pairs_spec`` / ``sources.anchors_spec``
``--anchors``: named set, file, hf:)     (in ``safesteer.data.sources``: it knows the names)
a file to write / a folder to write      ``v.output_file`` / ``v.output_dir``
comma-separated names                    ``v.name_list``
Ray address                              ``v.ray_address``
======================================  ===================================================

Rules between options (``--gated`` needs ``--pack``…) are checked at the top of the command's
``run`` with :func:`refuse`, before anything is loaded.

Example:
    >>> alpha("3")
    3.0
    >>> alpha("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: nan is not a finite number (fix: give a number such as 3)
    >>> check_positive_int(0, "--steps")
    Traceback (most recent call last):
    ...
    safesteer.errors.InputError: --steps is 0 (fix: use 1 or more)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from safesteer.errors import InputError, SafeSteerError

__all__ = [
    "ARG_TYPES",
    "MAX_ABS_ALPHA",
    "Distinct",
    "alpha",
    "arg_type",
    "check_device",
    "check_distinct",
    "check_dtype",
    "check_finite",
    "check_input_dir",
    "check_input_file",
    "check_output_dir",
    "check_output_file",
    "check_positive_int",
    "device",
    "dtype",
    "finite_float",
    "input_dir",
    "input_file",
    "int_at_least",
    "name_list",
    "non_negative_float",
    "non_negative_int",
    "open_fraction",
    "output_dir",
    "output_file",
    "positive_float",
    "positive_int",
    "probability",
    "prompt_file",
    "ray_address",
    "read_utf8",
    "refuse",
    "seed",
    "size",
    "text_file",
]

T = TypeVar("T")

#: the largest strength accepted: steering adds α·v to states of norm ~‖v‖/β, so |α| beyond
#: this only produces saturated noise (1e30 made black images scored "safe").
MAX_ABS_ALPHA = 1e3
MAX_SEED = 2**63 - 1
#: prompt files read as text (others — parquet, folders, ``hf:`` — are checked by their reader)
TEXT_SUFFIXES = (".txt", ".csv", ".jsonl", ".json", ".tsv")


def refuse(what: str, fix: str) -> None:
    """Raise :class:`InputError` ``what (fix: fix)``: the one way a rule between options fails."""
    raise InputError(what, hint=fix)


# ---- numbers ------------------------------------------------------------------------------
def _number(text: str | float, cast: Callable[[Any], T], kind: str, example: str) -> T:
    try:
        return cast(str(text))  # as text: a config file's 2.5 is not the integer 2
    except (TypeError, ValueError):
        raise InputError(f"{text!r} is not {kind}", hint=f"give {kind} such as {example}") from None


def _span(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '≥'} {low:g}"
    return f"{'<' if high_open else '≤'} {high:g}"


def _outside(
    x: float, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> bool:
    too_low = low is not None and (x <= low if low_open else x < low)
    too_high = high is not None and (x >= high if high_open else x > high)
    return too_low or too_high


def check_finite(
    value: float,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is finite and within ``[low, high]`` (open ends optional)."""
    x = float(value)
    if not math.isfinite(x):
        raise InputError(f"{name} is {x}, not a finite number", hint="give a number such as 3")
    if _outside(x, low, high, low_open, high_open):
        span = _span(low, high, low_open, high_open)
        raise InputError(f"{name} is {x:g}, not {span}", hint=f"use a value {span}")
    return x


def check_positive_int(value: int, name: str, minimum: int = 1) -> int:
    """``value`` if it is an int ≥ ``minimum`` (default 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} is {value}", hint=f"use {minimum} or more")
    return value


def check_distinct(values: Sequence[T], name: str) -> list[T]:
    """``values`` if no two are equal; numbers compare as floats (3 and 3.0 are the same α)."""
    seen: dict[object, object] = {}
    for value in values:
        key = float(value) + 0.0 if isinstance(value, int | float) else value  # -0.0 → 0.0
        if key in seen:
            first = seen[key]
            same = "" if repr(first) == repr(value) else f" ({first!r} and {value!r} are equal)"
            shown = f"{key:g}" if isinstance(key, float) else str(key)
            raise InputError(f"{name} lists {shown} twice{same}", hint="list each value once")
        seen[key] = value
    return list(values)


def _float_type(
    name: str,
    example: str = "3",
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        x = _number(text, float, "a number", example)
        if not math.isfinite(x):
            raise InputError(
                f"{text} is not a finite number", hint=f"give a number such as {example}"
            )
        if _outside(x, low, high, low_open, high_open):
            span = _span(low, high, low_open, high_open)
            raise InputError(f"{text} is not {span}", hint=f"use a value {span}")
        return x

    parse.__name__ = name
    return parse


def _int_type(name: str, minimum: int | None, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        n = _number(text, int, "an integer", "1" if minimum is None else str(max(minimum, 1)))
        if minimum is not None and n < minimum:
            raise InputError(f"{n} is too small", hint=f"use {minimum} or more")
        if maximum is not None and n > maximum:
            raise InputError(f"{n} is too large", hint=f"use at most {maximum}")
        return n

    parse.__name__ = name
    return parse


# ---- devices and dtypes -------------------------------------------------------------------
def check_device(text: str) -> str:
    """A torch device string that names a device present here (``cpu``, ``cuda:1``, ``mps``),
    or ``auto`` (the loader picks what is present)."""
    import torch

    if text == "auto":
        return text

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {text!r}", hint="use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cpu":
        return str(dev)
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "a CPU-only torch build" if torch.version.cuda is None else "no visible GPU"
            raise InputError(
                f"device {text!r}: no CUDA GPU here ({build})",
                hint="use --device cpu, or run on a machine with a GPU",
            )
        if dev.index is not None and dev.index >= count:
            raise InputError(
                f"device {text!r}: only {count} CUDA GPU(s) here", hint=f"use cuda:0..{count - 1}"
            )
        return str(dev)
    if dev.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise InputError(f"device {text!r}: MPS is not available here", hint="use cpu")
        return str(dev)
    raise InputError(f"device type {dev.type!r} is not supported", hint="use cpu, cuda or mps")


def check_dtype(text: str) -> str:
    """The name of a floating-point torch dtype (``float32``, ``float16``, ``bfloat16``…)."""
    import torch

    value = getattr(torch, text, None) if re.fullmatch(r"[a-z0-9_]+", text) else None
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise InputError(
            f"unknown dtype {text!r}", hint="use float32, float16 or bfloat16 (or float64)"
        )
    return text


# ---- files --------------------------------------------------------------------------------
def _probe_writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried, then removed: root ignores modes)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".safesteer-probe.", suffix=".tmp")
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return True


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_creatable(path: Path, name: str, kind: str) -> None:
    """``path`` does not exist yet: its nearest existing ancestor must be a writable folder."""
    base = _nearest_existing(path.parent if kind == "file" else path)
    if not base.is_dir():
        raise InputError(
            f"{name} {path} is under {base}, which is a file, not a folder",
            hint=f"choose a {kind} path whose parent folders are folders",
        )
    if not _probe_writable(base):
        raise InputError(
            f"{name} {path}: cannot write in {base} (permission denied or read-only)",
            hint=f"choose a {kind} path somewhere you can write to",
        )


def check_output_dir(path: str | Path, name: str = "--out") -> Path:
    """A folder that exists and is writable, or can be created; never an existing file."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise InputError(
                f"{name} {p} is a file, not a folder",
                hint=f"pass a folder (e.g. {p.with_suffix('')}-out), or move the file away",
            )
        if not _probe_writable(p):
            raise InputError(
                f"{name} {p}: cannot write in this folder (permission denied or read-only)",
                hint="choose a folder you can write to",
            )
        return p
    _check_creatable(p, name, "folder")
    return p


def check_output_file(path: str | Path, name: str = "--out") -> Path:
    """A file path that can be written atomically: not a folder, in a writable folder."""
    p = Path(path)
    if p.is_dir():
        raise InputError(
            f"{name} {p} is a folder, not a file",
            hint=f"give a file name, e.g. {p / 'pack.safetensors'}",
        )
    if p.parent.exists():
        if not p.parent.is_dir():
            raise InputError(
                f"{name} {p} is under {p.parent}, which is a file, not a folder",
                hint="choose a file path whose parent folders are folders",
            )
        if not _probe_writable(p.parent):
            raise InputError(
                f"{name} {p}: cannot write in {p.parent} (permission denied or read-only)",
                hint="choose a file in a folder you can write to",
            )
        return p
    _check_creatable(p, name, "file")
    return p


def check_input_file(path: str | Path, name: str = "file") -> Path:
    """A regular file that exists and can be read."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{name} {p} does not exist", hint="check the path")
    if p.is_dir():
        raise InputError(f"{name} {p} is a folder, not a file", hint="pass the file inside it")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise InputError(
            f"{name} {p} cannot be read ({exc.strerror})", hint="check its permissions"
        ) from None
    return p


def check_input_dir(path: str | Path, name: str = "folder") -> Path:
    """A folder that exists and can be listed."""
    p = Path(path)
    if not p.is_dir():
        what = "is a file, not a folder" if p.exists() else "does not exist"
        raise InputError(f"{name} {p} {what}", hint="pass an existing folder")
    try:
        next(iter(os.scandir(p)), None)
    except OSError as exc:
        raise InputError(
            f"{name} {p} cannot be read ({exc.strerror})", hint="check its permissions"
        ) from None
    return p


def read_utf8(path: str | Path, name: str = "file") -> str:
    """The text of a UTF-8 file (a BOM is dropped); a bad byte is reported with its line."""
    p = Path(path)
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{name} {p} is not valid UTF-8: line {line} has the byte 0x{data[exc.start]:02x}",
            hint="re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
        ) from None


# ---- argparse types ----------------------------------------------------------------------
def arg_type(check: Callable[[str], T], name: str | None = None) -> Callable[[str], T]:
    """An argparse type from a check that raises :class:`SafeSteerError`."""

    def parse(text: str) -> T:
        try:
            return check(text)
        except SafeSteerError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name or str(getattr(check, "__name__", "value"))
    return parse


def _alpha(text: str) -> float:
    x = _number(text, float, "a number", "3")
    if not math.isfinite(x):
        raise InputError(f"{text} is not a finite number", hint="give a number such as 3")
    if abs(x) > MAX_ABS_ALPHA:
        raise InputError(
            f"strength {x:g} is beyond ±{MAX_ABS_ALPHA:g} (the images would be saturated noise)",
            hint="use strengths like -1, 0, 1, 3, 5, 7",
        )
    return x


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(re.fullmatch(r"\s*\d+\s*", p) for p in parts):
        raise InputError(f"size {text!r} is not N or WxH", hint="e.g. 512 or 768x512")
    w, h = (int(parts[0]), int(parts[-1]))
    if w < 1 or h < 1:
        raise InputError(f"size {text!r} has a zero side", hint="e.g. 512 or 768x512")
    return w, h


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not any(names):
        raise InputError(f"{text!r} names nothing", hint="give names such as violence,sexual")
    if not all(names):
        raise InputError(f"{text!r} has an empty name", hint="e.g. violence,sexual (no ,,)")
    return names


def _ray_address(text: str) -> str:
    if text in ("local", "auto"):
        return text
    m = re.fullmatch(r"(ray://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):(\d+)", text)
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise InputError(
            f"Ray address {text!r} is not HOST:PORT",
            hint="e.g. 10.0.0.5:6379, ray://head:10001, auto, or --ray alone for a local cluster",
        )
    return text


def _prompt_file(text: str) -> str:
    if text.startswith("hf:"):
        return text
    p = Path(text)
    if p.is_dir():  # a saved Hugging Face dataset
        return text
    check_input_file(p, "prompt file")
    if p.suffix.lower() in TEXT_SUFFIXES:
        read_utf8(p, "prompt file")
    return text


def _text_file(text: str) -> Path:
    p = check_input_file(text)
    read_utf8(p)
    return p


alpha = arg_type(_alpha, "alpha")
finite_float = arg_type(_float_type("finite_float"), "finite_float")
non_negative_float = arg_type(_float_type("non_negative_float", low=0.0), "non_negative_float")
positive_float = arg_type(_float_type("positive_float", low=0.0, low_open=True), "positive_float")
probability = arg_type(_float_type("probability", "0.5", low=0.0, high=1.0), "probability")
open_fraction = arg_type(
    _float_type("open_fraction", "0.05", low=0.0, high=1.0, low_open=True, high_open=True),
    "open_fraction",
)
positive_int = arg_type(_int_type("positive_int", 1), "positive_int")
non_negative_int = arg_type(_int_type("non_negative_int", 0), "non_negative_int")
seed = arg_type(_int_type("seed", 0, MAX_SEED), "seed")
size = arg_type(_size, "size")
device = arg_type(check_device, "device")
dtype = arg_type(check_dtype, "dtype")
name_list = arg_type(_names, "name_list")
ray_address = arg_type(_ray_address, "ray_address")
input_file = arg_type(lambda t: check_input_file(t), "input_file")
text_file = arg_type(_text_file, "text_file")
input_dir = arg_type(lambda t: check_input_dir(t), "input_dir")
prompt_file = arg_type(_prompt_file, "prompt_file")
output_file = arg_type(lambda t: check_output_file(t, "path"), "output_file")
output_dir = arg_type(lambda t: check_output_dir(t, "folder"), "output_dir")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type for integers ≥ ``minimum`` (e.g. ``--folds``: 2)."""
    return arg_type(_int_type(f"int_at_least_{minimum}", minimum))


class Distinct(argparse.Action):
    """``nargs="+"`` action refusing repeated values (``--alphas 3 3.0``: the same α twice;
    ``--classifiers q16 q16``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        try:
            check_distinct(list(values), option_string or self.dest)
        except InputError as exc:
            parser.error(str(exc))
        setattr(namespace, self.dest, list(values))


#: every argparse type above, by name (the table in the module docstring)
ARG_TYPES: dict[str, Callable[[str], Any]] = {
    f.__name__: f
    for f in (
        alpha,
        finite_float,
        non_negative_float,
        positive_float,
        probability,
        open_fraction,
        positive_int,
        non_negative_int,
        seed,
        size,
        device,
        dtype,
        name_list,
        ray_address,
        input_file,
        text_file,
        input_dir,
        prompt_file,
        output_file,
        output_dir,
    )
}
