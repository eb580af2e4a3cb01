"""explore(): run a workflow under many schedules, check each run, report the first failure.

One run is :meth:`Scheduler.run` under a strategy; its history (every event
recorded during the run) goes to the checker and the final state (what the
workflow returned) to the user's invariants. The first failing run is shrunk
to the fewest deviations from natural timing, written to a replay file, and
reported with a timeline and the command that replays it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import dis
import functools
import hashlib
import inspect
import json
import platform
import shlex
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from racefree import hooks
from racefree.errors import RaceFoundError, ReplayDivergedError, UsageError
from racefree.explore import _patches
from racefree.explore._adopt import adopted
from racefree.explore._scheduler import Scheduler, ThreadRule, on_one_cpu, retire_carriers
from racefree.explore.schedule import Choice, Schedule
from racefree.explore.strategies.base import NOT_STATE, Step, Strategy, ordering
from racefree.explore.strategies.fair import Fair
from racefree.explore.strategies.replay import Replay
from racefree.history import Event, History

__all__ = [
    "Exploration",
    "Failure",
    "FailureReport",
    "Run",
    "explore",
    "load_replay",
    "make_strategy",
    "run_seed",
    "workflow_name",
]

Invariant = Callable[[Any], Any]
_lock = __import__("_thread").allocate_lock()
_current_seed: list[int | None] = [None]


def run_seed() -> int | None:
    """The seed of the run being explored (for simulated replies), or None outside one."""
    return _current_seed[0]


# --- what one run gives -------------------------------------------------------------------


@dataclass
class Failure:
    """Why a run failed: ``kind`` (exception, deadlock, invariant, checker, step-limit,
    blocked: the watchdog ended a run stuck in a call the explorer does not
    control), a one-line ``title`` and an explanation in ``details``."""

    kind: str
    title: str
    # A list, or what makes it when it is first read: the checker's stories are worded
    # and wrapped only for the failures a report shows (a failing run is otherwise
    # mostly text, and keep_going or shrinking makes many).
    lazy_details: list[str] | Callable[[], list[str]] = field(default_factory=list, repr=False)
    name: str = ""

    @property
    def details(self) -> list[str]:
        """The explanation, one line an item."""
        if callable(self.lazy_details):
            self.lazy_details = self.lazy_details()
        return self.lazy_details

    @property
    def signature(self) -> str:
        """What must stay the same for a shrunk schedule to count as the same failure."""
        return f"{self.kind}:{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "title": self.title, "details": self.details}


@dataclass
class Run:
    """One run: its schedule, its steps, its history, its outcome."""

    index: int
    schedule: Schedule
    trace: list[Step]
    history: History
    result: Any
    failures: list[Failure]
    names: dict[int, str]
    virtual_seconds: float

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def deviations(self) -> int:
        """Choices that were not the natural-timing default (preemptions, early answers)."""
        return sum(1 for step in self.trace if step.deviation)

    def ordering(self) -> int:
        """The run's distinct ordering (see :func:`racefree.explore.strategies.base.ordering`)."""
        return ordering(self.trace)


# --- the result -----------------------------------------------------------------------------


@dataclass
class Exploration:
    """What an exploration did and found; ``ok`` when no run failed."""

    workflow: str
    strategy: str
    seed: int
    runs: int
    distinct: int
    failures: list[FailureReport]
    complete: bool
    wall_seconds: float
    strategy_summary: list[str] = field(default_factory=list)
    stopped: str = ""
    keys: list[str] = field(default_factory=list)
    agents: int = 0
    visible_steps: int = 0
    nothing_checked: str = ""
    polls_folded: int = 0
    #: ``(i, n)``, 0-based, when this is one share of an exploration split over CI jobs.
    shard: tuple[int, int] | None = None
    workers: int = 1
    #: The fingerprints of the distinct orderings run (comparable within one process, or
    #: between the worker processes of one exploration, which share a hash seed).
    orderings: set[int] = field(default_factory=set, repr=False)
    #: Fingerprints of the schedules run, kept only by a shard run in this process (to
    #: compare shards: they never run one schedule twice).
    schedule_fingerprints: set[int] = field(default_factory=set, repr=False)
    #: Distinct orderings whose runs ended differently (one failed, one passed): their
    #: outcome depends on state the explorer cannot see, so no count of orderings is a
    #: claim of coverage (``complete`` is then False).
    split_orderings: int = 0
    #: The search ran every ordering it could tell apart, but it saw no shared state (nor
    #: a lock of user or library code) of several agents: its orderings differ only in
    #: the explorer's bookkeeping, so ``complete`` is False.
    saw_no_state: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def checked(self) -> bool:
        """False when nothing in the exploration could have failed (see ``nothing_checked``)."""
        return not self.nothing_checked

    def coverage(self) -> str:
        """What the runs covered, in one sentence: orderings, visible steps, agents, keys."""
        # "$" is the key of a tracked object itself (a read of all of it: a copy, a dump).
        keys = ", ".join("the whole tracked object" if k == "$" else k for k in self.keys[:8])
        if len(self.keys) > 8:
            keys += f" and {len(self.keys) - 8} more"
        orderings = f"{self.distinct:,} distinct ordering{'s' if self.distinct != 1 else ''}"
        seen = (
            f"of up to {self.visible_steps:,} visible step{'s' if self.visible_steps != 1 else ''}"
            f" by {self.agents} agent{'s' if self.agents != 1 else ''} (shared state: "
            f"{keys or 'none the explorer could see'})"
        )
        times = "once" if self.polls_folded == 1 else f"{self.polls_folded:,} times"
        fold = (
            f" A poll that changed nothing ran again only after another agent moved (applied "
            f"{times}), so a poll that gives up after a number of rounds was not seen giving "
            "up early; --latency virtual runs it in natural time."
            if self.polls_folded
            else ""
        )
        if self.split_orderings:
            n = self.split_orderings
            which = (
                "its runs"
                if self.distinct == 1
                else f"the runs of {n:,} of them"
                if n > 1
                else "the runs of one of them"
            )
            return (
                f"Not exhaustive: {orderings} run, {seen}; but {which} ended "
                f"differently (one failing, one passing), so the outcome depends on shared "
                "state the explorer cannot see and its orderings were not all run: track it "
                f"(racefree.track(...), the racefree store or hooks.point).{fold}"
            )
        if self.saw_no_state:
            return (
                f"Not exhaustive: the search ran the {orderings} it could tell apart, {seen}; "
                "but it saw no shared state and no lock, so the orders of the agents' accesses "
                "all looked alike to it, and a race on state it cannot see is not ruled out: "
                f"track it (racefree.track(...), the racefree store or hooks.point).{fold}"
            )
        if self.complete and self.shard is not None and self.shard[1] > 1:
            return (
                f"Shard {self.shard[0] + 1}/{self.shard[1]} complete: its {orderings} explored, "
                f"{seen}; the other shards run the rest of the search.{fold}"
            )
        if self.complete:
            every = "the only distinct ordering" if self.distinct == 1 else f"all {orderings}"
            return (
                f"Complete: {every} explored, {seen}. Orderings that differ only by "
                "swapping steps that commute (no key written by one and touched by the other) "
                f"count once; accesses the explorer cannot see are not ordered.{fold}"
            )
        return f"Not exhaustive: {orderings} run, {seen}; other orderings may exist.{fold}"

    @property
    def failure(self) -> FailureReport | None:
        """The first failure, or None."""
        return self.failures[0] if self.failures else None

    def summary(self) -> list[str]:
        """The summary lines: runs, orderings, failures, time, speed, guarantee."""
        rate = self.runs / self.wall_seconds if self.wall_seconds > 0 else 0.0
        how = f"{self.strategy}, seed {self.seed}"
        if self.shard is not None:
            how += f", shard {self.shard[0] + 1}/{self.shard[1]}"
        if self.workers > 1:
            how += f", {self.workers} worker processes"
        lines = [
            f"{self.workflow}: {self.runs:,} schedule{'s' if self.runs != 1 else ''} run "
            f"({how}), {self.distinct:,} distinct ordering"
            f"{'s' if self.distinct != 1 else ''}, {len(self.failures)} failing, "
            f"{self.wall_seconds:.3f} s wall, {rate:,.0f} schedules/s.",
        ]
        lines.extend(self.strategy_summary)
        lines.append(self.coverage())
        if self.nothing_checked:
            lines.append(self.nothing_checked)
        if self.stopped:
            lines.append(self.stopped)
        return lines

    def report(self, verbose: bool = False) -> str:
        """The summary, then every failure in full (each ending with its replay command);
        ``verbose`` also draws the steps taken inside libraries."""
        parts = ["\n".join(self.summary()), *(f.text(verbose) for f in self.failures)]
        return "\n\n".join(parts)

    def check(self) -> Exploration:
        """Raise ``RaceFoundError`` with the full report if any run failed; else return self."""
        if self.failures:
            raise RaceFoundError(self.report())
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "strategy": self.strategy,
            "seed": self.seed,
            "runs": self.runs,
            "distinct_orderings": self.distinct,
            "complete": self.complete,
            "split_orderings": self.split_orderings,
            "saw_no_state": self.saw_no_state,
            "agents": self.agents,
            "visible_steps": self.visible_steps,
            "shared_keys": self.keys,
            "checked": self.checked,
            "nothing_checked": self.nothing_checked or None,
            "shard": f"{self.shard[0] + 1}/{self.shard[1]}" if self.shard else None,
            "workers": self.workers,
            "failures": [f.to_json() for f in self.failures],
            "wall_seconds": round(self.wall_seconds, 4),
            "schedules_per_second": round(self.runs / self.wall_seconds, 1)
            if self.wall_seconds
            else None,
            "summary": self.summary(),
        }


@dataclass
class FailureReport:
    """A failure a person can act on: what broke, the timeline, the replay."""

    failure: Failure
    run: Run
    found_after: int
    original_deviations: int
    replay_file: Path | None
    command: str
    workflow: str

    @property
    def schedule(self) -> Schedule:
        return self.run.schedule

    def timeline(self, verbose: bool = False) -> list[str]:
        return timeline(self.run, verbose)

    def text(self, verbose: bool = False) -> str:
        """The report; ``verbose`` also draws the steps taken inside libraries."""
        run = self.run
        shrunk = ""
        if self.original_deviations != run.deviations:
            shrunk = f", shrunk from {self.original_deviations}"
        lines = [f"racefree: {self.workflow} failed on schedule {self.found_after:,}.", ""]
        for failure in run.failures:
            lines += [failure.title, *(f"  {line}" for line in failure.details), ""]
        lines += [
            f"What happened ({run.deviations} deviation{'s' if run.deviations != 1 else ''} "
            f"from natural timing{shrunk}; * marks each; times are virtual):",
            *(f"  {line}" for line in self.timeline(verbose)),
            "",
            f"Schedule: {run.schedule.encode()}",
        ]
        if self.replay_file is not None:
            lines.append(f"Replay file: {self.replay_file}")
        lines.append(f"Reproduce it exactly with:\n    {self.command}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.failure.to_json(),
            "schedule": self.run.schedule.encode(),
            "deviations": self.run.deviations,
            "found_after": self.found_after,
            "replay_file": str(self.replay_file) if self.replay_file else None,
            "command": self.command,
            "timeline": self.timeline(),
        }


# --- timeline --------------------------------------------------------------------------------


def _describe(event: Event) -> str:
    what = f"{event.op}"
    if event.key is not None:
        what += f" {event.key}"
    if event.version_read is not None and event.version_written is not None:
        what += f" (from v{event.version_read}, makes v{event.version_written})"
    elif event.version_read is not None:
        what += f" (v{event.version_read})"
    elif event.version_written is not None:
        what += f" (makes v{event.version_written})"
    if event.value is not None and event.op not in ("read", "get"):
        text = repr(event.value)
        what += f": {text if len(text) <= 40 else text[:37] + '...'}"
    return what


_HIDDEN = ("internal-", "thread#")  # the explorer's own bookkeeping


_TIMES_OUT = "times out (an asyncio timeout ends its wait)"


def _hidden(key: str, verbose: bool = False) -> bool:
    """Keys a timeline leaves out: the explorer's bookkeeping, and (unless ``verbose``)
    locks made inside libraries and racefree's own store, whose steps fold into the
    agent's step around them."""
    return key.startswith(_HIDDEN) or (not verbose and key.startswith("lib-"))


def _show(key: str, wrote: bool) -> str:
    if key.startswith(("lock#", "rlock#", "lib-lock#", "lib-rlock#")):
        return f"takes {key}"
    return f"{'writes' if wrote else 'reads'} {key}"


def timeline(run: Run, verbose: bool = False) -> list[str]:
    """One line per step that did something visible, in order, with its agent and time.

    Steps that only took locks made inside libraries (site-packages, racefree's store)
    are left out unless ``verbose``: they are real switch points, but they say nothing
    about the user's code."""
    width = max([len(n) for n in run.names.values()] + [5])
    lines = [f"{'step':>4}  {'time':>7}  {'agent':<{width}}  what"]
    for number, step in enumerate(run.trace, start=1):
        mark = "*" if step.deviation else " "
        if step.events:
            if step.kind == "resume" and step.key == "timeout":  # what the events follow
                name = run.names.get(step.id[0], step.name)
                lines.append(f"{number:>4}{mark} {step.time:6.2f}s  {name:<{width}}  {_TIMES_OUT}")
                mark = " "
            for event in step.events:
                who = f"{event.agent:<{width}}"
                lines.append(f"{number:>4}{mark} {step.time:6.2f}s  {who}  {_describe(event)}")
                mark = " "
            continue
        visible = {k: w for k, w in step.footprint.items() if not _hidden(k, verbose)}
        if not visible and not step.deviation and step.kind != "resume":
            continue
        name = run.names.get(step.id[0], step.name)
        hidden = step.key is None or _hidden(step.key, verbose)
        what = step.kind if hidden else f"{step.kind} {step.key}"
        if step.kind == "resume" and step.key == "timeout":
            what = _TIMES_OUT
        elif step.kind == "resume":
            what = "resumes (its sleep or model call returns)"
        elif visible:
            what = ", ".join(_show(k, w) for k, w in visible.items())
        lines.append(f"{number:>4}{mark} {step.time:6.2f}s  {name:<{width}}  {what}")
    return lines


# --- coverage -------------------------------------------------------------------------------


class _Coverage:
    """What the runs of one exploration touched, for the summary and the nothing-to-check test."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.locked = False  # a lock of user or library code ordered some steps
        self.agents = 0
        self.visible_steps = 0
        self.accesses = 0
        self._shown: dict[str, bool] = {}  # key -> drawn in a verbose timeline

    def add(self, run: Run) -> tuple[int, int, int]:
        """Count a run in; returns its agents, visible steps and recorded accesses."""
        trace = run.trace
        agents = {step.id[0] for step in trace}
        visible = 0
        shown_keys = self._shown  # the same keys come back in every run: classify each once
        for step in trace:
            shown = False
            for key in step.footprint:
                state = shown_keys.get(key)
                if state is None:
                    state = shown_keys[key] = not _hidden(key, verbose=True)
                    if state and not key.startswith(NOT_STATE):
                        self.keys.add(key)
                    elif key.startswith(_ORDERING_LOCKS):
                        self.locked = True
                if state:  # a step is visible if any key it touched is
                    shown = True
            visible += shown
        self.agents = max(self.agents, len(agents))
        self.visible_steps = max(self.visible_steps, visible)
        accesses = len([event for event in run.history.events if event.key is not None])
        self.accesses += accesses
        return len(agents), visible, accesses

    def nothing_checked(self, config: _Config) -> str:
        """A sentence when no run could have failed but by a crash; else ''."""
        if config.invariants or (config.check and self.accesses) or _checks_itself(config):
            return ""
        return (
            "Nothing was checked: no invariant was given, no run recorded a shared access "
            "for the checker, and the workflow has no assert or raise of its own, so only a "
            "crash or a deadlock could have failed a run. Track the shared state "
            "(racefree.track(session)), use the racefree store, or pass an invariant."
        )


def _checks_itself(config: _Config) -> bool:
    """True when the workflow's own code (nested functions included) asserts or raises."""
    code = getattr(inspect.unwrap(config.workflow), "__code__", None)
    stack = [code] if code is not None else []
    while stack:
        current = stack.pop()
        for instruction in dis.get_instructions(current):
            if instruction.opname in ("RAISE_VARARGS", "LOAD_ASSERTION_ERROR"):
                return True
        stack.extend(c for c in current.co_consts if inspect.iscode(c))
    return False


# --- tracebacks ---------------------------------------------------------------------------

_OWN_CODE = str(Path(__file__).resolve().parents[1])  # the racefree package
_STDLIB = str(Path(threading.__file__).resolve().parent)


def _is_user_frame(filename: str) -> bool:
    try:
        path = str(Path(filename).resolve())
    except OSError:  # pragma: no cover - an odd filename such as "<string>"
        return True
    if path.startswith(_OWN_CODE):
        return False
    return not (path.startswith(_STDLIB) and "-packages" not in path)


def _traceback_lines(exc: BaseException, shown: int = 6) -> list[str]:
    """The frames of the user's code (innermost last), then where it was raised if that
    is elsewhere: racefree's and the standard library's frames are counted, not shown."""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if _is_user_frame(f.filename)]
    keep = user[-shown:]
    if frames and (not keep or frames[-1] is not keep[-1]):
        keep.append(frames[-1])  # raised inside a library: show where
    hidden = len(frames) - len(keep)
    lines = ["Traceback (your code first; innermost last):"]
    for frame in keep:
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    if hidden:
        lines.append(
            f"  ({hidden} frame{'s' if hidden != 1 else ''} of racefree and the "
            "standard library not shown)"
        )
    return lines  # the exception itself is the failure's title


# --- checks -------------------------------------------------------------------------------------


#: Locks of user and library code (taking one orders what it guards, seen or not; the
#: standard library's own, a thread's start or a Future's, guard only its bookkeeping),
#: and a cassette's numbering of identical calls (shared state, kept under its key).
_ORDERING_LOCKS = ("lock#", "rlock#", "lib-lock#", "lib-rlock#", "internal-cassette#")


def saw_no_state(finished: bool, keys: Iterable[str], agents: int, locked: bool) -> bool:
    """A finished search of several agents that saw no shared state and no lock of user or
    library code: the orders it told apart differ only in the explorer's own bookkeeping
    (timers, the clock), and it takes the unseen accesses to commute, so its end proves
    nothing about a race on the state it did not see."""
    return finished and agents > 1 and not locked and not any(True for _ in keys)


def split_orderings(verdicts: Iterable[tuple[int, set[bool]]]) -> int:
    """How many orderings had both a failing and a passing run: the same order of every
    access the explorer saw, two outcomes, so something it did not see decided."""
    return sum(1 for _, seen in verdicts if len(seen) > 1)


def _invariant_failures(invariants: Sequence[Invariant], state: Any) -> list[Failure]:
    out = []
    for invariant in invariants:
        name = getattr(invariant, "__name__", repr(invariant))
        doc = (inspect.getdoc(invariant) or "").strip().splitlines()
        try:
            verdict = invariant(state)
        except AssertionError as exc:
            out.append(
                Failure("invariant", f"Invariant {name} failed: {exc}".rstrip(": "), doc, name)
            )
            continue
        except Exception as exc:
            # A race that drops a key makes an invariant that indexes it raise: that is the
            # invariant failing on this schedule, with its story and replay, not a crash of
            # the whole exploration.
            title = f"Invariant {name} raised {type(exc).__name__}: {exc}".rstrip(": ")
            out.append(Failure("invariant", title, doc, name))
            continue
        if verdict is False:
            out.append(Failure("invariant", f"Invariant {name} failed.", doc, name))
    return out


def _wrapped_story(explanation: Any) -> list[str]:
    return textwrap.wrap(explanation.story(), 88)


def _checker_failures(history: History, state: Any) -> list[Failure]:
    """The checker's errors (its warnings do not fail a run), as failures with their stories."""
    import importlib

    try:
        checker = importlib.import_module("racefree.check")
    except ImportError:  # pragma: no cover - the checker ships with racefree
        return []
    report = checker.check(history, final_state=state, warnings=False)
    out = []
    for finding in report.errors:
        agents = ", ".join(finding.agents)
        keys = ", ".join(finding.keys)
        title = f"Checker: {finding.name} on {keys} ({agents})" if keys else finding.name
        story = functools.partial(_wrapped_story, finding.explanation)
        out.append(Failure("checker", title, story, finding.kind))
    return out


# --- one run ------------------------------------------------------------------------------------


@dataclass
class _Config:
    workflow: Callable[[], Any]
    invariants: Sequence[Invariant]
    check: bool
    latency: str
    max_steps: int
    watchdog: float | None = 30.0
    threads: Sequence[ThreadRule] = ()


class _TimeUp(Exception):
    """A run reached the exploration's time limit before it ended (it is not counted)."""


_ABORT_KINDS = ("deadlock", "step-limit", "blocked")


def _call(workflow: Callable[[], Any]) -> Callable[[], Any]:
    if inspect.iscoroutinefunction(workflow):
        import asyncio

        return lambda: asyncio.run(workflow())
    return workflow


def _run_once(
    config: _Config, strategy: Strategy, index: int, seed: int, deadline: float | None = None
) -> Run:
    sched = Scheduler(
        strategy,
        latency=config.latency,
        max_steps=config.max_steps,
        seed=seed,
        watchdog=config.watchdog,
        deadline=deadline,
        threads=config.threads,
    )
    hooks._scheduler = sched
    _current_seed[0] = seed
    try:
        result, error = sched.run(_call(config.workflow))
    finally:
        hooks._scheduler = None
        _current_seed[0] = None
    if sched.error is not None:
        raise sched.error
    if sched.abort_kind == "time-limit":
        raise _TimeUp
    failures: list[Failure] = []
    names = dict(sched.names)
    if sched.abort_kind in _ABORT_KINDS and sched.abort_reason is not None:
        failures.append(Failure(sched.abort_kind, sched.abort_reason, [], sched.abort_kind))
    for who, exc, _tb in sched.crashes:
        failures.append(
            Failure(
                "exception",
                f"{who} raised {type(exc).__name__}: {exc}",
                _traceback_lines(exc),
                type(exc).__name__,
            )
        )
    if error is not None:
        failures.append(
            Failure(
                "exception",
                f"The workflow raised {type(error).__name__}: {error}",
                _traceback_lines(error),
                type(error).__name__,
            )
        )
    events = sched.events
    if sched.renumber:  # several histories: number them anew
        events = [dataclasses.replace(e, seq=i) for i, e in enumerate(events)]
    history = History(events)
    if not failures:
        failures.extend(_invariant_failures(config.invariants, result))
        if config.check:
            failures.extend(_checker_failures(history, result))
    elif config.check and sched.abort_reason is None:
        # A run that raised (a failed assert, often) may have raised *because* of a race:
        # the checker's story goes with the exception. There is no final state to check.
        failures.extend(_checker_failures(history, None))
    choices = tuple([s.id for s in sched.trace if len(s.candidates) > 1])
    return Run(
        index,
        Schedule(seed, choices),
        sched.trace,
        history,
        result,
        failures,
        names,
        sched.clock,
    )


# --- shrinking --------------------------------------------------------------------------------


def _shrink(config: _Config, run: Run, budget: int = 200, deadline: float | None = None) -> Run:
    """Fewer deviations from natural timing, same failure: try dropping each deviation.

    Stops after ``budget`` re-runs or at ``deadline`` (``time.perf_counter()``), keeping
    the best schedule found so far.
    """
    best = run
    signature = run.failures[0].signature
    tries = 0
    improved = True
    while improved and tries < budget:
        if deadline is not None and time.perf_counter() > deadline:
            break
        improved = False
        decisions = [s for s in best.trace if len(s.candidates) > 1]
        deviating = [i for i, s in enumerate(decisions) if s.deviation]
        for i in reversed(deviating):
            ids: list[Choice | None] = [s.id for s in decisions]
            for attempt in (ids[:i], [*ids[:i], None, *ids[i + 1 :]]):
                if deadline is not None and time.perf_counter() > deadline:
                    return best
                tries += 1
                replay = Fair(Replay(attempt, strict=False), enabled=config.latency == "any")
                replay.new_run(0)
                candidate = _run_once(config, replay, best.index, best.schedule.seed)
                if (
                    candidate.failed
                    and candidate.failures[0].signature == signature
                    and candidate.deviations < best.deviations
                ):
                    best, improved = candidate, True
                    break
            if improved or tries >= budget:
                break
    return best


# --- strategies by name ---------------------------------------------------------------------------

STRATEGIES = ("auto", "random", "pct", "exhaustive")


def _accepts(function: Callable[..., Any], count: int) -> bool:
    """Can ``function`` be called with ``count`` positional arguments? (True when its
    signature cannot be read: a builtin, a C extension.)"""
    try:
        # Not through __wrapped__: a wrapper that supplies the arguments (the pytest
        # plugin's, a decorator's) is what the explorer calls.
        signature = inspect.signature(function, follow_wrapped=False)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True


def _refuse_unfit_callables(workflow: Callable[..., Any], invariants: Sequence[Any]) -> None:
    """A workflow the explorer cannot call with no argument, or an invariant it cannot call
    with the final state, would fail every run the same way: say so before the first."""
    if not _accepts(workflow, 0):
        raise UsageError(
            f"{workflow_name(workflow)} takes arguments, and the explorer calls the workflow "
            "with none: give them defaults, or pass a function that supplies them "
            "(lambda: workflow(...), functools.partial)."
        )
    for invariant in invariants:
        if not callable(invariant):
            raise UsageError(
                f"Each invariant must be a function of the final state that returns True "
                f"when it holds, not {invariant!r}."
            )
        if not _accepts(invariant, 1):
            name = getattr(invariant, "__name__", repr(invariant))
            raise UsageError(
                f"The invariant {name} cannot be called with one argument, the final state "
                "(what the workflow returns): give it one parameter."
            )


def make_strategy(name: str, *, depth: int = 3, max_schedules: int | None = None) -> Strategy:
    """A strategy by name: ``auto`` (the default: exhaustive search, PCT and random walk in
    turn), ``random``, ``pct`` (with ``depth``) or ``exhaustive``."""
    if name == "auto":
        from racefree.explore.strategies.portfolio import Portfolio

        return Portfolio(depth=depth)
    if name == "random":
        from racefree.explore.strategies.random import RandomWalk

        return RandomWalk()
    if name == "pct":
        from racefree.explore.strategies.pct import PCT

        return PCT(depth=depth)
    if name == "exhaustive":
        from racefree.explore.strategies.exhaustive import Exhaustive

        return Exhaustive()
    raise UsageError(
        f"No such strategy: {name!r}. Choose one of {', '.join(STRATEGIES)}, or pass a "
        "Strategy instance."
    )


def workflow_name(workflow: Callable[..., Any]) -> str:
    """``module:qualname`` of a workflow (what ``racefree explore`` and replay files use)."""
    module = getattr(workflow, "__module__", None) or "?"
    qualname = getattr(workflow, "__qualname__", None) or repr(workflow)
    return f"{module}:{qualname}"


# --- replay files -------------------------------------------------------------------------

REPLAY_FORMAT = "racefree-replay"
REPLAY_VERSION = 2


@dataclass
class _Target:
    """How another process finds the run's functions again (see ``_target``), or why not."""

    workflow: str
    argv: list[str]
    invariants: list[str]
    problems: list[str]


def _name_of(obj: Any, fallback: str) -> str:
    """The name a user's code calls ``obj`` by, for a pasted line (``fallback`` if none)."""
    qualname = str(getattr(obj, "__qualname__", ""))
    if inspect.ismethod(obj) and not isinstance(obj.__self__, type):
        return fallback  # bound to an object: the user's name for the object is unknown
    last = qualname.rsplit("<locals>.", 1)[-1]
    return last if last.replace(".", "").replace("_", "a").isalnum() else fallback


def _locate_run(config: _Config, name: str) -> _Target:
    """``name`` is the workflow as explore() calls it: the ``target`` it was given, if
    any (kept as given), else where the function is defined."""
    from racefree.explore._target import Unreloadable, locate

    given = name != workflow_name(config.workflow)
    problems = []
    workflow, argv = name, list[str]()
    try:
        found, argv = locate(config.workflow)
        workflow = name if given else found
    except Unreloadable as exc:
        if not given:
            problems.append(f"the workflow {exc}")
    invariants = []
    for number, invariant in enumerate(config.invariants, start=1):
        try:
            invariants.append(locate(invariant)[0])
        except Unreloadable as exc:
            problems.append(f"{_name_of(invariant, f'invariant_{number}')} {exc}")
    return _Target(workflow, argv, invariants, problems)


def _save_replay(
    directory: Path, target: _Target, report_failure: Failure, run: Run, config: _Config
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    schedule = run.schedule.encode()
    digest = hashlib.blake2b(f"{target.workflow}|{schedule}".encode(), digest_size=4).hexdigest()
    stem = target.workflow.split(":")[-1].replace("<locals>.", "").replace(".", "-")
    path = directory / f"{stem}-{digest}.json"
    from racefree import __version__

    data = {
        "format": REPLAY_FORMAT,
        "version": REPLAY_VERSION,
        "workflow": target.workflow,
        "argv": target.argv,
        "cwd": str(Path.cwd()),
        "invariants": target.invariants,
        "check": config.check,
        "latency": config.latency,
        "max_steps": config.max_steps,
        "schedule": schedule,
        "agents": {str(k): v for k, v in sorted(run.names.items())},
        "failure": report_failure.to_json(),
        "racefree": __version__,
        "python": platform.python_version(),
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def _is_target(value: Any) -> bool:
    return isinstance(value, str) and bool(value.rpartition(":")[0])


def load_replay(path: str | Path) -> dict[str, Any]:
    """Read a replay file; a file that is not one raises ``UsageError`` saying why.

    Version 2 (this racefree) holds ``workflow`` and ``invariants`` as targets
    (``package.module:qualname`` or ``script.py:qualname``), the script's ``argv``,
    the folder it ran in (``cwd``), ``check``, ``latency``, ``max_steps``, the
    ``schedule``, the ``agents``' names and the ``failure``.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"No replay file at {path}.") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a racefree replay file: {exc}.") from None
    if not isinstance(data, dict) or data.get("format") != REPLAY_FORMAT:
        raise UsageError(
            f'{path} is not a racefree replay file (it has no "format": "{REPLAY_FORMAT}").'
        )
    if data.get("version") == 1:
        raise UsageError(
            f"{path} is a version 1 replay file, which does not record the invariants it "
            f"checked, and this racefree reads version {REPLAY_VERSION}: re-run the "
            "exploration to record a fresh one."
        )
    if data.get("version") != REPLAY_VERSION:
        raise UsageError(
            f"{path} is a version {data.get('version')} replay file, and this racefree reads "
            f"version {REPLAY_VERSION}: re-run the exploration to record a fresh one."
        )
    Schedule.decode(str(data.get("schedule", "")))
    problems = []
    if not _is_target(data.get("workflow")):
        problems.append(
            '"workflow" must name a function as "package.module:function" or '
            '"path/to/script.py:function"'
        )
    invariants = data.get("invariants")
    if not isinstance(invariants, list) or not all(_is_target(i) for i in invariants):
        problems.append('"invariants" must be a list of "package.module:function" names')
    argv = data.get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        problems.append('"argv" must be a list of strings')
    if not isinstance(data.get("check"), bool):
        problems.append('"check" must be true or false')
    if data.get("latency") not in ("any", "virtual"):
        problems.append('"latency" must be "any" or "virtual"')
    max_steps = data.get("max_steps")
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        problems.append('"max_steps" must be a whole number above 0')
    if not isinstance(data.get("cwd", ""), str):
        problems.append('"cwd" must be the folder the exploration ran in')
    agents = data.get("agents", {})
    if not isinstance(agents, dict) or not all(
        isinstance(k, str) and k.isdigit() and isinstance(v, str) for k, v in agents.items()
    ):
        problems.append('"agents" must map agent numbers ("0", "1", ...) to names')
    failure = data.get("failure", {})
    if not isinstance(failure, dict) or not isinstance(failure.get("title", ""), str):
        problems.append('"failure" must be an object with a "title"')
    if problems:
        raise UsageError(
            f"{path} is not a valid racefree replay file: {'; '.join(problems)}. Re-run the "
            "exploration to record a fresh one."
        )
    return data


def _as_schedule(
    replay: Schedule | str | Path,
) -> tuple[Schedule, dict[int, str], dict[str, Any] | None]:
    """The schedule to replay, the agents' names, and the replay file's data (None for a
    schedule)."""
    if isinstance(replay, Schedule):
        return replay, {}, None
    text = str(replay)
    if isinstance(replay, Path) or text.endswith(".json"):
        data = load_replay(text)
        names = {int(k): str(v) for k, v in data.get("agents", {}).items()}
        return Schedule.decode(data["schedule"]), names, data
    return Schedule.decode(text), {}, None


def _refuse_other_checks(
    path: Schedule | str | Path, data: dict[str, Any], config: _Config
) -> None:
    """A replay file replayed with other checks, latency or step limit than it records
    would fail differently or pass for lack of a check: refuse it, saying what to pass."""
    from racefree.explore._target import Unreloadable, locate, same_place

    given = []
    for invariant in config.invariants:
        with contextlib.suppress(Unreloadable):
            given.append(same_place(locate(invariant)[0]))
    recorded, running = [], []
    if any(same_place(t, data.get("cwd")) not in given for t in data["invariants"]):
        names = [target.rpartition(":")[2] for target in data["invariants"]]
        recorded.append(f"invariants=[{', '.join(names)}]")
        running.append(f"invariants=[{', '.join(_name_of(i, '?') for i in config.invariants)}]")
    for option in ("check", "latency", "max_steps"):
        if data[option] != getattr(config, option):
            recorded.append(f"{option}={data[option]!r}")
            running.append(f"{option}={getattr(config, option)!r}")
    if recorded:
        raise UsageError(
            f"{path} was recorded with {', '.join(recorded)}, and this replay runs with "
            f"{', '.join(running)}: pass {', '.join(recorded)}, or run racefree replay {path}."
        )


@contextlib.contextmanager
def _latency_diagnosed(config: _Config, schedule: Schedule | None) -> Iterator[None]:
    """A strict replay that diverges is re-tried once under the other latency: if it fits
    there, the message says to pass that latency instead of blaming the workflow."""
    try:
        yield
    except ReplayDivergedError:
        if schedule is None:
            raise
        other = "virtual" if config.latency == "any" else "any"
        trial = Fair(Replay(schedule.steps, strict=True), enabled=other == "any")
        trial.new_run(0)
        try:
            run = _run_once(dataclasses.replace(config, latency=other), trial, 0, schedule.seed)
            trial.end_run(run.trace, run.failed)
        except ReplayDivergedError:
            raise  # the original divergence: it fits neither latency
        raise ReplayDivergedError(
            f"This schedule cannot be followed with latency={config.latency!r}, but it can "
            f"with latency={other!r}: pass latency={other!r} to replay it (a schedule holds "
            "the choices of the latency it was found with)."
        ) from None


def _api_command(config: _Config, schedule: Schedule, target: _Target, saving: bool) -> str:
    """The ``racefree.explore(...)`` line that replays ``schedule`` with the same checks,
    with a comment when something in it cannot be found by name."""
    defaults = inspect.signature(explore).parameters
    invariants = [_name_of(inv, f"invariant_{n}") for n, inv in enumerate(config.invariants, 1)]
    args = [_name_of(config.workflow, "workflow"), f"replay={schedule.encode()!r}"]
    if config.latency != defaults["latency"].default:
        args.append(f"latency={config.latency!r}")
    if invariants:
        args.append(f"invariants=[{', '.join(invariants)}]")
    if config.check != defaults["check"].default:
        args.append(f"check={config.check!r}")
    if config.max_steps != defaults["max_steps"].default:
        args.append(f"max_steps={config.max_steps!r}")
    line = f"racefree.explore({', '.join(args)})"
    if not target.problems:
        return line
    it, they = ("it", "it is") if len(target.problems) == 1 else ("them", "they are")
    note = (
        f"{'; '.join(target.problems)}: racefree replay cannot reload {it}, so paste this "
        f"where {they} defined, or define {it} with def at module level"
    )
    return f"{line}  # {note}{'; no replay file was written' if saving else ''}."


# --- explore -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(cpu: int | None = None) -> Iterator[None]:
    if not _lock.acquire(False):
        raise UsageError(
            "Another exploration is running in this process; explorations cannot be nested "
            "or run from two threads at once."
        )
    try:
        # Every exploration adopts the locks made before it (not only the first to patch:
        # the patches stay in place while any exploration has them installed).
        with _patches.installed(), on_one_cpu(cpu), adopted():
            yield
    finally:
        hooks._scheduler = None
        _current_seed[0] = None
        retire_carriers()  # no thread is left behind, even after a Ctrl-C
        _lock.release()


def _thread_rules(threads: Iterable[str]) -> tuple[ThreadRule, ...]:
    if isinstance(threads, str):
        threads = (threads,)
    rules = []
    for rule in threads:
        action, _, pattern = str(rule).partition(":")
        if action not in ("explore", "free") or not pattern:
            raise UsageError(
                f"threads rules look like 'explore:PATTERN' or 'free:PATTERN', not {rule!r}; "
                "PATTERN is a thread name or a module (wildcards allowed), for example "
                "'free:opentelemetry' or 'explore:Worker-*'."
            )
        rules.append((action == "explore", pattern))
    return tuple(rules)


def _refuse_running_loop(workflow: Callable[[], Any]) -> None:
    import sys

    asyncio = sys.modules.get("asyncio")
    if asyncio is None or not inspect.iscoroutinefunction(workflow):
        return
    if asyncio.events._get_running_loop() is not None:
        raise UsageError(
            f"{workflow_name(workflow)} is an async workflow and explore() was called from "
            "inside a running event loop; explore() blocks while it runs the workflow in "
            "loops of its own. Call it from synchronous code, or from async code as "
            "`await asyncio.to_thread(racefree.explore, workflow, ...)`."
        )


def explore(
    workflow: Callable[[], Any],
    *,
    schedules: int = 1000,
    strategy: str | Strategy = "auto",
    seed: int = 0,
    depth: int = 3,
    invariants: Iterable[Invariant] = (),
    check: bool = True,
    keep_going: bool = False,
    latency: str = "any",
    max_steps: int = 20_000,
    replay: Schedule | str | Path | None = None,
    strict: bool = True,
    shrink: bool = True,
    save_dir: str | Path | None = ".racefree/replays",
    time_limit: float | None = None,
    command: Callable[[Path | None, Schedule], str] | None = None,
    on_run: Callable[[int, int, int], None] | None = None,
    target: str | None = None,
    watchdog: float | None = 30.0,
    threads: Iterable[str] = (),
    workers: int = 1,
    shard: tuple[int, int] | str | None = None,
) -> Exploration:
    """Run ``workflow`` under up to ``schedules`` schedules and check every run.

    ``workflow`` takes no arguments (a ``def`` or ``async def``) and returns
    the final state that ``invariants`` (callables returning False or raising
    on a violation: ``AssertionError`` or any other exception, such as the
    ``KeyError`` of a key a race dropped) are checked against. ``strategy`` is
    ``"auto"`` (the default: exhaustive search, PCT and random walk taking
    turns, see :mod:`racefree.explore.strategies.portfolio`), ``"random"``,
    ``"pct"`` (bugs of ``depth``), ``"exhaustive"`` or a :class:`Strategy`.
    ``replay`` (a schedule, its text, or a replay file) runs that one schedule
    instead; ``strict=False`` follows it only as far as
    the workflow allows. ``latency="virtual"`` makes sleeps and model calls end
    in deadline order instead of in any order. Stops at the first failure
    unless ``keep_going``. ``time_limit`` (seconds) bounds the whole
    exploration, shrinking included. ``on_run(done, total, failures)`` is
    called after each run. ``target`` is how the workflow was named to
    racefree (``package.module:function`` or ``script.py:function``): the
    replay file records it instead of where the function is defined.
    A run in progress at the time limit is stopped.

    ``watchdog`` (real seconds, None for never): a run in which no agent
    reaches a scheduling point for that long (blocked in a socket, a lock
    taken before the exploration) ends as a ``blocked`` failure naming the
    agent and its call. ``threads``: rules ``"explore:PATTERN"`` /
    ``"free:PATTERN"`` (a thread's name or a module, wildcards allowed; the
    first match wins) overriding the default, under which a thread that
    library code starts runs free (real time, outside the schedule) and one
    the workflow's code starts is an agent. Ctrl-C raises
    ``KeyboardInterrupt`` saying how far the exploration got, with every
    patch removed and no agent thread left running.

    ``workers`` (default 1): split the runs over that many processes, one CPU
    each, with the same result as one process (the same runs, the same first
    failure, the same counts). ``shard`` (``(i, n)`` with ``1 <= i <= n``, or
    ``"i/n"``): run only share ``i`` of ``n`` of the exploration, so that ``n``
    CI jobs together run all of it. Both need a workflow (and invariants) that
    another process can load by name: a function defined with ``def`` at module
    level, or ``target``. See "Workers and shards" in docs/explorer.md.
    """
    from racefree.explore._target import stop_if_loading

    stop_if_loading()  # a script loaded for a replay reached its own exploration
    if schedules < 1:
        raise UsageError(f"schedules must be at least 1, not {schedules}.")
    if latency not in ("any", "virtual"):
        raise UsageError(f"latency must be 'any' or 'virtual', not {latency!r}.")
    if depth < 1:
        raise UsageError(f"depth must be at least 1, not {depth}.")
    if not callable(workflow):
        raise UsageError(f"The workflow must be a callable with no arguments, not {workflow!r}.")
    if inspect.isgeneratorfunction(workflow) or inspect.isasyncgenfunction(workflow):
        raise UsageError(
            f"{workflow_name(workflow)} is a generator function (it has a yield): calling it "
            "runs none of its body, so there would be nothing to explore. Make it a def or "
            "async def that runs the agents and returns the final state."
        )
    if watchdog is not None and not watchdog > 0:
        raise UsageError(f"watchdog must be a positive number of seconds or None, not {watchdog}.")
    invariants = tuple(invariants)  # an iterator would be used up by the checks below
    _refuse_unfit_callables(workflow, invariants)
    _refuse_running_loop(workflow)
    config = _Config(
        workflow, tuple(invariants), check, latency, max_steps, watchdog, _thread_rules(threads)
    )
    name = target or workflow_name(workflow)
    share = None
    if workers != 1 or shard is not None:
        from racefree.explore import _workers

        share = _workers.parse_shard(shard)
        _workers.refuse_unsplittable(workers, strategy, replay)
        if workers > 1:
            make_strategy(str(strategy), depth=depth)  # an unknown name fails here, not in each
            return _workers.explore_in_workers(
                config,
                name,
                workers=workers,
                share=share,
                schedules=schedules,
                strategy=str(strategy),
                seed=seed,
                depth=depth,
                keep_going=keep_going,
                shrink=shrink,
                save_dir=save_dir,
                time_limit=time_limit,
                command=command,
                on_run=on_run,
                target=target,
            )
    if replay is not None:
        schedule, names, recorded = _as_schedule(replay)
        if recorded is not None:
            _refuse_other_checks(replay, recorded, config)
        replayed = schedule if strict and recorded is None else None
        chosen: Strategy = Replay(schedule.steps, strict=strict, names=names)
        seed, schedules = schedule.seed, 1
    elif isinstance(strategy, Strategy):
        chosen, replayed = strategy, None
    else:
        chosen, replayed = make_strategy(strategy, depth=depth), None
    plan = None
    if share is not None:
        from racefree.explore._workers import Plan

        plan = Plan(chosen, share, schedules)
    result = _explore(
        config,
        name,
        chosen,
        seed=seed,
        schedules=schedules,
        keep_going=keep_going,
        shrink=shrink and replay is None,
        save_dir=save_dir,
        time_limit=time_limit,
        command=command,
        on_run=on_run,
        replaying=replay is not None,
        replayed=replayed,
        plan=plan,
    )
    if replay is not None and isinstance(chosen, Replay) and chosen.diverged_at is not None:
        result.stopped = (
            f"The workflow no longer allows the recorded choice {chosen.diverged_at + 1}; "
            "from there on the run followed natural timing."
        )
    return result


def _explore(
    config: _Config,
    name: str,
    chosen: Strategy,
    *,
    seed: int,
    schedules: int,
    keep_going: bool,
    shrink: bool,
    save_dir: str | Path | None,
    time_limit: float | None,
    command: Callable[[Path | None, Schedule], str] | None,
    on_run: Callable[[int, int, int], None] | None,
    replaying: bool = False,
    replayed: Schedule | None = None,
    plan: Any = None,
    cpu: int | None = None,
) -> Exploration:
    """The exploration loop: runs, checks, reports. ``plan`` (a ``_workers.Plan``) makes
    it run one share of the runs, and tells a parent process how it goes."""
    fair = Fair(chosen, enabled=config.latency == "any")
    fair.begin(seed)
    failures: list[FailureReport] = []
    orderings: set[int] = set()
    verdicts: dict[int, set[bool]] = {}  # ordering -> whether its runs failed
    coverage = _Coverage()
    runs = 0
    stopped = ""
    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit
    numbered = hasattr(chosen, "run_number")  # the strategy numbers its runs (auto's rounds)
    with (
        _exclusive(cpu),
        _latency_diagnosed(config, replayed),
        _interrupted(lambda: (runs, len(failures))),
    ):
        for index in range(schedules) if plan is None else plan.indices():
            if not fair.new_run(index):
                break
            if plan is not None and plan.stop():
                break
            fixed = replaying or fair.fixed_seed()
            number = chosen.run_number if numbered else index  # type: ignore[attr-defined]
            run_seed_value = seed if fixed else _derive_seed(seed, number)
            try:
                run = _run_once(config, fair, index, run_seed_value, deadline)
            except _TimeUp:
                stopped = (
                    f"Stopped at the time limit ({time_limit:g} s), during run {index + 1} "
                    "(not counted)."
                )
                break
            fair.end_run(run.trace, run.failed)
            ordering_of_run = run.ordering()
            if plan is not None and not plan.owned(index, fair):
                continue  # a run another share counts: it only taught the strategy
            runs += 1
            orderings.add(ordering_of_run)
            verdicts.setdefault(ordering_of_run, set()).add(run.failed)
            seen = coverage.add(run)
            if plan is not None:
                plan.record(run, ordering_of_run, seen)
            if run.failed:
                if plan is not None:
                    plan.failed()
                failures.append(
                    _report(
                        config,
                        run,
                        runs if plan is None else plan.found_after(runs),
                        name,
                        shrink,
                        save_dir,
                        command,
                        deadline,
                    )
                )
                if plan is not None:
                    plan.report(failures[-1])
            if on_run is not None:
                on_run(runs, schedules, len(failures))
            if failures and not keep_going:
                break
            if time_limit is not None and time.perf_counter() - start > time_limit:
                stopped = f"Stopped at the time limit ({time_limit:g} s)."
                break
            if plan is not None and runs >= plan.budget:
                break  # a share that walks a tree counts its runs itself
    wall = time.perf_counter() - start
    result = Exploration(
        name,
        chosen.name,
        seed,
        runs,
        len(orderings),
        failures,
        chosen.complete
        and not split_orderings(verdicts.items())
        and not saw_no_state(True, coverage.keys, coverage.agents, coverage.locked),
        wall,
        chosen.summary() if plan is None else plan.summary(),
        stopped,
        keys=sorted(coverage.keys),
        agents=coverage.agents,
        visible_steps=coverage.visible_steps,
        nothing_checked=coverage.nothing_checked(config),
        polls_folded=fair.polls_folded if plan is None else plan.polls_folded,
        orderings=orderings,
        split_orderings=split_orderings(verdicts.items()),
        saw_no_state=saw_no_state(chosen.complete, coverage.keys, coverage.agents, coverage.locked),
    )
    if plan is not None:
        plan.finish(result, coverage)
    return result


@contextlib.contextmanager
def _interrupted(progress: Callable[[], tuple[int, int]]) -> Iterator[None]:
    """Turn a Ctrl-C into a KeyboardInterrupt that says how far the exploration got."""
    try:
        yield
    except KeyboardInterrupt:
        runs, failing = progress()
        raise KeyboardInterrupt(
            f"Interrupted after {runs:,} complete run{'s' if runs != 1 else ''} "
            f"({failing} failing); the run in progress was abandoned and nothing of it kept."
        ) from None


def _derive_seed(seed: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def _report(
    config: _Config,
    run: Run,
    found_after: int,
    name: str,
    shrink: bool,
    save_dir: str | Path | None,
    command: Callable[[Path | None, Schedule], str] | None,
    deadline: float | None = None,
) -> FailureReport:
    original = run.deviations
    # A livelock stays a livelock on any schedule, and every re-run takes max_steps steps.
    if shrink and run.deviations > 0 and run.failures[0].kind != "step-limit":
        with contextlib.suppress(ReplayDivergedError):  # lenient replays do not diverge
            run = _shrink(config, run, deadline=deadline)
    failure = run.failures[0]
    path = None
    found = _locate_run(config, name)
    if save_dir is not None and not found.problems:  # never a file that cannot be replayed
        path = _save_replay(Path(save_dir), found, failure, run, config)
    if command is not None:
        cmd = command(path, run.schedule)
    elif path is not None:
        cmd = f"racefree replay {shlex.quote(str(path))}"
    else:
        cmd = _api_command(config, run.schedule, found, save_dir is not None)
    return FailureReport(failure, run, found_after, original, path, cmd, name)
