"""Options every command that loads a model shares: ``--dtype``, ``--device``, ``--offload``.

Allowed values come from :mod:`safesteer.models.device` (declared once there).
"""

from __future__ import annotations

import argparse

from safesteer import validation as v


def add_model_options(
    parser: argparse.ArgumentParser,
    *,
    offload: bool = True,
    memory_check: bool = False,
    defaults: bool = True,
) -> None:
    """Add ``--dtype`` / ``--device`` (and ``--offload``, ``--skip-memory-check``).

    ``defaults=False`` leaves them None (a command that merges a config file sets them later).
    """
    from safesteer.models.device import (
        DEVICE_HELP,
        DTYPE_HELP,
        DTYPES,
        OFFLOAD_HELP,
        OFFLOADS,
    )

    parser.add_argument(
        "--dtype", choices=list(DTYPES), default="auto" if defaults else None, help=DTYPE_HELP
    )
    parser.add_argument(
        "--device", type=v.device, default="auto" if defaults else None, help=DEVICE_HELP
    )
    if offload:
        parser.add_argument(
            "--offload",
            choices=list(OFFLOADS),
            default="none" if defaults else None,
            help=OFFLOAD_HELP,
        )
    if memory_check:
        parser.add_argument(
            "--skip-memory-check",
            action="store_true",
            help="load even when the memory estimate says the run will not fit",
        )
