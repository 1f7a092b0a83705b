"""Command-line entry point: ``safesteer <command> ...``.

A thin shell over the library. Each sub-command lives in its own module under
:mod:`safesteer.commands` and defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; this module discovers them. User mistakes (:class:`SafeSteerError`) are
printed as ``error: ...`` with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from safesteer import __version__, commands
from safesteer.errors import SafeSteerError


def _command_modules() -> list[ModuleType]:
    found = pkgutil.iter_modules(commands.__path__)
    names = sorted(m.name for m in found if not m.name.startswith("_"))
    return [importlib.import_module(f"safesteer.commands.{n}") for n in names]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every discovered sub-command."""
    parser = argparse.ArgumentParser(
        prog="safesteer",
        description="Cross-model safety steering for image and video generators.",
    )
    parser.add_argument("--version", action="version", version=f"safesteer {__version__}")
    _add_verbosity(parser, argparse.SUPPRESS)
    common = argparse.ArgumentParser(add_help=False)
    _add_verbosity(common, argparse.SUPPRESS)  # also accepted after the command
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, parents=[common])
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="more detail on stderr (the safesteer logger at DEBUG, and the libraries' info)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="warnings and errors only, no progress bars",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    from safesteer.logs import configure

    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    configure(-1 if getattr(args, "quiet", False) else int(getattr(args, "verbose", 0) or 0))
    try:
        return int(args._run(args))
    except SafeSteerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
