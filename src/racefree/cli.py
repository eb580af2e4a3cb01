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
from racefree.errors import RacefreeError, ReplayDivergedError, UsageError

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
    demo.add_argument(
        "--agents",
        type=int,
        default=3,
        metavar="N",
        action=_GivenAgents,
        help="2 to 50 (default 3); with --store, one process per agent: sets the number of "
        "processes (2 to 16) when --processes is absent, and must equal it when both are given",
    )
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
        "--html",
        metavar="FILE",
        default=None,
        help="also write the whole demo as one HTML page (timelines, stories, summary)",
    )
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
        help="with --store: how many agent processes, 2 to 16 (default 4, or --agents N)",
    )
    demo.set_defaults(run=_demo, agents_given=False)

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
    check.add_argument(
        "--max-findings",
        type=int,
        default=100,
        metavar="N",
        help="keep at most N findings of each kind and only count the rest (default 100)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument(
        "--html",
        metavar="FILE",
        default=None,
        help="also write the report as one HTML page (the agents' timeline and every finding)",
    )
    check.set_defaults(run=_check)
    _add_explore_commands(sub)
    return parser


class _GivenAgents(argparse.Action):
    """Store ``--agents N`` and note that it was given (with --store it counts processes)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.agents_given = True


def _add_explore_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explore = sub.add_parser(
        "explore",
        help="run a workflow under many schedules, one agent at a time, and check each run",
        description=(
            "Run WORKFLOW (package.module:function or path/to/script.py:function, no "
            "arguments) under many schedules "
            "chosen by a strategy, check each run (the checker and the function's "
            "'invariants' attribute), and report the first failure with the command that "
            "replays it. Exit status 1 when a run failed; 2 when nothing in the "
            "exploration could have failed (no invariant, no recorded shared access, no "
            "assert or raise in the workflow), unless --allow-unchecked."
        ),
    )
    explore.add_argument(
        "workflow", metavar="WORKFLOW", help="package.module:function or script.py:function"
    )
    explore.add_argument("--schedules", type=int, default=1000, metavar="N")
    explore.add_argument(
        "--strategy",
        choices=("auto", "random", "pct", "exhaustive"),
        default="auto",
        help="auto (default): exhaustive search, PCT and random walk in turn",
    )
    explore.add_argument("--depth", type=int, default=3, metavar="D", help="PCT bug depth")
    explore.add_argument("--seed", type=int, default=0, metavar="S")
    explore.add_argument(
        "--latency",
        choices=("any", "virtual"),
        default="any",
        help="sleeps and model calls end in any order (default) or in deadline order",
    )
    explore.add_argument("--keep-going", action="store_true", help="collect every failure")
    explore.add_argument("--no-check", action="store_true", help="skip the checker")
    explore.add_argument(
        "--allow-unchecked",
        action="store_true",
        help="exit 0, not 2, when nothing in the exploration could have failed",
    )
    explore.add_argument(
        "--save-dir", default=".racefree/replays", metavar="DIR", help="where replay files go"
    )
    explore.add_argument("--json", action="store_true", help="print the result as JSON")
    explore.add_argument(
        "--verbose",
        action="store_true",
        help="also draw the steps taken inside libraries (locks of site-packages, the store)",
    )
    explore.add_argument(
        "--threads",
        action="append",
        default=[],
        metavar="RULE",
        help="explore:PATTERN or free:PATTERN (a thread name or module; repeatable): "
        "which threads are agents; by default threads that library code starts run free",
    )
    explore.add_argument(
        "--watchdog",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="end a run in which no agent makes progress for this long (real time)",
    )
    explore.add_argument(
        "--html",
        metavar="FILE",
        default=None,
        help="on a failure, also write its run as one HTML page (timeline, findings, replay)",
    )
    explore.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="split the runs over N processes, one CPU each, with the same result as one "
        "process (the same runs, first failure and counts)",
    )
    explore.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="run share I of N of the exploration (N CI jobs, each with its I, together run "
        "all of it); with --workers, the share is split over the workers",
    )
    explore.set_defaults(run=_explore)

    replay = sub.add_parser(
        "replay",
        help="re-run one recorded failing schedule exactly",
        description=(
            "Re-run the schedule in a replay file written by racefree explore, with the "
            "workflow, invariants, checks and latency it records. Run it from the folder the "
            "exploration ran in. Exit status 1 when the failure happens again, 0 when it no "
            "longer does, 2 when the replay cannot run."
        ),
    )
    replay.add_argument("file", metavar="FILE", help="a replay file (.json)")
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    replay.add_argument(
        "--verbose",
        action="store_true",
        help="also draw the steps taken inside libraries (locks of site-packages, the store)",
    )
    replay.set_defaults(run=_replay)

    stress = sub.add_parser(
        "stress",
        help="the baseline: run a workflow for real, many at once, checking its invariants",
        description=(
            "Run WORKFLOW with real threads and real timing RUNS times, PARALLEL at once, "
            "checking each run with the function's 'invariants'. Exit status 1 on a failure."
        ),
    )
    stress.add_argument(
        "workflow", metavar="WORKFLOW", help="package.module:function or script.py:function"
    )
    stress.add_argument("--runs", type=int, default=100, metavar="N")
    stress.add_argument("--parallel", type=int, default=4, metavar="P")
    stress.add_argument("--json", action="store_true", help="print the result as JSON")
    stress.set_defaults(run=_stress)


def _check_writable(path: str | None) -> None:
    """Refuse, before any work, an output file that cannot be written."""
    if path is None:
        return
    target = os.path.abspath(path)
    folder = os.path.dirname(target)
    if os.path.isdir(target) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise UsageError(
            f"Cannot write {path}: give a file in an existing folder you can write to."
        )


def _write_page(path: str, page: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(page)
    print(f"HTML report written to {path}.", file=sys.stderr)


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
        if args.html is not None:
            raise UsageError("--html draws the in-memory demo; run it without --store.")
        return _demo_processes(args, scale)
    _check_writable(args.html)
    run = run_demo(agent_names(args.agents), seed=args.seed, time_scale=scale)
    if args.html is not None:
        from racefree.report.html import demo_html

        _write_page(args.html, demo_html(run))
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
    if args.agents_given and args.processes is not None and args.agents != args.processes:
        raise UsageError(
            f"--agents {args.agents} and --processes {args.processes} disagree: with --store "
            "each agent is one process. Give one of them, or the same number to both."
        )
    option = "--processes"
    if args.processes is not None:
        count = args.processes
    elif args.agents_given:
        count, option = args.agents, "--agents"
    else:
        count = 4
    if not 2 <= count <= 16:
        raise UsageError(
            f"{option} must be between 2 and 16 with --store (one process per agent), not {count}."
        )
    run = run_process_demo(agent_names(count), args.store, seed=args.seed, time_scale=scale)
    if args.json:
        print_json(run.to_json())
    else:
        printer = Printer()
        for text, style in run.lines():
            printer.line(text, style)
    return 0


def _read_final_state(path: str) -> object:
    """The JSON in a ``--final-state`` file, read within the same bounds as a history line."""
    import json

    from racefree.errors import HistoryFormatError
    from racefree.history import MAX_LINE_BYTES, parse_json

    with open(path, "rb") as source:
        raw = source.read(MAX_LINE_BYTES + 1)
    if len(raw) > MAX_LINE_BYTES:
        raise HistoryFormatError(
            f"{path} is longer than {MAX_LINE_BYTES:,} bytes, so it was not read. The final "
            "state must be one JSON object (key -> value) of at most 16 MiB."
        )
    try:
        return parse_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise HistoryFormatError(
            f"{path} is not UTF-8 text. The final state must be one JSON object "
            "(key -> value), saved as UTF-8."
        ) from None
    except json.JSONDecodeError as exc:
        raise HistoryFormatError(
            f"{path}, line {exc.lineno}: {exc.msg}. The final state must be one "
            "JSON object (key -> value)."
        ) from None
    except ValueError as exc:  # nested too deeply
        raise HistoryFormatError(
            f"{path}: {exc}. The final state must be one JSON object (key -> value)."
        ) from None


def _check(args: argparse.Namespace) -> int:
    from racefree.check import check
    from racefree.errors import HistoryFormatError
    from racefree.history import History
    from racefree.scenarios.script import print_json

    try:
        history = History.from_jsonl(args.history)
        final_state = None
        if args.final_state is not None:
            final_state = _read_final_state(args.final_state)
    except OSError as exc:
        raise UsageError(f"Cannot read {exc.filename}: {exc.strerror}. Check the path.") from None
    if final_state is not None and not isinstance(final_state, dict):
        raise HistoryFormatError(
            f"{args.final_state} holds a JSON {type(final_state).__name__}, not an object. The "
            "final state must be one JSON object (key -> value)."
        )
    _check_writable(args.html)
    if args.max_findings < 1:
        raise UsageError(f"--max-findings must be at least 1, not {args.max_findings}.")
    report = check(history, final_state=final_state, max_findings=args.max_findings)
    if args.html is not None:
        from racefree.report.html import check_html

        _write_page(args.html, check_html(history, report, source=args.history))
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.text())
    if not report.ok or (args.strict and report.warning_count):
        return 1
    return 0


def _explore(args: argparse.Namespace) -> int:
    from racefree.explore import explore
    from racefree.explore._cli import load_workflow, progress
    from racefree.scenarios.script import print_json

    workflow = load_workflow(args.workflow)
    _check_writable(args.html)
    with progress(f"exploring ({args.strategy})", args.schedules, not args.json) as on_run:
        result = explore(
            workflow,
            schedules=args.schedules,
            strategy=args.strategy,
            depth=args.depth,
            seed=args.seed,
            latency=args.latency,
            keep_going=args.keep_going,
            check=not args.no_check,
            invariants=getattr(workflow, "invariants", ()),
            save_dir=args.save_dir,
            on_run=on_run,
            target=args.workflow,
            threads=args.threads,
            watchdog=args.watchdog,
            workers=args.workers,
            shard=args.shard,
        )
    if args.html is not None and result.failure is not None:
        from racefree.check import check
        from racefree.report.html import check_html

        found = result.failure
        page = check_html(
            found.run.history,
            check(found.run.history),
            source=args.workflow,
            command="racefree explore",
            failed=found.failure.title,
            preface=[
                f"Schedule {found.run.schedule.encode()}; replay it: {found.command}",
            ],
        )
        _write_page(args.html, page)
    if args.json:
        print_json(result.to_json())
    else:
        print(result.report(verbose=args.verbose))
    if not result.ok:
        return 1
    if not result.checked and not args.allow_unchecked:
        print(
            f"racefree: error: {args.workflow} was explored, but nothing in it could fail: "
            "track its shared state, use the racefree store or attach invariants, or pass "
            "--allow-unchecked to accept a run that only checks for crashes and deadlocks.",
            file=sys.stderr,
        )
        return 2
    return 0


def _replay(args: argparse.Namespace) -> int:
    import shlex

    from racefree.explore import explore, load_replay
    from racefree.explore._cli import load_invariant, load_workflow
    from racefree.explore._target import is_script
    from racefree.scenarios.script import print_json

    data = load_replay(args.file)
    where = {"source": args.file, "cwd": data.get("cwd")}
    workflow = load_workflow(data["workflow"], data["argv"], **where)
    invariants = [load_invariant(spec, data["argv"], **where) for spec in data["invariants"]]
    try:
        result = explore(
            workflow,
            replay=args.file,
            latency=data["latency"],
            invariants=invariants,
            check=data["check"],
            max_steps=data["max_steps"],
            save_dir=None,
            command=lambda path, schedule: f"racefree replay {shlex.quote(args.file)}",
            target=data["workflow"],
        )
    except ReplayDivergedError as exc:
        recorded = data.get("racefree")
        if recorded is None or recorded == __version__:
            raise
        again = f"with `racefree explore {data['workflow']}`"
        if is_script(data["workflow"].rpartition(":")[0]):
            again = "by running the exploration in the script again"
        raise ReplayDivergedError(
            f"{exc} This schedule was recorded with racefree {recorded}, and you are running "
            f"racefree {__version__}, whose explorer may offer different choices: find the "
            f"failure again {again}."
        ) from None
    if args.json:
        print_json(result.to_json())
    elif result.ok:
        checks = [f"invariant {spec.rpartition(':')[2]}" for spec in data["invariants"]]
        checks += ["the checker"] if data["check"] else []
        checks += ["exceptions, deadlocks and the step limit"]
        print(
            f"{args.file}: the schedule ran to the end and every check passed "
            f"({', '.join(checks)}): the failure it recorded "
            f"({data.get('failure', {}).get('title', 'untitled')}) no longer happens."
        )
    else:
        print(result.report(verbose=args.verbose))
    return 0 if result.ok else 1


def _stress(args: argparse.Namespace) -> int:
    from racefree.explore._cli import load_workflow, progress
    from racefree.explore.stress import stress
    from racefree.scenarios.script import print_json

    workflow = load_workflow(args.workflow)
    if not args.json and not sys.stderr.isatty():  # a terminal gets a progress bar instead
        print(
            f"racefree stress: {args.runs} real runs of {args.workflow}, {args.parallel} at a "
            "time, in real time (each as long as the workflow takes)...",
            file=sys.stderr,
        )
    with progress("stress", args.runs, not args.json) as on_run:
        result = stress(
            workflow,
            runs=args.runs,
            parallel=args.parallel,
            invariants=getattr(workflow, "invariants", ()),
            on_run=on_run,
            name=args.workflow,
        )
    if args.json:
        print_json(result.to_json())
    else:
        for failure in result.failures[:1]:
            print(failure.title)
        print("\n".join(result.summary()))
    return 0 if result.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except RacefreeError as exc:
        print(f"racefree: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if str(exc):  # explore says how far it got
            print(f"racefree: {exc}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`racefree ... | head`): stop quietly, as Unix tools do,
        # and point stdout at devnull so the interpreter's final flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
