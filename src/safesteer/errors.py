"""User-facing errors.

Every error a user can cause (bad file, wrong dimension, missing column…) is a
:class:`SafeSteerError`: its message names the input and says what to do. The CLI prints the
message without a traceback and exits with status 2.

Example:
    >>> raise InputError("prompts.csv has no column 'prompt'", hint="add it or pass --column")
    Traceback (most recent call last):
    ...
    safesteer.errors.InputError: prompts.csv has no column 'prompt' (fix: add it or pass --column)
"""

from __future__ import annotations


class SafeSteerError(Exception):
    """Base class for errors caused by the user's input or environment."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} (fix: {hint})" if hint else message)


class InputError(SafeSteerError, ValueError):
    """A file, argument or data set that cannot be used as given."""


class PackError(SafeSteerError, ValueError):
    """A safety pack that is missing, corrupt, of an unknown version, or does not fit."""


class ModelLoadError(SafeSteerError, RuntimeError):
    """A model that cannot be found or loaded (no hub, missing package, wrong id)."""


class SteeringError(SafeSteerError, RuntimeError):
    """A steered pipeline used in a way that would run it unsteered, or steer it wrongly
    (a denoiser called outside an observed pipeline call, a save that would drop the steering,
    a pipeline that encodes prompts unlike the one the pack was attached to)."""


class SafeSteerWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints
    ``warning: ...``): a damaged results line skipped, fewer anchors than a map needs."""
