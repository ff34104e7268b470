"""The ``ambient-imaging`` command line.

Each command group lives in its own module with an ``add_parser(subparsers)``
function that registers its sub-commands and sets ``func`` on the parsed
namespace. The list below is explicit on purpose (no string registry).
"""

from __future__ import annotations

import argparse
import sys

from . import data, quickstart, reconstruct, study, train

__all__ = ["main", "build_parser"]


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
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; re-run the same command to resume where it stopped", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, TypeError) as err:
        # Bad input: one clear line, no traceback (set AMBIENT_DEBUG=1 for one).
        import os

        if os.environ.get("AMBIENT_DEBUG"):
            raise
        print(f"ambient-imaging: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
