"""The ``racefree`` command: parses arguments, calls the library, prints.

Every subcommand is a thin function over the public API. A ``RacefreeError``
becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from racefree import __version__
from racefree.errors import RacefreeError, UsageError

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="racefree",
        description="See, fix and find race conditions in multi-agent systems.",
    )
    parser.add_argument("--version", action="version", version=f"racefree {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="lesson 01 in one go: lost updates, the fix, forced races, a summary",
        description="Run lesson 01's scenarios with real threads and print a summary table.",
    )
    demo.add_argument("--agents", type=int, default=3, metavar="N", help="2 to 50 (default 3)")
    demo.add_argument("--seed", type=int, default=None, metavar="S", help="seed for latencies")
    demo.add_argument(
        "--time-scale",
        type=float,
        default=None,
        metavar="F",
        help="multiply the 1-3 s model latencies by F (default 0.25)",
    )
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.set_defaults(run=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from racefree.report.terminal import Printer, show_demo
    from racefree.scenarios.demo import DEMO_TIME_SCALE, run_demo
    from racefree.scenarios.llm import agent_names
    from racefree.scenarios.script import print_json

    if not 2 <= args.agents <= 50:
        raise UsageError(f"--agents must be between 2 and 50, not {args.agents}.")
    scale = DEMO_TIME_SCALE if args.time_scale is None else args.time_scale
    if not 0 < scale <= 10:
        raise UsageError(f"--time-scale must be above 0 and at most 10, not {scale}.")
    run = run_demo(agent_names(args.agents), seed=args.seed, time_scale=scale)
    if args.json:
        print_json(run.to_json())
    else:
        show_demo(Printer(), run)
    return 0


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
