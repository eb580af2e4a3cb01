"""The ``racefree`` command: parses arguments, calls the library, prints.

Every subcommand is a thin function over the public API. A ``RacefreeError``
becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
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
    demo.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="run the agents as separate processes sharing this store "
        "(sqlite:///demo.db, redis://host:port/0)",
    )
    demo.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="with --store: how many agent processes, 2 to 16 (default 4)",
    )
    demo.set_defaults(run=_demo)

    check = sub.add_parser(
        "check",
        help="find races in a recorded history (JSON lines) and explain them",
        description=(
            "Check a history for lost updates, lost or duplicated appends, order anomalies, "
            "double claims and race windows. Exit status: 0 when no error was found "
            "(warnings alone give 0, or 1 with --strict), 1 when there are errors, "
            "2 when the file cannot be read."
        ),
    )
    check.add_argument("history", metavar="HISTORY", help="a JSON-lines history file")
    check.add_argument(
        "--final-state",
        metavar="FILE",
        default=None,
        help="the shared state after the run, as JSON: also check lost and duplicated appends",
    )
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=_check)
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
    if args.store is not None or args.processes is not None:
        return _demo_processes(args, scale)
    run = run_demo(agent_names(args.agents), seed=args.seed, time_scale=scale)
    if args.json:
        print_json(run.to_json())
    else:
        show_demo(Printer(), run)
    return 0


def _demo_processes(args: argparse.Namespace, scale: float) -> int:
    from racefree.report.terminal import Printer
    from racefree.scenarios.demo import run_process_demo
    from racefree.scenarios.llm import agent_names
    from racefree.scenarios.script import print_json

    if args.store is None:
        raise UsageError(
            "--processes needs --store: the processes share state through it. Add "
            "--store sqlite:///demo.db (one machine) or --store redis://host:port/0."
        )
    count = 4 if args.processes is None else args.processes
    if not 2 <= count <= 16:
        raise UsageError(f"--processes must be between 2 and 16, not {count}.")
    run = run_process_demo(agent_names(count), args.store, seed=args.seed, time_scale=scale)
    if args.json:
        print_json(run.to_json())
    else:
        printer = Printer()
        for text, style in run.lines():
            printer.line(text, style)
    return 0


def _check(args: argparse.Namespace) -> int:
    import json

    from racefree.check import check
    from racefree.errors import HistoryFormatError
    from racefree.history import History
    from racefree.scenarios.script import print_json

    try:
        history = History.from_jsonl(args.history)
        final_state = None
        if args.final_state is not None:
            with open(args.final_state, encoding="utf-8") as source:
                final_state = json.load(source)
    except OSError as exc:
        raise UsageError(f"Cannot read {exc.filename}: {exc.strerror}. Check the path.") from None
    except json.JSONDecodeError as exc:
        raise HistoryFormatError(
            f"{args.final_state}, line {exc.lineno}: {exc.msg}. The final state must be one "
            "JSON value (an object of key -> value)."
        ) from None
    report = check(history, final_state=final_state)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.text())
    if report.errors or (args.strict and report.warnings):
        return 1
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
    except BrokenPipeError:
        # The reader went away (`racefree ... | head`): stop quietly, as Unix tools do,
        # and point stdout at devnull so the interpreter's final flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
