"""safesteer's logger, progress bars, and quieter third-party warnings.

- ``logging.getLogger("safesteer")`` (and its children, ``safesteer.<module>``) carries what
  the library says while it works; the CLI sets its level with ``--verbose`` / ``--quiet``
  (:func:`configure`). As a library, safesteer adds no handler: the application decides.
- :func:`progress` wraps long loops (pooling target states, building, evaluating) in a ``tqdm``
  bar on stderr; bars are off when the safesteer logger is quieter than INFO (``--quiet``) or
  ``SAFESTEER_PROGRESS=0``.
- :func:`quiet_truncation_warnings`: diffusers warns on every prompt longer than the text
  encoder's limit **and prints the cut text** — hundreds of lines with the 16-token tiny
  pipelines, and unsafe prompt text with real ones. It is replaced by one count-only line.

Example:
    >>> list(progress(range(3), desc="demo", enabled=False))
    [0, 1, 2]
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sized
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger("safesteer")
_TRUNCATION = "The following part of your input was truncated"
#: loggers whose chatter is lowered to ERROR unless --verbose
_NOISY = ("transformers", "diffusers", "huggingface_hub", "accelerate", "ray")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (so redirections are honoured)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it; ignore
        pass


def configure(verbosity: int = 0) -> None:
    """Log to stderr for the CLI: ``-1`` quiet (warnings only, no bars), ``0`` info, ``1+`` debug
    (and third-party libraries' own info)."""
    level = logging.WARNING if verbosity < 0 else (logging.DEBUG if verbosity > 0 else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbosity > 0 else logging.ERROR)
    for name in ("transformers", "diffusers"):
        try:
            module = __import__(f"{name}.utils.logging", fromlist=["set_verbosity"])
            module.set_verbosity(logging.INFO if verbosity > 0 else logging.ERROR)
        except ImportError:  # pragma: no cover - both are dependencies
            pass
    quiet_truncation_warnings()


def progress_enabled() -> bool:
    """Bars are shown unless ``SAFESTEER_PROGRESS=0`` or the safesteer logger is above INFO."""
    if os.environ.get("SAFESTEER_PROGRESS", "1").strip() in ("0", "false", "no"):
        return False
    return logger.getEffectiveLevel() <= logging.INFO


def progress(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    enabled: bool | None = None,
    min_total: int = 2,
) -> Iterator[T]:
    """``tqdm`` over ``iterable`` when progress is enabled and there are at least
    ``min_total`` steps; the plain iterable otherwise."""
    n = total
    if n is None and isinstance(iterable, Sized):
        n = len(iterable)
    on = progress_enabled() if enabled is None else enabled
    if not on or (n is not None and n < min_total):
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, desc=desc, total=n, unit=unit, dynamic_ncols=True, leave=False)


class _TruncationFilter(logging.Filter):
    """Drops diffusers' truncation warnings (they print the cut prompt text) and counts them."""

    def __init__(self) -> None:
        super().__init__("safesteer-truncation")
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(_TRUNCATION):
            return True
        self.count += 1
        if self.count == 1:
            logger.info(
                "a prompt was longer than the text encoder's limit and was cut (diffusers' "
                "warning, which prints the cut text, is silenced; later cuts are not reported)"
            )
        return False


_FILTER = _TruncationFilter()


def quiet_truncation_warnings() -> None:
    """Install :class:`_TruncationFilter` on diffusers' handlers (idempotent)."""
    try:
        from diffusers.utils import logging as dlog
    except ImportError:  # pragma: no cover
        return
    root: Any = dlog._get_library_root_logger()
    for handler in root.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
