"""`ambient-imaging` commands of this group (being written)."""

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register this group's sub-commands."""
