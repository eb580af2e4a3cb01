"""Exploration on every core and across machines: worker processes and CI shards.

One partition serves both. The runs of an exploration fall into *units*:

* random walk and PCT: blocks of :data:`~racefree.explore.strategies.pct.BLOCK`
  consecutive run numbers (a run's choices depend only on the seed, its number
  and, for PCT, the runs of block 0 and of its own block, which a share runs);
* exhaustive search: the subtrees below the first decisions of the tree
  (:data:`~racefree.explore.strategies.exhaustive.TOP`), in depth-first order.

A share ``(i, n)`` owns the units ``u`` with ``u % n == i``: ``racefree explore
--shard I/N`` runs one share; ``workers=N`` runs the N shares of the exploration
(or of one shard) in N processes at once, one CPU each, and puts their runs
back in the order one process would have run them. Every run has a *key*,
its place in that order (the run number, or the unit and the run in it), so
the first failure, the budget and the counts are those of one process: the
first failure by key is the one reported, the budget keeps the first
``schedules`` keys, and the distinct orderings are the union of the runs'
fingerprints (every worker hashes with the same seed, so they compare).

A worker is a fresh interpreter (``python -m racefree.explore._workers``), not
a fork: the explorer patches ``threading`` and may hold locks, and a forked
child would inherit both. It loads the workflow and the invariants by their
targets (:mod:`racefree.explore._target`), as a replay does, and speaks JSON
lines over a pipe: the parent sends the exploration and later the key beyond
which nothing is needed (after a failure or when the budget is reached); the
worker sends its progress, each failure's key as soon as it fails, and at the
end its runs (key, ordering fingerprint), its failures as text and
schedules, and its coverage. No user value crosses the pipe: the parent
replays each failure it reports, in its own process, to draw its timeline and
write its replay file.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from racefree.errors import RacefreeError, ReplayDivergedError, UsageError
from racefree.explore.schedule import Schedule
from racefree.explore.strategies.base import Strategy
from racefree.explore.strategies.exhaustive import Exhaustive
from racefree.explore.strategies.pct import BLOCK, PCT
from racefree.explore.strategies.portfolio import Portfolio
from racefree.history import History

if TYPE_CHECKING:
    from racefree.explore.runner import Exploration

__all__ = ["Plan", "explore_in_workers", "parse_shard", "refuse_unsplittable"]

_SPLITTABLE = ("auto", "random", "pct", "exhaustive")
_PROGRESS_EVERY = 0.1  # seconds between a worker's progress messages
_RESULT_FD = "RACEFREE_WORKER_FD"


def parse_shard(shard: tuple[int, int] | str | None) -> tuple[int, int] | None:
    """``(i, n)`` or ``"i/n"`` (1-based, as a CI matrix counts) -> ``(i - 1, n)``."""
    if shard is None:
        return None
    text = shard if isinstance(shard, str) else "/".join(str(part) for part in shard)
    first, slash, second = text.partition("/")
    try:
        index, count = int(first), int(second)
    except ValueError:
        index = count = 0
    if not slash or count < 1 or not 1 <= index <= count:
        raise UsageError(
            f"A shard is I/N with 1 <= I <= N (share I of N CI jobs), not {text!r}; for "
            "example --shard 1/4 (or shard=(1, 4)) in the first of four jobs."
        )
    return index - 1, count


def refuse_unsplittable(workers: int, strategy: object, replay: object) -> None:
    """Workers and shards split a named strategy's runs; anything else is a UsageError."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise UsageError(
            f"workers must be a whole number of processes, 1 or more, not {workers!r}."
        )
    if replay is not None:
        raise UsageError(
            "A replay runs one schedule: it cannot be split over workers or shards. Drop "
            "workers= and shard= to replay it."
        )
    if isinstance(strategy, Strategy):
        raise UsageError(
            "Workers and shards build their strategy by name in each process: pass "
            f"strategy= one of {', '.join(_SPLITTABLE)}, not a Strategy object."
        )


def share_budget(tree: bool, schedules: int, share: tuple[int, int] | None) -> int:
    """How many runs a share counts at most. Run numbers say exactly which runs of
    random walk and PCT are a share's; a tree's units differ in size, and which of a
    share's runs one process would reach within ``schedules`` depends on the sizes of
    the other shares' units, so a shard of a search cut short by the budget counts
    its share of the budget (``ceil(schedules / n)``) in its own units' order."""
    if not tree or share is None:
        return schedules
    return -(-schedules // share[1])


def _share_of_worker(share: tuple[int, int] | None, worker: int, workers: int) -> tuple[int, int]:
    """Worker ``worker`` of ``workers`` running ``share``: units ``u`` with
    ``u % n == i`` and ``(u // n) % workers == worker``, as one share of ``n * workers``."""
    index, count = share or (0, 1)
    return index + count * worker, count * workers


# --- one share, in this process --------------------------------------------------------------


class _Control:
    """A worker's line to its parent: messages out, the key limit in (never blocking)."""

    def __init__(self, out: IO[str], limits: int) -> None:
        self.out = out
        self._limits = limits
        os.set_blocking(limits, False)
        self._pending = b""
        self.limit: int | None = None
        self._sent = 0.0

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def poll(self) -> int | None:
        """The parent's latest limit: no run with a larger key is needed."""
        with contextlib.suppress(BlockingIOError):
            chunk = os.read(self._limits, 4096)
            self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            if line.strip():
                self.limit = int(line)
        return self.limit

    def progress(self, runs: int, failures: int, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._sent >= _PROGRESS_EVERY:
            self._sent = now
            self.send({"t": "progress", "runs": runs, "failures": failures})


class Plan:
    """Which runs of an exploration one share runs and counts, and what it found.

    The runner calls, in order: ``indices()`` (the run numbers to start), then per
    run ``stop()`` (after ``new_run``), ``owned(...)`` (after ``end_run``: False
    for a run another share counts), ``record(...)`` for a counted run, and for a
    counted failing run ``failed()``, ``found_after(runs)`` and ``report(...)``;
    at the end ``summary()`` and ``finish(...)``."""

    def __init__(
        self,
        strategy: Strategy,
        share: tuple[int, int],
        schedules: int,
        control: _Control | None = None,
        budget: int | None = None,
    ) -> None:
        self.strategy = strategy
        self.share = share
        self.schedules = schedules
        self.control = control
        # A tree (or auto's rounds): the strategy says which runs are whose, by key.
        self.tree = isinstance(strategy, Exhaustive | Portfolio)
        #: The most runs this share counts (see ``share_budget``).
        self.budget = share_budget(self.tree, schedules, share) if budget is None else budget
        if isinstance(strategy, Exhaustive | Portfolio):
            strategy.share = share
        self.records: list[tuple[Any, ...]] = []  # see record()
        self.schedule_fingerprints: set[int] = set()
        self.failures: list[dict[str, Any]] = []
        self.polls_folded = 0
        self._polls_seen = 0
        self._index = 0
        self._key = 0
        self._kind = ""
        self._folded = 0
        self._unit_runs: dict[int, int] = {}
        self._unit_open: int | None = None

    def _owns(self, unit: int) -> bool:
        return unit % self.share[1] == self.share[0]

    def indices(self) -> Iterator[int]:
        if self.tree:  # the strategy says when the tree is done; the runner counts runs
            index = 0
            while True:
                self._index = index
                yield index
                index += 1
        warm_up = isinstance(self.strategy, PCT)
        for block in range(-(-self.schedules // BLOCK)):
            if self._owns(block) or (block == 0 and warm_up):
                for index in range(block * BLOCK, min((block + 1) * BLOCK, self.schedules)):
                    self._index = index
                    yield index

    def _next_key(self) -> int:
        if isinstance(self.strategy, Exhaustive | Portfolio):
            return self.strategy.next_key
        return self._index

    def stop(self) -> bool:
        if self.control is None:
            return False
        limit = self.control.poll()
        return limit is not None and self._next_key() > limit

    def owned(self, index: int, fair: Any) -> bool:
        """After ``end_run``: whether this share counts the run (else it only taught the
        strategy what the share's own runs need)."""
        folded, self._polls_seen = fair.polls_folded - self._polls_seen, fair.polls_folded
        if isinstance(self.strategy, Exhaustive | Portfolio):
            key, owned, kind = (
                self.strategy.last_key,
                self.strategy.last_owned,
                self.strategy.last_kind,
            )
        else:
            key, owned, kind = index, self._owns(index // BLOCK), self.strategy.name
        self._key, self._kind, self._folded = key, kind, folded
        return owned

    def record(self, run: Any, ordering: int, seen: tuple[int, int, int]) -> None:
        """Keep what the run adds to the counts, so that they can be cut where one process
        would have stopped: (key, ordering, kind, polls folded, PCT decisions, agents,
        visible steps, recorded accesses, failed)."""
        key, kind = self._key, self._kind
        self.polls_folded += self._folded
        decisions = self._pct()._decisions if kind == "pct" else 0
        self.records.append((key, ordering, kind, self._folded, decisions, *seen, run.failed))
        self.schedule_fingerprints.add(hash(run.schedule))
        if self.control is not None:
            self._count_unit(key >> 32 if self.tree else -1)
            self.control.progress(len(self.records), len(self.failures))

    def _count_unit(self, unit: int) -> None:
        """Tell the parent each tree unit's size when the share leaves it (for the budget)."""
        if self._unit_open is not None and unit != self._unit_open:
            self._close_unit()
        self._unit_open = unit
        self._unit_runs[unit] = self._unit_runs.get(unit, 0) + 1

    def _close_unit(self) -> None:
        if self.tree and self.control is not None and self._unit_open is not None:
            unit = self._unit_open
            self.control.send({"t": "unit", "unit": unit - 1, "runs": self._unit_runs[unit]})

    def failed(self) -> None:
        if self.control is not None:
            self.control.send({"t": "fail", "key": self._key})

    def found_after(self, runs: int) -> int:
        """The failing run's number as one process counts: exact for run numbers; a tree
        share counts its own runs (the parent of workers counts the whole tree)."""
        return runs if self.tree else self._key + 1

    def report(self, found: Any) -> None:
        self.failures.append(
            {
                "key": self._key,
                "schedule": found.run.schedule.encode(),
                "original_deviations": found.original_deviations,
                "failure": found.failure.to_json(),
                "names": {str(k): v for k, v in found.run.names.items()},
            }
        )

    def summary(self) -> list[str]:
        return _summary(
            self.strategy.name,
            self.records,
            self._failure_keys(),
            finished=self.strategy.complete,
            restarted=self._searcher().restarted,
            dropped=getattr(self.strategy, "dropped", ""),
            depth=self._pct().depth,
        )

    def _failure_keys(self) -> list[int]:
        return [f["key"] for f in self.failures]

    def _searcher(self) -> Exhaustive:
        strategy = self.strategy
        if isinstance(strategy, Portfolio):
            return strategy.exhaustive
        return strategy if isinstance(strategy, Exhaustive) else Exhaustive()

    def _pct(self) -> PCT:
        strategy = self.strategy
        if isinstance(strategy, Portfolio):
            return strategy.pct
        return strategy if isinstance(strategy, PCT) else PCT()

    def finish(self, result: Any, coverage: Any) -> None:
        result.shard = self.share
        result.schedule_fingerprints = self.schedule_fingerprints
        if self.control is None:
            return
        self._close_unit()
        strategy = self.strategy
        self.control.send(
            {
                "t": "done",
                "records": self.records,
                "failures": self.failures,
                "finished": strategy.complete,
                "restarted": self._searcher().restarted,
                "dropped": getattr(strategy, "dropped", ""),
                "keys": sorted(coverage.keys),
                "locked": coverage.locked,
                "stopped": result.stopped,
                "wall": result.wall_seconds,
            }
        )


# --- the worker process -------------------------------------------------------------------


def _rules_text(rules: Any) -> list[str]:
    return [f"{'explore' if explore else 'free'}:{pattern}" for explore, pattern in rules]


def _worker_main() -> int:
    """A worker: read the exploration from stdin, run its share, send the outcome."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    out = os.fdopen(int(os.environ[_RESULT_FD]), "w", encoding="utf-8")
    spec = json.loads(sys.stdin.buffer.readline())
    control = _Control(out, sys.stdin.fileno())
    try:
        _run_share(spec, control)
    except RacefreeError as exc:
        control.send({"t": "error", "kind": type(exc).__name__, "message": str(exc)})
    return 0


def _run_share(spec: dict[str, Any], control: _Control) -> None:
    from racefree.explore import runner
    from racefree.explore._cli import load_invariant, load_workflow

    sys.path[:] = spec["sys_path"]
    os.chdir(spec["cwd"])
    workflow = load_workflow(spec["workflow"], spec["argv"], cwd=spec["cwd"])
    invariants = [load_invariant(t, spec["argv"], cwd=spec["cwd"]) for t in spec["invariants"]]
    config = runner._Config(
        workflow,
        tuple(invariants),
        spec["check"],
        spec["latency"],
        spec["max_steps"],
        spec["watchdog"],
        runner._thread_rules(spec["threads"]),
    )
    chosen = runner.make_strategy(spec["strategy"], depth=spec["depth"])
    index, count = spec["share"]
    plan = Plan(chosen, (index, count), spec["schedules"], control, spec["budget"])
    runner._explore(
        config,
        spec["name"],
        chosen,
        seed=spec["seed"],
        schedules=spec["schedules"],
        keep_going=spec["keep_going"],
        shrink=spec["shrink"],
        save_dir=None,
        time_limit=spec["time_limit"],
        command=lambda path, schedule: "",
        on_run=None,
        plan=plan,
        cpu=spec["worker"],
    )


# --- the parent -----------------------------------------------------------------------------


class _Worker:
    def __init__(self, number: int, process: subprocess.Popen[bytes], results: int) -> None:
        self.number = number
        self.process = process
        self.results = results  # the read end of the worker's message pipe
        self.runs = 0
        self.failures = 0
        self.done: dict[str, Any] | None = None
        self.buffer: list[bytes] = []


def _spec(config: Any, name: str, target: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """What a worker needs to run the exploration, as JSON; a workflow or invariant no
    other process can load is a UsageError saying what to do."""
    from racefree.explore import runner

    found = runner._locate_run(config, name)
    if target is not None:  # how the caller named it: what a worker loads, whatever it is
        found.workflow = target
        found.problems = [p for p in found.problems if not p.startswith("the workflow ")]
    if found.problems:
        raise UsageError(
            f"workers={options['workers']} runs the exploration in other processes, which "
            f"load the workflow and its invariants by name, and {'; '.join(found.problems)}: "
            "define it with def at module level (or in a script), or pass workers=1."
        )
    return {
        "name": name,
        "workflow": found.workflow,
        "argv": found.argv,
        "invariants": found.invariants,
        "cwd": str(Path.cwd()),
        "sys_path": list(sys.path),
        "check": config.check,
        "latency": config.latency,
        "max_steps": config.max_steps,
        "watchdog": config.watchdog,
        "threads": _rules_text(config.threads),
        **{k: v for k, v in options.items() if k != "workers"},
    }


def _start(number: int, spec: dict[str, Any]) -> _Worker:
    read, write = os.pipe()
    env = dict(os.environ)
    env[_RESULT_FD] = str(write)
    # Every worker hashes orderings alike, so the parent can take the union of their sets.
    env["PYTHONHASHSEED"] = "0"
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "racefree.explore._workers"],
        stdin=subprocess.PIPE,
        pass_fds=(write,),
        env=env,
        cwd=spec["cwd"],
    )
    os.close(write)
    assert process.stdin is not None
    process.stdin.write((json.dumps(spec) + "\n").encode())
    process.stdin.flush()
    return _Worker(number, process, read)


def _stop_all(workers: list[_Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.kill()
    for worker in workers:
        worker.process.wait()
        with contextlib.suppress(OSError):
            os.close(worker.results)
        if worker.process.stdin is not None:
            with contextlib.suppress(OSError):
                worker.process.stdin.close()


def _send_limit(workers: list[_Worker], limit: int) -> None:
    for worker in workers:
        if worker.done is None and worker.process.stdin is not None:
            with contextlib.suppress(OSError):
                worker.process.stdin.write(f"{limit}\n".encode())
                worker.process.stdin.flush()


class _Budget:
    """The key of the last run one process would run within ``schedules``, once the
    sizes of the tree's first units are known (so workers can stop early)."""

    def __init__(self, schedules: int) -> None:
        self.schedules = schedules
        self.sizes: dict[int, int] = {}

    def limit(self) -> int | None:
        total = self.sizes.get(-1, 0)  # the warm-up run, counted before every unit
        unit = 0
        while unit in self.sizes:
            if total + self.sizes[unit] >= self.schedules:
                return ((unit + 1) << 32) | (self.schedules - total - 1)
            total += self.sizes[unit]
            unit += 1
        return None


def _gather(
    workers: list[_Worker],
    *,
    keep_going: bool,
    tree: bool,
    schedules: int,
    on_run: Callable[[int, int, int], None] | None,
) -> None:
    """Read every worker's messages until all are done; send limits as failures come.

    The pipes are read raw (no buffered reader): a line waiting in a reader's buffer
    would not wake the selector, and a failure's key must reach the others at once."""
    selector = selectors.DefaultSelector()
    for worker in workers:
        selector.register(worker.results, selectors.EVENT_READ, worker)
    limits = _Limits(workers, keep_going, tree, schedules)
    open_workers = len(workers)
    while open_workers:
        for event, _ in selector.select():
            worker = event.data
            chunk = os.read(worker.results, 1 << 16)
            if not chunk:
                selector.unregister(worker.results)
                open_workers -= 1
                worker.process.wait()
                if worker.done is None:
                    raise RacefreeError(
                        f"Exploration worker {worker.number + 1} ended (exit status "
                        f"{worker.process.returncode}) before it finished its share; its "
                        "output, above, says why."
                    )
                continue
            worker.buffer.append(chunk)
            if b"\n" not in chunk:
                continue  # the end of a worker's runs can be one long line: join it once
            *lines, rest = b"".join(worker.buffer).split(b"\n")
            worker.buffer = [rest]
            for line in lines:
                kind = limits.take(worker, json.loads(line))
                if on_run is not None and kind in ("progress", "done"):
                    runs = sum(w.runs for w in workers)
                    on_run(runs, schedules, sum(w.failures for w in workers))
    selector.close()


class _Limits:
    """The parent's side of the messages: the key beyond which no run is needed."""

    def __init__(self, workers: list[_Worker], keep_going: bool, tree: bool, schedules: int):
        self.workers = workers
        self.keep_going = keep_going
        self.tree = tree
        self.budget = _Budget(schedules)
        self.limit: int | None = None

    def take(self, worker: _Worker, message: dict[str, Any]) -> str:
        kind = str(message["t"])
        reached = None
        if kind == "progress":
            worker.runs, worker.failures = message["runs"], message["failures"]
        elif kind == "fail" and not self.keep_going:
            reached = message["key"]
        elif kind == "unit" and self.tree:
            self.budget.sizes[message["unit"]] = message["runs"]
            reached = self.budget.limit()
        elif kind == "done":
            worker.done = message
            worker.runs = len(message["records"])
            worker.failures = len(message["failures"])
        elif kind == "error":
            error = ReplayDivergedError if message["kind"] == "ReplayDivergedError" else None
            raise (error or UsageError)(message["message"])
        if reached is not None and (self.limit is None or reached < self.limit):
            self.limit = reached
            _send_limit(self.workers, reached)
        return kind


def explore_in_workers(
    config: Any,
    name: str,
    *,
    workers: int,
    share: tuple[int, int] | None,
    schedules: int,
    strategy: str,
    seed: int,
    depth: int,
    keep_going: bool,
    shrink: bool,
    save_dir: str | Path | None,
    time_limit: float | None,
    command: Callable[[Path | None, Schedule], str] | None,
    on_run: Callable[[int, int, int], None] | None,
    target: str | None,
) -> Exploration:
    """Run the exploration (or ``share`` of it) over ``workers`` processes and return
    the :class:`Exploration` one process would have returned."""
    from racefree.explore import runner

    start = time.perf_counter()
    budget = share_budget(strategy in ("exhaustive", "auto"), schedules, share)
    spec = _spec(
        config,
        name,
        target,
        {
            "workers": workers,
            "budget": budget,
            "schedules": schedules,
            "strategy": strategy,
            "seed": seed,
            "depth": depth,
            "keep_going": keep_going,
            "shrink": shrink,
            "time_limit": time_limit,
        },
    )
    started: list[_Worker] = []
    done_runs = [0]
    failing = [0]
    with runner._interrupted(lambda: (done_runs[0], failing[0])):
        try:
            for number in range(workers):
                spec_of = {
                    **spec,
                    "share": _share_of_worker(share, number, workers),
                    "worker": number,
                }
                started.append(_start(number, spec_of))

            def progress(done: int, total: int, failures: int) -> None:
                done_runs[0], failing[0] = done, failures
                if on_run is not None:
                    on_run(done, total, failures)

            _gather(
                started,
                keep_going=keep_going,
                tree=strategy in ("exhaustive", "auto"),
                schedules=budget,
                on_run=progress,
            )
        finally:
            _stop_all(started)  # none is left behind: not after an error, not after Ctrl-C
    outcomes = [w.done for w in started if w.done is not None]
    return _assemble(
        config,
        name,
        outcomes,
        strategy=strategy,
        seed=seed,
        depth=depth,
        schedules=budget,
        keep_going=keep_going,
        share=share,
        workers=workers,
        save_dir=save_dir,
        command=command,
        start=start,
        time_limit=time_limit,
    )


def _assemble(
    config: Any,
    name: str,
    outcomes: list[dict[str, Any]],
    *,
    strategy: str,
    seed: int,
    depth: int,
    schedules: int,
    keep_going: bool,
    share: tuple[int, int] | None,
    workers: int,
    save_dir: str | Path | None,
    command: Callable[[Path | None, Schedule], str] | None,
    start: float,
    time_limit: float | None,
) -> Exploration:
    """The workers' runs put back in one process's order, cut where it would stop."""
    from racefree.explore import runner

    everything = sorted(tuple(r) for o in outcomes for r in o["records"])
    kept = everything[:schedules]
    failures = sorted(
        (f for o in outcomes for f in o["failures"] if kept and f["key"] <= kept[-1][0]),
        key=lambda f: f["key"],
    )
    if failures and not keep_going:
        failures = failures[:1]
        kept = [r for r in kept if r[0] <= failures[0]["key"]]
    keys = [r[0] for r in kept]
    # The search is over in one process's order when every share finished its part and
    # none of the search's runs fell after the cut.
    searched = [r[0] for r in everything if strategy == "exhaustive" or r[2].startswith("exh")]
    last = kept[-1][0] if kept else -1
    finished = (
        strategy in ("exhaustive", "auto")
        and all(o["finished"] for o in outcomes)
        and all(key <= last for key in searched)
    )
    summary = _summary(
        strategy,
        kept,
        [f["key"] for f in failures],
        finished=finished,
        restarted=any(o["restarted"] for o in outcomes),
        dropped=next((o["dropped"] for o in outcomes if o["dropped"]), ""),
        depth=depth,
    )
    coverage = runner._Coverage()
    # The shared keys are those of every run the workers counted, a few past the cut
    # included; the numbers are those of the runs kept.
    coverage.keys = {k for o in outcomes for k in o["keys"]}
    coverage.agents = max((r[5] for r in kept), default=0)
    coverage.visible_steps = max((r[6] for r in kept), default=0)
    coverage.accesses = sum(r[7] for r in kept)
    reports = [
        _replayed_report(
            config,
            name,
            found,
            bisect.bisect_right(keys, found["key"]),
            save_dir,
            command,
            time_limit,
            start,
        )
        for found in failures
    ]
    stopped = next((o["stopped"] for o in outcomes if o["stopped"]), "")
    verdicts: dict[int, set[bool]] = {}
    for record in kept:
        verdicts.setdefault(record[1], set()).add(record[8])
    split = runner.split_orderings(verdicts.items())
    coverage.locked = any(o["locked"] for o in outcomes)
    blind = runner.saw_no_state(finished, coverage.keys, coverage.agents, coverage.locked)
    return runner.Exploration(
        name,
        strategy,
        seed,
        len(kept),
        len({r[1] for r in kept}),
        reports,
        finished and not split and not blind,
        time.perf_counter() - start,
        summary,
        stopped,
        keys=sorted(coverage.keys),
        agents=coverage.agents,
        visible_steps=coverage.visible_steps,
        nothing_checked=coverage.nothing_checked(config),
        polls_folded=sum(r[3] for r in kept),
        shard=share,
        workers=workers,
        orderings={r[1] for r in kept},
        split_orderings=split,
        saw_no_state=blind,
    )


def _summary(
    strategy: str,
    records: list[tuple[Any, ...]],
    failure_keys: list[int],
    *,
    finished: bool,
    restarted: bool,
    dropped: str,
    depth: int,
) -> list[str]:
    """The strategy's summary lines for these runs (one share's, or all put together)."""
    kinds = [record[2] for record in records]
    pct = PCT(depth=depth)
    pct.max_decisions = max((r[4] for r in records if r[2] == "pct"), default=0)
    pct.max_agents = max((r[5] for r in records if r[2] == "pct"), default=0)
    if strategy == "pct":
        return pct.summary()
    if strategy == "random":
        return []
    prefix = "exhaustive:" if strategy == "auto" else ""
    search = Exhaustive.merged(
        kinds.count(f"{prefix}distinct"), kinds.count(f"{prefix}redundant"), finished, restarted
    )
    if strategy == "exhaustive":
        return search.summary()
    runs_by = {
        "exhaustive": sum(1 for k in kinds if k.startswith("exhaustive")),
        "pct": kinds.count("pct"),
        "random": kinds.count("random"),
    }
    found_by = None
    if failure_keys:
        first = min(failure_keys)
        member = next(r[2] for r in records if r[0] == first).partition(":")[0]
        nth = sum(1 for r in records if r[0] <= first and r[2].startswith(member))
        found_by = (member, nth)
    return Portfolio.merged(pct.depth, runs_by, found_by, dropped, search, pct).summary()


def _replayed_report(
    config: Any,
    name: str,
    found: dict[str, Any],
    found_after: int,
    save_dir: str | Path | None,
    command: Callable[[Path | None, Schedule], str] | None,
    time_limit: float | None,
    start: float,
) -> Any:
    """A worker's failure replayed here, from its schedule, for the timeline and the
    replay file (the worker sent text and a schedule, never the run's values)."""
    from racefree.explore import runner
    from racefree.explore.strategies.fair import Fair
    from racefree.explore.strategies.replay import Replay

    schedule = Schedule.decode(found["schedule"])
    names = {int(k): v for k, v in found["names"].items()}
    replay = Fair(Replay(schedule.steps, strict=True, names=names), enabled=config.latency == "any")
    replay.new_run(0)
    with runner._exclusive():
        try:
            run = runner._run_once(config, replay, found_after - 1, schedule.seed)
        except ReplayDivergedError:
            run = None
    told = found["failure"]
    said = runner.Failure(told["kind"], told["title"], list(told["details"]), told["name"])
    if run is None:
        run = runner.Run(found_after - 1, schedule, [], History([]), None, [said], names, 0.0)
    elif not run.failed:
        run.failures = [said]  # the worker saw it fail; the report says what it saw
    report = runner._report(config, run, found_after, name, False, save_dir, command)
    report.original_deviations = found["original_deviations"]
    return report


if __name__ == "__main__":
    sys.exit(_worker_main())
