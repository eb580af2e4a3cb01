"""The ``racefree`` command: parses arguments, calls the library, prints.

Every subcommand is a thin function over the public API. A ``RacefreeError``
becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from racefree import __version__
from racefree.errors import RacefreeError

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="racefree",
        description="See, fix and find race conditions in multi-agent systems.",
    )
    parser.add_argument("--version", action="version", version=f"racefree {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except RacefreeError as exc:
        print(f"racefree: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
