"""``--config file.toml`` for a command: every option of the command, the command line wins.

Keys are the options' long names (``utility-prompts`` or ``utility_prompts``); values have the
TOML type the option takes (a list for repeatable / multi-value options, a boolean for flags).
Each value goes through the option's own type and choices; an unknown key, a wrong type or a
value outside the choices is refused before any work starts, naming the key and the fix.

Example (``eval.toml``)::

    pipeline = "black-forest-labs/FLUX.1-schnell"
    out = "runs/flux"
    pack = ["flux.safesteer.safetensors"]
    mode = ["always", "gated"]
    protocol = "paper"
    prompts = "i2p.csv"
    utility-prompts = "coco.txt"
    alphas = [0, 3, 5]
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safesteer.errors import InputError

#: options that configure the run itself, not read from a file
_NOT_IN_FILE = {"help", "config", "verbose", "quiet"}


def _options(add_arguments: Callable[[argparse.ArgumentParser], None]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return {a.dest: a for a in parser._actions if a.dest not in _NOT_IN_FILE}


def _convert(key: str, action: Any, value: Any, path: Path) -> Any:
    def bad(why: str) -> InputError:
        name = "--" + action.dest.replace("_", "-")
        return InputError(f"{path}: {key} = {value!r} {why}", hint=f"see `{name}` in --help")

    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise bad("must be true or false")
        return value
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*")
    items = value if isinstance(value, list) else [value]
    if not many and isinstance(value, list):
        raise bad("takes one value, not a list")
    out = []
    for item in items:
        if isinstance(item, dict | list):
            raise bad("must be a plain value (string or number)")
        if isinstance(item, bool):
            raise bad("must be a string or number, not a boolean")
        try:
            converted = action.type(item) if action.type is not None else str(item)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:  # validation types
            raise bad(f"is not a valid value ({exc})") from exc
        if action.choices is not None and converted not in action.choices:
            raise bad(f"is not one of {sorted(action.choices)}")
        out.append(converted)
    return out if many else out[0]


def read_config(
    path: str | Path, add_arguments: Callable[[argparse.ArgumentParser], None]
) -> dict[str, Any]:
    """The TOML file's options as argparse values (by ``dest``), checked."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}", hint="check the line named") from exc
    options = _options(add_arguments)
    values: dict[str, Any] = {}
    unknown = []
    for key, value in raw.items():
        dest = key.replace("-", "_")
        if dest not in options:
            unknown.append(key)
            continue
        values[dest] = _convert(key, options[dest], value, path)
    if unknown:
        allowed = ", ".join(sorted(k.replace("_", "-") for k in options))
        raise InputError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}",
            hint=f"use the command's long option names: {allowed}",
        )
    return values


def merge_config(
    args: argparse.Namespace,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    defaults: dict[str, Any],
) -> argparse.Namespace:
    """``args`` with ``args.config``'s values where the command line gave none, then
    ``defaults`` for what neither gave. Options left None on the command line count as
    not given (the command declares its defaults here, not in argparse)."""
    merged = dict(vars(args))
    if getattr(args, "config", None):
        for dest, value in read_config(args.config, add_arguments).items():
            if merged.get(dest) is None:
                merged[dest] = value
    for dest, value in defaults.items():
        if merged.get(dest) is None:
            merged[dest] = value
    return argparse.Namespace(**merged)
