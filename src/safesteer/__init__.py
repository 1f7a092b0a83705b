"""safesteer: cross-model safety steering for image and video generators.

Learn a safety direction once in a source LLM, carry it into a generator's text-conditioning
space with a map fitted on benign prompts only, and add it at inference.

Public names are imported lazily so that ``import safesteer`` stays fast and the maths does not
pull in diffusers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from safesteer._version import __version__
from safesteer.errors import InputError, ModelLoadError, PackError, SafeSteerError

# public name -> module that defines it. Each layer adds its own lines (keep sorted in a block).
_EXPORTS: dict[str, str] = {
    # --- maths ---
    # --- pack ---
    # --- data ---
    # --- models ---
    # --- targets ---
    # --- evaluation ---
    # --- jobs ---
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    pass


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'safesteer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "InputError",
    "ModelLoadError",
    "PackError",
    "SafeSteerError",
    "__version__",
    *_EXPORTS,
]
