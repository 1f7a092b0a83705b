"""Command-line entry point: ``safesteer <command> ...``.

A thin shell over the library. Each sub-command lives in its own module under
:mod:`safesteer.commands` and defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; this module discovers them. User mistakes (:class:`SafeSteerError`, bad
option values refused by :mod:`safesteer.validation`, files that cannot be written) are printed
as ``error: <what> (fix: <how>)`` with exit status 2, never as a traceback;
:class:`~safesteer.errors.SafeSteerWarning` s as ``warning: ...``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, NoReturn

from safesteer import __version__, commands
from safesteer.errors import SafeSteerError, SafeSteerWarning

#: file-system errors a user's paths or disk cause (a race after the up-front checks)
_USER_OS_ERRORS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.ENOENT,
    errno.ENAMETOOLONG,
}


class _Parser(argparse.ArgumentParser):
    """argparse with safesteer's error line: ``error: <what> (fix: <how>)``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        fix = "" if "(fix:" in message else f" (fix: see `{self.prog} --help`)"
        self.exit(2, f"error: {message}{fix}\n")


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Print :class:`SafeSteerWarning` as ``warning: ...`` (others keep Python's format)."""
    with warnings.catch_warnings():  # restores the filters and showwarning on exit
        warnings.simplefilter("always", SafeSteerWarning)
        shown = warnings.showwarning

        def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
            if isinstance(category, type) and issubclass(category, SafeSteerWarning):
                print(f"warning: {message}", file=sys.stderr)
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def _command_modules() -> list[ModuleType]:
    found = pkgutil.iter_modules(commands.__path__)
    names = sorted(m.name for m in found if not m.name.startswith("_"))
    return [importlib.import_module(f"safesteer.commands.{n}") for n in names]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every discovered sub-command."""
    parser = _Parser(
        prog="safesteer",
        description="Cross-model safety steering for image and video generators.",
    )
    parser.add_argument("--version", action="version", version=f"safesteer {__version__}")
    _add_verbosity(parser, argparse.SUPPRESS)
    common = _Parser(add_help=False)
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
        with _warnings_as_lines():
            return int(args._run(args))
    except SafeSteerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _USER_OS_ERRORS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(
            f"error: {exc.strerror or exc}{where} (fix: check the path, its permissions and "
            "the free disk space)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
