"""The ``ambient-imaging`` command line.

Each command group lives in its own module with an ``add_parser(subparsers)``
function that registers its sub-commands and sets ``func`` on the parsed
namespace. The list below is explicit on purpose (no string registry).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from . import data, quickstart, reconstruct, study, train

__all__ = ["main", "build_parser", "one_line_warnings", "format_warning"]


def format_warning(message: Warning | str) -> str:
    """``warning: <message>`` on one line (whitespace runs, newlines included, become one space)."""
    return "warning: " + " ".join(str(message).split())


#: the standard library's printer; ``catch_warnings(record=True)`` (and ``pytest.warns``) swap it
#: for a recorder, which :func:`one_line_warnings` must then leave alone
_STDLIB_PRINTER = getattr(warnings, "_showwarnmsg_impl", None)


@contextmanager
def one_line_warnings(stream: TextIO | None = None) -> Iterator[None]:
    """Show every warning raised inside as one clean line on ``stream`` (default ``sys.stderr``):
    :func:`format_warning` of its message, never the Python source line or file name.

    Written through ``tqdm.write``, so a running progress bar moves below the line instead of
    breaking it. The warning filters (``-W``, ``PYTHONWARNINGS``, ``simplefilter("error")``) still
    apply, and an active recorder (``catch_warnings(record=True)``, ``pytest.warns``) records as well.
    """
    from tqdm.auto import tqdm

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - stdlib
        if stream is None and getattr(warnings, "_showwarnmsg_impl", None) is not _STDLIB_PRINTER:
            previous(message, category, filename, lineno, file, line)  # a recorder is listening: it records too
        try:
            tqdm.write(format_warning(message), file=stream or file or sys.stderr)
        except (OSError, ValueError):  # a closed or broken stream must never crash a run
            pass

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def build_parser() -> argparse.ArgumentParser:
    from ambient_imaging import __version__

    parser = argparse.ArgumentParser(
        prog="ambient-imaging",
        description="Learn diffusion priors from corrupted measurements only, and reconstruct with them.",
    )
    parser.add_argument("--version", action="version", version=f"ambient-imaging {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (quickstart, data, train, reconstruct, study):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with one_line_warnings():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; re-run the same command to resume where it stopped", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, TypeError) as err:
        # Bad input: one clear line, no traceback (set AMBIENT_DEBUG=1 for one).
        import os

        if os.environ.get("AMBIENT_DEBUG"):
            raise
        from ambient_imaging.limits import error_text

        print(f"ambient-imaging: error: {error_text(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
