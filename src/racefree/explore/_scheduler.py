"""The controlled scheduler: one agent runs at a time, a strategy picks the next.

Every agent of an explored run is a real OS thread (the workflow's own
thread, threads it starts, thread-pool workers, ``asyncio.to_thread``
workers) or an asyncio task on a :class:`~racefree.explore._loop.ControlledLoop`.
Exactly one thread holds the *baton*; all others are parked on their own
lock. When the running thread reaches a scheduling point it ends its current
:class:`Step`, the scheduler lists the candidates that could run next, asks
the strategy when there are two or more, and hands the baton over. A run is
therefore a function of the workflow and the choices made.

Time is virtual: ``time.sleep`` and asyncio timers advance a clock instead of
waiting. With ``latency="any"`` (the default) a sleep or a pending model call
may end at any moment, so its ordering against other agents is explored;
with ``latency="virtual"`` they end in deadline order, as on an idle machine.
Blocking waits with a timeout (``Event.wait(5)``, ``queue.get(timeout=5)``)
time out only when no agent can otherwise make progress.

The workflow's own thread is a carrier too: the thread that called
:meth:`Scheduler.run` only watches, in real time. It ends a run that makes no
progress (an agent blocked in a call the explorer does not control), a run
past the exploration's deadline, and a run the user interrupts (Ctrl-C lands
in the watcher, never in an agent's code), and unwinds every agent it can.

Threads started by library code (stdlib or installed packages) run free:
real primitives, real time, outside the schedule. A :class:`VLock` is a
virtual lock for the agents of the run that uses it and a real lock for every
other thread, and it follows its user into later runs, so a lock made in one
run and kept in a module global works everywhere.
"""

from __future__ import annotations

import _thread
import contextlib
import contextvars
import fnmatch
import linecache
import operator
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NoReturn

from racefree import hooks
from racefree.explore.schedule import Choice
from racefree.explore.strategies.base import (
    CLOCK_MOVED,
    CLOCK_READ,
    Candidate,
    Decision,
    Step,
    Strategy,
    call_site,
)

if TYPE_CHECKING:
    import asyncio

    from racefree.explore._loop import ControlledLoop
    from racefree.history import Event

__all__ = ["Abort", "Scheduler"]

_get_ident = _thread.get_ident
# Candidate (a NamedTuple) made by tuple.__new__: its own __new__ is a Python function.
_candidate = tuple.__new__
_first = operator.itemgetter(0)
_second = operator.itemgetter(1)
_new_lock = _thread.allocate_lock
_start_new_thread = _thread.start_new_thread
_real_sleep = time.sleep
_real_clock = time.perf_counter

RUN, LOCK, JOIN, ALL, IDLE, DONE, GUARD = range(7)
# kind -> does an access of that kind write its key (hooks.is_read, asked once a kind)
_WRITES: dict[str, bool] = {}
_INF = float("inf")


class _Carrier:
    """A reusable OS thread that runs one agent at a time (starting threads is slow)."""

    __slots__ = ("generation", "go", "job")

    def __init__(self) -> None:
        self.go = _new_lock()
        self.go.acquire()
        self.job: tuple[Callable[..., None], tuple[Any, ...]] | None = None
        self.generation = _generation[0]


_idle: list[_Carrier] = []
_pool = _new_lock()
_generation = [0]


def _carrier_main(carrier: _Carrier) -> None:
    while True:
        job, carrier.job = carrier.job, None
        if job is None:
            return  # retired
        with contextlib.suppress(BaseException):  # _boot catches everything itself
            job[0](*job[1])
        with _pool:
            if carrier.generation != _generation[0]:
                return  # retired while it worked
            _idle.append(carrier)
        carrier.go.acquire()


def _carry(fn: Callable[..., None], args: tuple[Any, ...]) -> None:
    """Run ``fn(*args)`` on an idle carrier thread, or on a new one."""
    try:
        carrier = _idle.pop()
    except IndexError:
        carrier = _Carrier()
        carrier.job = (fn, args)
        _start_new_thread(_carrier_main, (carrier,))
        return
    carrier.job = (fn, args)
    carrier.go.release()


def retire_carriers() -> None:
    """End every idle carrier thread (at the end of an exploration: no thread left behind).

    A carrier still busy (an agent blocked in a call the explorer does not
    control) ends as soon as its call returns."""
    with _pool:
        _generation[0] += 1
        idle = _idle[:]
        _idle.clear()
    for carrier in idle:
        carrier.job = None
        carrier.go.release()


# --- one CPU -------------------------------------------------------------------------

# The agents of a run take turns, never run at once, so the exploration's threads
# lose nothing by sharing one CPU, and every handoff of the baton gains: waking a
# thread parked on the same CPU costs a few microseconds, waking one on another
# CPU (an inter-processor interrupt, often out of an idle state) ten times that.
# Threads and processes inherit the mask of the thread that starts them, so pinning
# the exploring thread pins every carrier it starts; free threads are started with
# the mask the program had (see Scheduler.start_free).
#
# On that one CPU, a thread woken by a handoff would preempt the thread that woke it
# (which still holds the GIL), find the GIL taken, and sleep again until the waker
# parks: three context switches per handoff instead of one. The batch policy
# (SCHED_BATCH: the same share of the CPU, but a woken thread waits for the running
# one to block or for the tick instead of preempting it) makes it one, and a handoff
# costs about half as much. Threads inherit it as they inherit the mask; free threads
# start with the program's policy, and it is given back when the exploration ends.
PIN_CPU = True
BATCH_POLICY = True
_unpinned: list[set[int]] = []  # the mask before the exploration, while one is pinned
# The policy (and its parameters) before the exploration, while the batch policy is on.
_unbatched: list[tuple[int, Any]] = []


def _current_cpu(allowed: set[int]) -> int:
    """The CPU this thread last ran on (Linux), so a busy machine keeps its balance."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        cpu = int(fields[36])  # field 39, "processor", counted after the name
    except (OSError, ValueError, IndexError):
        return min(allowed)
    return cpu if cpu in allowed else min(allowed)


@contextlib.contextmanager
def on_one_cpu(cpu: int | None = None) -> Iterator[None]:
    """Run the calling thread, and every thread it starts meanwhile, on one CPU, under
    the batch scheduling policy (see above).

    ``cpu`` picks one of the allowed CPUs by position (an exploration worker
    process takes its own); by default the one this thread runs on. Without
    ``os.sched_setaffinity`` (not Linux) nothing changes; with one CPU allowed,
    only the policy."""
    setaffinity = getattr(os, "sched_setaffinity", None)
    if not PIN_CPU or setaffinity is None or _unpinned:
        yield
        return
    try:
        allowed = os.sched_getaffinity(0)
    except OSError:
        allowed = set()
    if len(allowed) < 2:  # one CPU already: the batch policy still saves the bounces
        batched = _batch_policy()
        try:
            yield
        finally:
            if batched is not None:
                _unbatched.clear()
                _set_policy(batched)
        return
    choice = sorted(allowed)[cpu % len(allowed)] if cpu is not None else _current_cpu(allowed)
    try:
        setaffinity(0, {choice})
    except OSError:
        yield
        return
    _unpinned.append(allowed)
    batched = _batch_policy()
    try:
        yield
    finally:
        _unpinned.clear()
        if batched is not None:
            _unbatched.clear()
            _set_policy(batched)
        with contextlib.suppress(OSError):
            setaffinity(0, allowed)


def _batch_policy() -> tuple[int, Any] | None:
    """Put this thread under SCHED_BATCH (see above); the policy it had, or None if
    nothing changed (no such policy here, a real-time or batch policy already, refused)."""
    batch = getattr(os, "SCHED_BATCH", None)
    if not BATCH_POLICY or batch is None or not hasattr(os, "sched_setscheduler"):
        return None
    try:
        policy = os.sched_getscheduler(0)
        if policy != os.SCHED_OTHER:
            return None  # the program chose a policy of its own: keep it
        param = os.sched_getparam(0)
        os.sched_setscheduler(0, batch, os.sched_param(0))
    except OSError:
        return None
    _unbatched.append((policy, param))
    return policy, param


def _set_policy(saved: tuple[int, Any]) -> None:
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, saved[0], saved[1])


@contextlib.contextmanager
def _with_program_mask() -> Iterator[None]:
    """Start a thread that runs free with the CPUs (and the scheduling policy) the program
    had, not the explorer's."""
    if not _unpinned and not _unbatched:
        yield
        return
    mine = None
    if _unpinned:
        mine = os.sched_getaffinity(0)
        os.sched_setaffinity(0, _unpinned[0])
    policy = None
    if _unbatched:
        with contextlib.suppress(OSError):
            policy = (os.sched_getscheduler(0), os.sched_getparam(0))
            _set_policy(_unbatched[0])
    try:
        yield
    finally:
        if mine is not None:
            os.sched_setaffinity(0, mine)
        if policy is not None:
            _set_policy(policy)


# --- who is library code -------------------------------------------------------------

_STDLIB = os.path.dirname(threading.__file__)
_RACEFREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def is_library(filename: str) -> bool:
    """True for the standard library and installed packages (not racefree, not user code)."""
    if filename.startswith(_RACEFREE + os.sep):
        return False
    return (
        filename.startswith((_STDLIB, "<frozen"))
        or "site-packages" in filename
        or "dist-packages" in filename
    )


def user_frame(frame: Any) -> Any:
    """The innermost frame of user code in a stack (the library frame if there is none)."""
    innermost = frame
    while frame is not None:
        name = frame.f_code.co_filename
        if not is_library(name) and not name.startswith(_RACEFREE + os.sep):
            return frame
        frame = frame.f_back
    return innermost


ThreadRule = tuple[bool, str]
"""(explore it?, pattern): a pattern matches a thread's name or a module (see ``threads=``)."""


def _rule_matches(pattern: str, name: str, modules: Sequence[str]) -> bool:
    if fnmatch.fnmatchcase(name, pattern):
        return True
    return any(
        module == pattern
        or module.startswith(pattern + ".")
        or fnmatch.fnmatchcase(module, pattern)
        for module in modules
        if module
    )


def _importing(frame: Any) -> str | None:
    """The module a thread waits to import, when it waits on the import system's lock."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename == "<frozen importlib._bootstrap>" and code.co_name == "acquire":
            outer = frame.f_back
            while outer is not None:
                if outer.f_code.co_name in ("_find_and_load", "_lock_unlock_module"):
                    module = outer.f_locals.get("name")
                    return str(module) if module else None
                outer = outer.f_back
            return None
        frame = frame.f_back
    return None


class Abort(BaseException):
    """Raised inside an agent to unwind it when a run is abandoned (deadlock, step limit)."""


# How long the watcher waits for the agents of a stopped run to unwind before it
# leaves the one that does not (blocked in a call nobody can interrupt) behind.
_GRACE = 1.0
# When no agent can run but free threads are alive: how long to wait for one of them
# to touch a primitive of the run, and how long they must all sit idle to be believed.
_FREE_PATIENCE = 2.0
_IDLE_SETTLE = 0.1
_THREADING_PY = threading.__file__
_SELECTORS_PY = __import__("selectors").__file__


def _free_threads_idle(threads: Sequence[threading.Thread]) -> bool:
    """Does every one of ``threads`` sit in a wait with no timeout (Condition.wait, an
    event loop's select)? Then none of them will act unless an agent asks it to."""
    frames = sys._current_frames()
    for thread in threads:
        frame = frames.get(thread.ident)  # type: ignore[arg-type]
        if frame is None:
            continue
        code = frame.f_code
        if code.co_name == "wait" and code.co_filename == _THREADING_PY:
            timeout = frame.f_locals.get("timeout")
        elif code.co_name == "select" and code.co_filename == _SELECTORS_PY:
            timeout = frame.f_locals.get("timeout")
            timeout = None if timeout is not None and timeout < 0 else timeout
        else:
            return False
        if timeout is not None:
            return False
    return True


class Agent:
    """One controlled OS thread."""

    __slots__ = (
        "daemon",
        "fire",
        "id",
        "ident",
        "key",
        "kind",
        "loop",
        "name",
        "option",
        "ordinal",
        "park",
        "ready_at",
        "run",
        "state",
        "stuck",
        "timed_out",
        "timeout_at",
        "wait",
    )

    def __init__(
        self, run: Scheduler, ordinal: int, name: str, thread: threading.Thread | None
    ) -> None:
        self.run = run
        self.daemon = thread is not None and thread.daemon
        self.stuck = False
        self.ordinal = ordinal
        self.id: Choice = (ordinal, 0)  # its choice id when it runs (a loop's tasks have more)
        self.name = name
        self.park = _new_lock()
        self.park.acquire()
        self.state = RUN
        self.kind = "start"
        self.key: str | None = None
        self.ready_at = 0.0
        self.timeout_at: float | None = None
        self.timed_out = False
        self.wait: Any = None
        self.loop: ControlledLoop | None = None
        self.fire: asyncio.TimerHandle | None = None
        self.ident: int | None = None
        # Its entry in the scheduler's options while it runs or is ready to: rebuilt only
        # when it changed, which only its own step or the decision that chose it can do.
        self.option: tuple[float, Candidate, Agent, Any] | None = None


class VLock:
    """A ``threading.Lock`` / ``RLock`` made during an exploration.

    For the agents of the run that uses it, its waits are scheduling decisions.
    For any other thread (a free thread, a later run's leftover, the program
    after ``explore()`` returns) it is a real lock: ``_real`` is held whenever
    anyone holds the lock, so agents and free threads exclude each other. An
    agent granted the lock while a free thread holds ``_real`` waits for it in
    real time, keeping the baton, so the schedule does not depend on when the
    free thread lets go. First used in a later run, it is bound to that run and keeps
    its name (``_rebind``): a module-level lock made lazily in run 1 works in run 2.
    """

    __slots__ = (
        "__weakref__",
        "_count",
        "_depth",
        "_holder",
        "_owner",
        "_real",
        "_reentrant",
        "_run",
        "bookkeeping",
        "internal",
        "key",
        "library",
    )

    def __init__(
        self, sched: Scheduler, reentrant: bool = False, made_by: str = "", site: str = ""
    ) -> None:
        self._run = sched
        self._real = _new_lock()
        self.bookkeeping = made_by == "bookkeeping"
        self.internal = made_by in ("internal", "bookkeeping")
        self.library = made_by == "library"  # drawn only in a verbose timeline
        self._owner: Agent | None = None  # the agent holding it (virtually)
        self._count = 0  # that agent's re-entries
        self._holder: int | None = None  # the free thread holding it (its ident)
        self._depth = 0  # that thread's re-entries
        self._reentrant = reentrant
        kind = "rlock" if reentrant else "lock"
        prefix = "internal-" if self.internal else "lib-" if self.library else ""
        self.key = f"{prefix}{kind}#{sched.lock_name(site)}"

    def _rebind(self, sched: Scheduler) -> None:
        """First use in a later run: no agent of the old run holds it. It keeps its name,
        so that the steps of every run that take it are known to take the same lock.

        A hold an abandoned run left (its agents were unwound mid-way) is dropped
        with it; one a finished run left stays, as a real lock stays locked when
        the thread that held it ends."""
        old, self._run = self._run, sched
        if self._owner is not None:
            self._owner, self._count = None, 0
            if old.aborting and self._holder is None and self._real.locked():
                self._real.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        sched: Scheduler | None = hooks._scheduler  # type: ignore[assignment]
        me = None if sched is None else sched.by_ident.get(_get_ident())
        if me is None:
            return self._acquire_outside(blocking, timeout)
        run = me.run
        if self._run is not run:
            self._rebind(run)
        owner = self._owner
        if owner is None and self.bookkeeping and not run.aborting:
            # A free Future condition guards a few lines of bookkeeping: taking it is
            # not a switch point (waiting on the Future still is), but it still orders
            # the steps that take it, which partial-order reduction needs to know.
            self._owner, self._count = me, 1
            run.touch(self.key)
        elif owner is me and self._reentrant:
            self._count += 1
            return True
        elif run.aborting:
            return self._acquire_unwinding(me)
        elif not run.acquire(me, self, blocking, timeout):
            return False
        if self._real.acquire(False):
            return True
        return self._take_real(blocking, timeout)

    def _take_real(self, blocking: bool, timeout: float | None) -> bool:
        """The agent owns the lock virtually, but a thread outside the run holds ``_real``:
        wait for it in real time, keeping the baton (no scheduling decision depends on it)."""
        if blocking and self._real.acquire(True, -1 if timeout is None or timeout < 0 else timeout):
            return True
        self._owner, self._count = None, 0
        return False

    def _acquire_unwinding(self, me: Agent) -> bool:
        # The run is being abandoned and its agents unwound one at a time: a lock
        # another agent holds is taken over, so that every finally block runs.
        if self._owner is not None or self._real.acquire(False):
            self._owner, self._count = me, 1
            return True
        raise Abort  # a free thread holds it

    def _acquire_outside(self, blocking: bool, timeout: float) -> bool:
        self._run.outside += 1
        ident = _get_ident()
        if self._reentrant and self._holder == ident:
            self._depth += 1
            return True
        run = self._run
        if self._owner is not None and run.over and run.aborting:
            self._rebind(run)  # a hold an abandoned run left behind
        if not self._real.acquire(blocking, timeout):
            return False
        self._holder, self._depth = ident, 1
        return True

    __enter__ = acquire

    def release(self) -> None:
        if self._owner is not None and not self._reentrant:
            # An agent holds it (a Lock may be released by any thread): the same whoever
            # releases it, an agent or not, so no need to ask who is running.
            self._owner = None
            self._real.release()
            return
        sched: Scheduler | None = hooks._scheduler  # type: ignore[assignment]
        me = None if sched is None else sched.by_ident.get(_get_ident())
        if me is None:
            self._release_outside()
            return
        if self._run is not sched:
            self._rebind(me.run)
        owner = self._owner
        if owner is None:
            if self._holder is not None and not self._reentrant:
                self._holder = None  # a free thread's hold: a Lock may be released by anyone
                self._real.release()
                return
            if me.run.aborting:
                return  # taken over by another agent while unwinding
            if self._reentrant or not self._real.locked():
                raise RuntimeError(
                    "cannot release un-acquired lock"
                    if self._reentrant
                    else "release unlocked lock"
                )
            self._real.release()  # a hold left by a run that has ended
            return
        if self._reentrant:
            if owner is not me:
                if me.run.aborting:
                    return
                raise RuntimeError("cannot release un-acquired lock")
            self._count -= 1
            if self._count:
                return
        # A release touches nothing: it can never be reordered with another agent's acquire
        # of the same lock (that acquire cannot run while the lock is held), so acquires
        # alone order a lock's critical sections (as in Flanagan and Godefroid's DPOR).
        self._owner = None
        self._real.release()

    def _release_outside(self) -> None:
        self._run.outside += 1
        if self._holder is not None:
            if self._reentrant:
                if self._holder != _get_ident():
                    raise RuntimeError("cannot release un-acquired lock")
                self._depth -= 1
                if self._depth:
                    return
            self._holder = None
            self._real.release()
            return
        if self._reentrant:
            raise RuntimeError("cannot release un-acquired lock")
        # An agent's hold released by another thread (a free thread's Condition.notify
        # releasing an agent's waiter); a lock nobody holds raises as a real one does.
        self._owner = None
        self._real.release()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def locked(self) -> bool:
        return self._real.locked()

    def _is_owned(self) -> bool:
        if not self._reentrant:
            return self._real.locked()
        sched: Scheduler | None = hooks._scheduler  # type: ignore[assignment]
        me = None if sched is None else sched.by_ident.get(_get_ident())
        if me is not None:
            return self._owner is me
        return self._holder == _get_ident()

    def _release_save(self) -> tuple[int, bool] | None:
        if not self._reentrant:
            self.release()
            return None
        if self._holder == _get_ident():
            state, self._depth = (self._depth, False), 1
        else:
            state, self._count = (self._count, True), 1
        self.release()
        return state

    def _acquire_restore(self, state: tuple[int, bool] | None) -> None:
        self.acquire()
        if state is not None:
            if self._holder == _get_ident():
                self._depth = state[0]
            else:
                self._count = state[0]

    def _at_fork_reinit(self) -> None:
        self._real = _new_lock()
        self._owner, self._count, self._holder, self._depth = None, 0, None, 0

    def __repr__(self) -> str:
        if self._owner is not None:
            held = f"held by {self._owner.name}"
        elif self._real.locked():
            held = "held by a thread outside the exploration"
        else:
            held = "free"
        return f"<racefree {self.key} {held}>"


class _Executor:
    """What the explorer keeps for one ``ThreadPoolExecutor`` used by controlled threads."""

    __slots__ = ("count", "live", "prefix", "queue", "threads")

    def __init__(self, prefix: str) -> None:
        self.queue: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]]
        self.queue = deque()
        self.threads: list[threading.Thread] = []
        self.live = 0
        self.count = 0
        self.prefix = prefix


class Scheduler:
    """Runs one workflow once, under ``strategy``; see the module docstring."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        latency: str = "any",
        max_steps: int = 20_000,
        seed: int = 0,
        watchdog: float | None = None,
        deadline: float | None = None,
        threads: Sequence[ThreadRule] = (),
    ) -> None:
        self.strategy = strategy
        self.watchdog = watchdog
        self.deadline = deadline  # time.perf_counter() value at which the run is stopped
        self.thread_rules = threads
        self.virtual = latency == "virtual"
        self.max_steps = max_steps
        self.seed = seed
        self.clock = 0.0
        self.agents: list[Agent] = []
        self.alive: list[Agent] = []  # the agents not DONE, in the order they were made
        self.by_ident: dict[int, Agent] = {}
        self.ordinals = 0
        self.names: dict[int, str] = {}
        self.trace: list[Step] = []
        self.events: list[Event] = []
        self.renumber = False  # the events' seq numbers are not 0, 1, 2... (see note)
        self.step: Step | None = None
        self.decisions = 0
        # Steps begun by a decision; the steps an event loop's batch splits off keep it. An
        # asyncio timer made in one of them ties only with those made in the same (_loop.py).
        self.turn = 0
        self.locks_made: dict[tuple[int, str], int] = {}  # (agent or task, site) -> count
        self.clock_ordered = strategy.clock_ordered  # steps carry the clock (see _seal)
        self.locks = 0
        self.thread_names = 0
        self.executors = 0
        self.aborting = False
        # deadlock, step-limit, diverged, blocked, time-limit, interrupted; None for a
        # run that ended, including one whose leftover daemon agents were unwound.
        self.abort_kind: str | None = None
        self.abort_reason: str | None = None
        self.error: BaseException | None = None
        self.crashes: list[tuple[str, BaseException, str]] = []
        self.done_signal = _new_lock()
        self.main: Agent | None = None
        self.running: Agent | None = None  # who holds the baton (for the watchdog's message)
        self.progress = 0
        self.over = False
        self.live = 0
        self.result: Any = None
        self.main_error: BaseException | None = None
        self.free_started = 0
        self.free_waited = False  # a deadlock was checked against free threads first
        self.outside = 0  # touches of the run's primitives by threads outside it
        self.watcher: int | None = None  # the thread that called run()
        self.guard_keys: dict[int, str] = {}  # id(guard) -> its key in this run (enter)

    # --- identity ------------------------------------------------------------------

    def me(self) -> Agent | None:
        """The controlled agent running in this OS thread, or None."""
        return self.by_ident.get(_get_ident())

    def new_ordinal(self, name: str) -> int:
        ordinal = self.ordinals
        self.ordinals += 1
        self.names[ordinal] = name
        return ordinal

    def _new_agent(self, name: str, thread: threading.Thread | None) -> Agent:
        agent = Agent(self, self.new_ordinal(name), name, thread)
        agent.ready_at = self.clock
        self.agents.append(agent)
        self.alive.append(agent)
        self.live += 1
        return agent

    # --- recording ------------------------------------------------------------------

    def touch(self, key: str, write: bool = True) -> None:
        """Add an access to the running step's footprint."""
        step = self.step
        if step is not None and (write or key not in step.footprint):
            step.footprint[key] = write or step.footprint.get(key, False)

    def clock_now(self) -> float | None:
        """The virtual clock for an agent of this run (what its ``time.monotonic()`` gives),
        None for any other thread (History.record's timestamps)."""
        return self.clock if _get_ident() in self.by_ident else None

    def note(self, kind: str, key: str | None, event: Event | None) -> None:
        """An access that just happened (a recorded event), in the running step."""
        me = self.by_ident.get(_get_ident())
        if me is None:
            return
        self.progress += 1  # for the watchdog: an asyncio run may record without deciding
        step = self.step
        if step is None:
            return
        if key is not None:
            wrote = _WRITES.get(kind)
            if wrote is None:
                wrote = _WRITES[kind] = not hooks.is_read(kind)
            footprint = step.footprint
            if wrote:
                kept = step.kept
                if kept is not None and key in kept:
                    kept.discard(key)  # written again: left_as_it_was says if this one changed it
                elif footprint.get(key):  # an earlier write in the step changed it
                    if step.changed is None:
                        step.changed = {key}
                    else:
                        step.changed.add(key)
                footprint[key] = True
            elif key not in footprint:
                footprint[key] = False
        if event is not None:
            events = self.events
            if event.seq != len(events):
                self.renumber = True  # from several histories: the run numbers them anew
            events.append(event)
            step.events.append(event)
            if me.loop is None:
                # A thread's events name its agent (racefree.agent(...) may rename it). A
                # loop's step can run several tasks, so an event there names no ordinal.
                self.names[step.id[0]] = event.agent

    def left_as_it_was(self, key: str) -> None:
        """The write of ``key`` just noted left its value as it was (a clear of an empty
        list, a flag set to what it held). It still orders the step against others, but
        a poll that does it changes nothing (strategies/fair.py)."""
        step = self.step
        if (
            step is not None
            and _get_ident() in self.by_ident
            and (step.changed is None or key not in step.changed)
        ):
            if step.kept is None:
                step.kept = {key}
            else:
                step.kept.add(key)

    # --- scheduling points -------------------------------------------------------------

    def point(self, kind: str, key: str | None) -> None:
        """``hooks.point``: end the step here; another agent may run before the access."""
        me = self.by_ident.get(_get_ident())
        if me is not None:
            self._at_point(me, kind, key)

    def _at_point(self, me: Agent, kind: str, key: str | None) -> None:
        if self.aborting:
            if me.loop is None:
                raise Abort
            return
        step = self.step
        if (step is not None and not step.footprint) or (me.loop is not None and self.live == 1):
            # A step that has touched nothing yet may take its first access without a
            # switch: a switch here would only separate invisible local work from the
            # access. And asyncio with no other thread: tasks never switch here.
            if key is not None:
                self.touch(key, not hooks.is_read(kind))
            return
        me.kind, me.key = kind, key
        chosen = self._decide(me)  # _yield's body, one call fewer at every decision
        if chosen is not me:
            self._switch(me, chosen)
        if key is not None:
            self.touch(key, not hooks.is_read(kind))

    def enter(self, guard: Any) -> bool:
        """``hooks.enter``: a scheduling point, then ``guard.lock`` (a real lock) taken.

        Taking it free is no switch and no dependency: it is held across no
        scheduling point but where user code inside it reaches one (a property
        that logs, a ``__deepcopy__`` that sleeps), and only then can another
        agent find it taken; that agent then waits for it as for a lock of the
        run, a decision, instead of blocking the OS thread that carries it.
        False for a thread that is no agent of the run: it takes the lock itself."""
        me = self.by_ident.get(_get_ident())
        if me is None:
            return False
        self._at_point(me, "access", None)
        if not guard.lock.acquire(False):
            self._wait_for_guard(me, guard)
        guard.holder = me
        return True

    def _wait_for_guard(self, me: Agent, guard: Any) -> None:
        lock = guard.lock
        while True:
            holder = guard.holder
            if holder is None:
                # A thread outside the run holds it (agents set the holder as they take
                # it): wait in real time, keeping the baton, so that no decision depends
                # on when it lets go; the watchdog names this wait if it never ends.
                lock.acquire()
                return
            if holder.run is not self:
                # An agent of an earlier run, abandoned inside it (a run that ends releases
                # what it took): the hold goes with that run.
                guard.drop()
                if lock.acquire(False):
                    return
                continue
            if self.aborting:
                raise Abort
            key = self.guard_keys.get(id(guard))
            if key is None:
                self.locks += 1
                key = self.guard_keys[id(guard)] = f"lib-lock#{self.locks}"
            me.kind, me.key = "lock", key
            me.state, me.wait, me.timeout_at = GUARD, guard, None
            self._yield(me)
            if lock.acquire(False):
                return  # else a thread outside the run took it first: look again

    def sleep(self, me: Agent, seconds: float) -> None:
        """``time.sleep`` in a controlled thread: virtual, and a scheduling point."""
        if self.aborting:
            raise Abort
        me.kind, me.key = "resume", None
        me.ready_at = self.clock + max(0.0, seconds)
        step = self.step
        if step is not None:
            step.timed = True
            # Where it sleeps tells a poll (again here) from work (strategies/fair.py);
            # the frame two up is the caller of time.sleep, past _patches.
            step.slept = call_site(sys._getframe(2))
        self._yield(me)

    def acquire(self, me: Agent, lock: VLock, blocking: bool, timeout: float) -> bool:
        """Own ``lock`` virtually for ``me``: a scheduling point, and a wait while it is held."""
        step = self.step
        if lock._owner is None and step is not None and not step.footprint:
            lock._owner, lock._count = me, 1  # first visible act of this step: no switch needed
            self.touch(lock.key)
            return True
        me.kind, me.key = "lock", lock.key
        if not blocking:
            self._yield(me)
            if lock._owner is not None:
                return False
            lock._owner, lock._count = me, 1
            self.touch(lock.key)
            return True
        me.state, me.wait = LOCK, lock
        me.timeout_at = self.clock + timeout if timeout is not None and timeout >= 0 else None
        if me.timeout_at is not None:
            self.timed_wait()
        self._yield(me)
        if me.timed_out:
            me.timed_out = False
            return False
        return True  # the scheduler gave us the lock when it chose us

    def join(self, me: Agent, target: Agent, timeout: float | None) -> None:
        """``Thread.join``: wait (virtually) until ``target`` has finished."""
        if target.state == DONE:
            self.touch(f"thread#{target.ordinal}", False)
            return
        if self.aborting:
            raise Abort
        me.kind, me.key = "join", f"thread#{target.ordinal}"
        me.state, me.wait = JOIN, target
        me.timeout_at = self.clock + timeout if timeout is not None else None
        if me.timeout_at is not None:
            self.timed_wait()
        self._yield(me)
        me.timed_out = False

    def lock_name(self, site: str) -> str:
        """The name of a lock made now at ``site`` (``file:line`` of the code that made
        it): the agent or task making it, how many it has made there in this run, and the
        site. That is the same in every run whatever the agents' order (a count over the
        run gave two agents' locks each other's names in another order, and a search that
        compares the steps of two runs by the keys they touched took them for others);
        and a lock kept from an earlier run shifts no other's name."""
        self.locks += 1
        me = self.by_ident.get(_get_ident())
        if me is None:
            return f"x{self.locks}@{site}"  # a thread that is no agent
        maker = me.ordinal if me.loop is None else me.loop.task_ordinal(me.ordinal)
        made = self.locks_made
        n = made[maker, site] = made.get((maker, site), 0) + 1
        return f"{maker}.{n}@{site}"

    def timed_wait(self) -> None:
        """The running step begins a wait with a timeout: under latency "any" whether it may
        time out hangs on the deadlines of the other pending waits (see ``_options``), so
        from here on the steps of this exploration carry the clock in their footprints."""
        step = self.step
        if step is not None:
            step.timed = True
        if not self.clock_ordered and not self.virtual:
            self.clock_ordered = self.strategy.clock_ordered = True
            for earlier in self.trace:
                self._seal(earlier)

    def _seal(self, step: Step) -> None:
        """A step ends: with ``clock_ordered``, put its use of the clock in its footprint."""
        if self.clock_ordered:
            if step.advanced:
                step.footprint[CLOCK_MOVED] = False
            if step.timed:
                step.footprint[CLOCK_READ] = False

    def split_step(self, choice: Choice) -> None:
        """An event loop goes on to a task whose timer ended at the same instant as the one
        chosen (one batch, as in asyncio): from here it is that task's step, so that two
        tasks' accesses in one batch are two steps to order, not one."""
        step = self.step
        if step is None or step.id == choice:
            return
        self._seal(step)
        self.trace.append(step)
        self.step = Step(
            choice, self.names.get(choice[0], "?"), "resume", None, self.clock, (choice,)
        )

    def loop_idle(self, loop: ControlledLoop) -> asyncio.TimerHandle | None:
        """The event loop has nothing ready: wait for a timer (chosen) or another thread."""
        me = self.by_ident[_get_ident()]
        if self.aborting:
            raise Abort
        me.state, me.kind, me.key = IDLE, "resume", None
        self._yield(me)
        fire, me.fire = me.fire, None
        return fire

    # --- the decision --------------------------------------------------------------------

    def _options(self) -> list[tuple[float, Candidate, Agent, Any]]:
        """Everything that could run next: (time, candidate, agent, action)."""
        out: list[tuple[float, Candidate, Agent, Any]] = []
        timeouts: list[tuple[float, Candidate, Agent, Any]] = []
        names = self.names
        clock = self.clock
        for agent in self.alive:
            option = agent.option
            if option is not None:  # a thread that is ready, as when it was last listed
                out.append(option)
                continue
            state = agent.state
            if state == RUN:
                loop = agent.loop
                if loop is None:
                    ready_at = agent.ready_at
                    option = agent.option = (
                        ready_at,
                        _candidate(
                            Candidate,
                            (agent.id, names[agent.ordinal], agent.kind, agent.key, ready_at),
                        ),
                        agent,
                        None,
                    )
                    out.append(option)
                    continue
                loop.sync_names(names)
                name = loop.running_name(names)
                cand = Candidate(agent.id, name, agent.kind, agent.key, agent.ready_at)
                out.append((agent.ready_at, cand, agent, None))
                continue
            loop = agent.loop
            if loop is not None:
                loop.sync_names(names)
            enabled = False
            if state == LOCK:
                enabled = agent.wait._owner is None
            elif state == JOIN:
                enabled = agent.wait.state == DONE
            elif state == GUARD:
                enabled = not agent.wait.lock.locked()
            elif state == ALL:
                # Daemon agents do not keep the run going, as they do not keep a program.
                enabled = all(a.daemon for a in self.alive if a is not agent)
            elif state == IDLE:
                if loop is None or loop._ready:
                    out.append(
                        (
                            clock,
                            Candidate(agent.id, names[agent.ordinal], "wake", None, clock),
                            agent,
                            None,
                        )
                    )
                else:
                    for choice, handle in loop.pending_timers():
                        when = handle.when()
                        key = "timeout" if loop.is_timeout(handle) else None
                        cand = Candidate(choice, names[choice[0]], "resume", key, when)
                        out.append((when, cand, agent, handle))
                continue
            if enabled:
                cand = _candidate(
                    Candidate, (agent.id, names[agent.ordinal], agent.kind, agent.key, clock)
                )
                out.append((clock, cand, agent, None))
            elif agent.timeout_at is not None:
                cand = Candidate(
                    agent.id, names[agent.ordinal], "timeout", agent.key, agent.timeout_at
                )
                timeouts.append((agent.timeout_at, cand, agent, "timeout"))
        if self.virtual:
            out.extend(timeouts)
            if out:
                horizon = max(clock, min(o[0] for o in out))
                out = [o for o in out if o[0] <= horizon]
        elif not out:
            out = timeouts
        elif timeouts:
            # A wait with a timeout times out at its deadline: while some pending sleep or
            # call would, in natural timing, still be running then, it may time out first
            # (an exporter's Event.wait(interval), a threading.Timer, inside an agent's
            # model call). One longer than every pending wait (a safety net) fires only
            # when nothing else can run.
            latest = max(map(_first, out))
            out.extend(t for t in timeouts if t[0] <= latest)
        return out

    def _yield(self, me: Agent) -> None:
        """End ``me``'s step, choose who runs next, hand the baton over if it is not ``me``."""
        chosen = self._decide(me)
        if chosen is not me:
            self._switch(me, chosen)

    def _decide(self, me: Agent) -> Agent:
        me.option = None  # its step may have changed what it is about to do
        options = self._options()
        step = self.step
        self.progress += 1
        trace = self.trace
        if step is not None:
            self._seal(step)
            trace.append(step)
        if (
            len(threading._active) > self.live + 1  # type: ignore[attr-defined]
            and self._only_timeouts(options)
            and self._outside_threads()
        ):
            options = self._wait_for_free_threads(me, options)
        if len(trace) >= self.max_steps:
            self.abort_kind = "step-limit"
            self.abort_reason = (
                f"The run took more than {self.max_steps:,} steps, so the explorer gave up on it: "
                "an agent may be polling in a loop (sleep, check, repeat) that the explorer can "
                "repeat forever. Bound the loop, or raise max_steps if the workflow is just long."
            )
            return self._begin_abort(me)
        if not options:
            self.abort_kind = "deadlock"
            self.abort_reason = self._deadlock()
            return self._begin_abort(me)
        clock = self.clock
        if len(options) == 1:  # nobody else could run: no decision, no strategy
            when, cand, agent, action = options[0]
            ids: tuple[Choice, ...] = (cand.id,)
            deviation = False
        else:
            candidates = list(map(_second, options))
            ids = tuple(map(_first, candidates))  # a candidate's id is its first field
            current: Choice | None = None
            mine = me.id
            if me.state == RUN and me.ready_at <= clock and mine in ids:
                current, default = mine, ids.index(mine)
            else:
                # The natural-timing default: the earliest ready, then the lowest id (an
                # option compares by its time, then by its candidate, whose id is unique).
                default = options.index(min(options))
            decision = Decision(self.decisions, candidates, current, default, trace)
            self.decisions += 1
            try:
                index = self.strategy.choose(decision)
            except BaseException as exc:  # a replay that diverged, or a strategy bug
                self.error = exc
                self.abort_kind = "diverged"
                self.abort_reason = str(exc)
                return self._begin_abort(me)
            when, cand, agent, action = options[index]
            deviation = index != default
        advanced = when > clock
        if advanced:
            self.clock = clock = when
        if action is not None:
            if action == "timeout":
                agent.timed_out = True
            else:
                agent.fire = action
                agent.loop.forget_timer(action)  # type: ignore[union-attr]
        if agent.state == LOCK and not agent.timed_out:
            lock = agent.wait
            lock._owner, lock._count = agent, 1
        agent.state, agent.wait, agent.timeout_at = RUN, None, None
        agent.ready_at = clock
        agent.option = None
        kind, key = cand.kind, cand.key
        self.step = new = Step(cand.id, cand.name, kind, key, clock, ids, deviation)
        new.advanced = advanced
        self.turn += 1
        if key is not None and (kind == "lock" or kind == "join"):
            new.footprint[key] = kind == "lock"
        self.running = agent
        return agent

    def _outside_threads(self) -> list[threading.Thread]:
        """The live threads that are not agents (free threads, threads started before the
        exploration), but for the watcher: any of them might release an agent's wait."""
        agents, watcher = self.by_ident, self.watcher
        return [
            t
            for t in threading.enumerate()
            if t.ident not in agents and t.ident != watcher and t.is_alive()
        ]

    @staticmethod
    def _only_timeouts(options: list[tuple[float, Candidate, Agent, Any]]) -> bool:
        return all(option[3] == "timeout" for option in options)

    def _wait_for_free_threads(
        self, me: Agent, timeouts: list[tuple[float, Candidate, Agent, Any]]
    ) -> list[tuple[float, Candidate, Agent, Any]]:
        """No agent can run (but for timeouts), and a thread outside the exploration may
        yet wake one (set a Future, notify a Condition, run a loop's callback): wait
        for it in real time.

        The wait ends when an agent can run; when every outside thread sits in a wait
        with no timeout (an idle event loop, an empty queue), as nothing will then
        wake them; after ``_FREE_PATIENCE`` seconds in which no outside thread touched
        a primitive of the run; or, with timeouts pending, after the shortest of them
        in real seconds. With no other thread alive a deadlock is reported at once."""
        delay = 0.0002
        now = _real_clock()
        end = None
        if timeouts:
            end = now + max(0.0, min(o[0] for o in timeouts) - self.clock)
        seen, active, idle_since = self.outside, now, None
        self.free_waited = True
        while not self.aborting:
            _real_sleep(delay)
            delay = min(delay * 2, 0.01)
            options = self._options()
            outside = self._outside_threads()
            if not self._only_timeouts(options) or not outside:
                return options
            now = _real_clock()
            if self.outside != seen:
                seen, active = self.outside, now
            if (end is not None and now >= end) or now - active >= _FREE_PATIENCE:
                return options
            if _free_threads_idle(outside):
                idle_since = now if idle_since is None else idle_since
                if now - idle_since >= _IDLE_SETTLE:
                    return options
            else:
                idle_since = None
        self._begin_abort(me)

    def _switch(self, me: Agent, to: Agent) -> None:
        to.park.release()
        me.park.acquire()
        self.running = me
        if self.aborting:
            me.state, me.wait, me.timeout_at = RUN, None, None
            raise Abort

    # --- abandoning a run ------------------------------------------------------------------

    def _deadlock(self) -> str:
        waits = []
        loop_lock = False
        for agent in self.agents:
            if agent.state == LOCK:
                owner = agent.wait._owner
                holder = self.names[owner.ordinal] if owner is not None else "nobody"
                waits.append(
                    f"{self.names[agent.ordinal]} waits for {agent.wait.key} ({holder} holds it)"
                )
                if owner is agent and agent.loop is not None and not agent.wait._reentrant:
                    loop_lock = True
            elif agent.state == GUARD:
                owner = agent.wait.holder
                holder = "a thread outside the run" if owner is None else self.names[owner.ordinal]
                waits.append(
                    f"{self.names[agent.ordinal]} waits for a tracked object's lock, "
                    f"{agent.key} ({holder} holds it)"
                )
            elif agent.state == JOIN:
                target = self.names[agent.wait.ordinal]
                waits.append(f"{self.names[agent.ordinal]} waits for {target} to finish")
            elif agent.state == IDLE:
                waits.append(f"{self.names[agent.ordinal]}'s event loop waits with no task ready")
            elif agent.state == ALL:
                waits.append(f"{self.names[agent.ordinal]} waits for the other agents to finish")
        note = ""
        if loop_lock:
            note += (
                " A threading lock taken again by the thread that runs an event loop: its "
                "tasks share that thread, so one task held it across an await while another "
                "asked for it. Use asyncio.Lock in async code."
            )
        if self.free_waited:
            note += (
                " Threads the explorer does not run were alive; none of them released a "
                "waiting agent."
            )
        return "Deadlock: no agent can run. " + "; ".join(waits) + "." + note

    def _begin_abort(self, me: Agent) -> NoReturn:
        """Start unwinding every agent; ``me`` unwinds first, the workflow's thread last."""
        self.aborting = True
        self.step = None
        if me.state != DONE:
            me.state, me.wait, me.timeout_at = RUN, None, None
        raise Abort

    def _next_to_unwind(self, me: Agent) -> Agent | None:
        others = [a for a in self.agents if a is not me and a.state != DONE and not a.stuck]
        if not others:
            return None
        rest = [a for a in others if a is not self.main]
        return rest[0] if rest else others[0]

    # --- threads ---------------------------------------------------------------------------

    def adopts(self, thread: threading.Thread, starter: Any) -> bool:
        """Does a thread that an agent starts (from frame ``starter``) become an agent?

        The user's ``threads`` rules first (the first that matches the thread's
        name, the module that starts it or the module of what it runs); else a
        thread started by the workflow's own code is an agent and one started by
        library code (the standard library, installed packages) runs free."""
        if self.thread_rules:
            target = getattr(thread, "_target", None)
            modules = (
                starter.f_globals.get("__name__", ""),
                getattr(target, "__module__", None) or type(thread).__module__,
            )
            for explore_it, pattern in self.thread_rules:
                if _rule_matches(pattern, thread.name, modules):
                    return explore_it
        return not is_library(starter.f_code.co_filename)

    def start_free(self, me: Agent, thread: threading.Thread, start: Callable[[], None]) -> None:
        """Start ``thread`` for real, outside the schedule (``start`` is the real
        ``Thread.start``): ``me`` steps outside while it waits for the thread to
        begin, so the wait is a real one and no scheduling decision."""
        del self.by_ident[me.ident]  # type: ignore[arg-type]
        try:
            with _with_program_mask():
                start()
        finally:
            self.by_ident[me.ident] = me  # type: ignore[index]
        self.free_started += 1

    def spawn(self, parent: Agent, thread: threading.Thread) -> None:
        """``Thread.start`` from a controlled thread: a new agent, then a scheduling point."""
        if thread._started.is_set():  # type: ignore[attr-defined]
            raise RuntimeError("threads can only be started once")
        if self.aborting:
            raise Abort
        agent = self._new_agent(thread.name, thread)
        thread._racefree_agent = agent  # type: ignore[attr-defined]
        thread._started._flag = True  # type: ignore[attr-defined]
        _carry(self._boot, (agent, thread))
        # No switch here: the child can do nothing visible before the parent's next
        # scheduling point, which (its step having touched thread#N) always offers a switch.
        self.touch(f"thread#{agent.ordinal}")

    def _boot(self, agent: Agent, thread: threading.Thread) -> None:
        ident = _get_ident()
        agent.ident = ident
        self.by_ident[ident] = agent
        thread._ident = ident  # type: ignore[attr-defined]
        with threading._active_limbo_lock:  # type: ignore[attr-defined]
            threading._active[ident] = thread  # type: ignore[attr-defined]
        agent.park.acquire()
        self.running = agent
        try:
            if not self.aborting:
                contextvars.Context().run(thread.run)  # a new thread starts with a fresh context
        except Abort:
            pass
        except BaseException as exc:
            if not self.aborting:  # an error while being unwound is the unwinding's doing
                self.crashes.append((self.names[agent.ordinal], exc, traceback.format_exc()))
        finally:
            thread._is_stopped = True  # type: ignore[attr-defined]
            with threading._active_limbo_lock:  # type: ignore[attr-defined]
                threading._active.pop(ident, None)  # type: ignore[attr-defined]
            self._finished(agent)

    def _finished(self, agent: Agent) -> None:
        """A thread's last step: wake whoever runs next and let the OS thread end."""
        agent.state = DONE
        self.live -= 1
        self.alive.remove(agent)
        self.by_ident.pop(agent.ident, None)  # type: ignore[arg-type]
        if agent.stuck:
            return  # left behind by the watcher, which has unwound the others without it
        if not self.aborting:
            self.touch(f"thread#{agent.ordinal}")
            try:
                chosen = self._decide(agent)
            except Abort:
                pass
            else:
                chosen.park.release()
                return
        nxt = self._next_to_unwind(agent)
        if nxt is not None:
            self.running = nxt
            with contextlib.suppress(RuntimeError):  # the watcher may have woken it already
                nxt.park.release()

    def executor_submit(
        self,
        me: Agent,
        executor: Any,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Future[Any]:
        """``ThreadPoolExecutor.submit`` from a controlled thread: serialised workers."""
        if executor._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        state: _Executor | None = getattr(executor, "_racefree_state", None)
        if state is None or getattr(executor, "_racefree_run", None) is not self:
            prefix = executor._thread_name_prefix
            if prefix.startswith("ThreadPoolExecutor-"):
                prefix = f"ThreadPoolExecutor-{self.executors}"
                self.executors += 1
            state = _Executor(prefix)
            executor._racefree_state = state
            executor._racefree_run = self
        future: Future[Any] = Future()
        state.queue.append((future, fn, args, kwargs))
        if state.live < executor._max_workers:
            state.live += 1
            worker = threading.Thread(
                name=f"{state.prefix}_{state.count}", target=self._work, args=(state,)
            )
            state.count += 1
            state.threads.append(worker)
            self.spawn(me, worker)  # a pool's workers are agents, whoever made the pool
        return future

    @staticmethod
    def _work(state: _Executor) -> None:
        while state.queue:
            future, fn, args, kwargs = state.queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except Abort:
                raise
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
        state.live -= 1

    def executor_shutdown(self, executor: Any, wait: bool, cancel_futures: bool) -> None:
        executor._shutdown = True
        state: _Executor = executor._racefree_state
        if cancel_futures:
            while state.queue:
                state.queue.popleft()[0].cancel()
        if wait:
            for worker in list(state.threads):
                worker.join()

    # --- the run ---------------------------------------------------------------------------

    def run(self, fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
        """Run ``fn`` as agent 0, with every agent it starts; return its result or error.

        ``fn`` runs on a carrier thread that stands in for this one (same
        ``Thread`` object, a copy of this context); this thread watches. A
        ``KeyboardInterrupt`` here stops the run, unwinds it, and propagates."""
        main = self._new_agent("main", None)
        self.main = self.running = main
        self.watcher = _get_ident()
        self.step = Step((0, 0), "main", "start", None, 0.0, ((0, 0),))
        done = self.done_signal
        done.acquire()
        job = (main, fn, threading.current_thread(), contextvars.copy_context())
        try:
            _carry(self._boot_main, job)
            self._watch()
        except KeyboardInterrupt:
            if self.abort_kind != "interrupted":  # it came before _watch could take it
                self._stop("interrupted", "The exploration was interrupted.")
                self._unwind(interrupted=True)
            raise
        finally:
            self.over = True
            self._let_go_of_agents()
        return self.result, self.main_error

    def _let_go_of_agents(self) -> None:
        """Drop the scheduler's side of its agents' cycle (each agent refers to its run),
        so a finished run is freed by reference counting, not by the cyclic collector:
        collecting some 200 objects a run cost about 7% of a short run's time."""
        agents = self.agents
        if all(agent.state == DONE and not agent.stuck for agent in agents):
            # An agent still running (left behind by the watcher) keeps them all.
            for agent in agents:
                agent.wait = agent.option = None
            agents.clear()
            self.alive.clear()
            self.by_ident.clear()
            self.main = self.running = None

    def _boot_main(
        self,
        main: Agent,
        fn: Callable[[], Any],
        caller: threading.Thread,
        context: contextvars.Context,
    ) -> None:
        ident = main.ident = _get_ident()
        self.by_ident[ident] = main
        with threading._active_limbo_lock:  # type: ignore[attr-defined]
            threading._active[ident] = caller  # type: ignore[attr-defined]
        try:
            try:
                self.result = context.run(fn)
            except Abort:
                pass
            except BaseException as exc:
                if not self.aborting:
                    self.main_error = exc
            self._finish_main(main)
        finally:
            with threading._active_limbo_lock:  # type: ignore[attr-defined]
                if threading._active.get(ident) is caller:  # type: ignore[attr-defined]
                    del threading._active[ident]  # type: ignore[attr-defined]
            self.done_signal.release()

    # --- the watcher (the thread that called run) ------------------------------------------

    def _watch(self) -> None:
        """Wait for the run in real time; stop it when it is stuck, late or interrupted."""
        done = self.done_signal
        watchdog, deadline = self.watchdog, self.deadline
        tick = 0.05 if watchdog is None else max(0.001, min(0.05, watchdog / 4))
        seen, since = self.progress, _real_clock()
        try:
            while not done.acquire(True, tick):
                now = _real_clock()
                if deadline is not None and now >= deadline:
                    self._stop("time-limit", "The run was stopped at the exploration's time limit.")
                    break
                if self.progress != seen:
                    seen, since = self.progress, now
                elif watchdog is not None and now - since >= watchdog:
                    self._stop("blocked", self._blocked(now - since))
                    break
            else:
                return
        except KeyboardInterrupt:
            self._stop("interrupted", "The exploration was interrupted.")
            self._unwind(interrupted=True)
            raise
        self._unwind()

    def _stop(self, kind: str, reason: str) -> None:
        if self.abort_kind is None:
            self.abort_kind, self.abort_reason = kind, reason
        self.aborting = True
        self.step = None

    def _blocked(self, seconds: float) -> str:
        """The watchdog's sentence: who is blocked, in which call of the user's code."""
        agent = self.running
        if agent is None or agent.ident is None:
            return f"The run made no progress for {seconds:.1f} s (real time)."
        name = self.names.get(agent.ordinal, agent.name)
        if agent.loop is not None:  # the task that runs on it, not the loop's thread
            with contextlib.suppress(Exception):
                name = agent.loop.running_name(self.names)
        frame = sys._current_frames().get(agent.ident)
        where = "a call the explorer does not control"
        importing = _importing(frame)
        if importing is not None:
            return (
                f"{name} made no progress for {seconds:.1f} s (real time), waiting for the "
                f"import of {importing}, which another agent began and is parked in the middle "
                "of (the module's top level reached a scheduling point, and the import "
                "system's lock is not the explorer's): import the module before the agents "
                "start, or raise watchdog if the import is only slow."
            )
        if frame is not None:
            frame = user_frame(frame)
            code = frame.f_code
            line = linecache.getline(code.co_filename, frame.f_lineno).strip()
            place = f"{os.path.basename(code.co_filename)}:{frame.f_lineno}, in {code.co_name}"
            where = f"`{line}` ({place})" if line else place
        return (
            f"{name} made no progress for {seconds:.1f} s (real time), blocked in {where}: "
            "a call the explorer does not control (a socket, a lock taken before the "
            "exploration, a thread it does not run, a queue.SimpleQueue: use queue.Queue, "
            "which it controls) holds the run; give that call a timeout or a simulated or "
            "recorded stand-in, or raise watchdog if the step is only slow."
        )

    def _unwind(self, interrupted: bool = False) -> None:
        """Let a stopped run's agents unwind, one at a time as ever; leave behind any that
        cannot (blocked in a call nobody can interrupt) and go on with the others."""
        done = self.done_signal
        # The watchdog has already waited: the agent it names is stuck. Otherwise (time
        # limit, Ctrl-C) the running agent gets a moment to reach a scheduling point.
        patience = 0.02 if self.abort_kind == "blocked" else _GRACE
        try:
            finished, since = -1, _real_clock()
            while not done.acquire(True, 0.005):
                waiting = [a for a in self.agents if a.state != DONE and not a.stuck]
                if not waiting:
                    return
                count = len(self.agents) - len(waiting)
                now = _real_clock()
                if count != finished:
                    finished, since = count, now
                    continue
                if now - since < patience:
                    continue
                # No agent finished for a while: the one holding the baton is stuck.
                holder = self.running
                if holder is not None and holder.state != DONE and not holder.stuck:
                    _interrupt(holder)  # Python code stops at once; a C call when it returns
                    if done.acquire(True, 0.1):
                        return
                    if holder.state == DONE:
                        continue
                    holder.stuck = True
                waiting = [a for a in self.agents if a.state != DONE and not a.stuck]
                if not waiting:
                    return
                nxt = ([a for a in waiting if a is not self.main] or waiting)[0]
                self.running, finished, since = nxt, -1, now
                with contextlib.suppress(RuntimeError):  # all but the stuck one are parked
                    nxt.park.release()
        except KeyboardInterrupt:
            if not interrupted:
                raise  # a second Ctrl-C stops the waiting; the first one is raised by _watch

    def _finish_main(self, main: Agent) -> None:
        """The workflow returned: let every other agent finish (or unwind) before we do."""
        while True:
            others = [a for a in self.agents if a is not main and a.state != DONE and not a.stuck]
            if not others:
                break
            if not self.aborting and all(a.daemon for a in others):
                # Only daemon agents are left: unwind them, as the interpreter ends daemon
                # threads at exit. Not a failure: abort_kind stays None.
                self.aborting = True
            if self.aborting:
                with contextlib.suppress(RuntimeError):
                    others[0].park.release()
                main.park.acquire()
                self.running = main
                continue
            main.kind, main.key = "finish", None
            main.state = ALL
            try:
                self._yield(main)
            except Abort:
                continue
        if self.step is not None:
            self._seal(self.step)
            self.trace.append(self.step)
            self.step = None
        main.state = DONE
        self.live -= 1
        self.alive.remove(main)
        self.by_ident.pop(main.ident, None)  # type: ignore[arg-type]

    def crash_report(self) -> Sequence[tuple[str, BaseException, str]]:
        return self.crashes


def _interrupt(agent: Agent) -> None:
    """Raise Abort in a left-behind agent's thread when it next runs Python code."""
    import ctypes

    if agent.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(agent.ident), ctypes.py_object(Abort)
        )
