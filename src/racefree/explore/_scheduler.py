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
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import contextvars
import threading
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NoReturn

from racefree import hooks
from racefree.explore.schedule import Choice
from racefree.explore.strategies.base import Candidate, Decision, Step, Strategy

if TYPE_CHECKING:
    from racefree.explore._loop import ControlledLoop
    from racefree.history import Event

__all__ = ["Abort", "Scheduler"]

_get_ident = _thread.get_ident
_new_lock = _thread.allocate_lock
_start_new_thread = _thread.start_new_thread

RUN, LOCK, JOIN, ALL, IDLE, DONE = range(6)
_INF = float("inf")


class _Carrier:
    """A reusable OS thread that runs one agent at a time (starting threads is slow)."""

    __slots__ = ("go", "job")

    def __init__(self) -> None:
        self.go = _new_lock()
        self.go.acquire()
        self.job: tuple[Callable[..., None], tuple[Any, ...]] | None = None


_idle: list[_Carrier] = []


def _carrier_main(carrier: _Carrier) -> None:
    while True:
        job, carrier.job = carrier.job, None
        if job is not None:
            with contextlib.suppress(BaseException):  # _boot catches everything itself
                job[0](*job[1])
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


class Abort(BaseException):
    """Raised inside an agent to unwind it when a run is abandoned (deadlock, step limit)."""


class Agent:
    """One controlled OS thread."""

    __slots__ = (
        "fire",
        "ident",
        "key",
        "kind",
        "loop",
        "name",
        "ordinal",
        "park",
        "ready_at",
        "state",
        "thread",
        "timed_out",
        "timeout_at",
        "wait",
    )

    def __init__(self, ordinal: int, name: str, thread: threading.Thread | None) -> None:
        self.ordinal = ordinal
        self.name = name
        self.thread = thread
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


class VLock:
    """A ``threading.Lock`` whose waits are scheduling decisions (installed while exploring)."""

    __slots__ = (
        "__weakref__",
        "_count",
        "_owner",
        "_reentrant",
        "_sched",
        "bookkeeping",
        "internal",
        "key",
        "silent",
    )

    def __init__(self, sched: Scheduler, reentrant: bool = False, made_by: str = "") -> None:
        self._sched = sched
        self.bookkeeping = made_by == "bookkeeping"
        self.internal = made_by in ("internal", "bookkeeping")
        # A lock held only inside code with no scheduling point in it (History.record's)
        # can never be contended: it is neither a switch point nor a dependency.
        self.silent = made_by == "silent"
        self._owner: Agent | None = None
        self._count = 0
        self._reentrant = reentrant
        sched.locks += 1
        kind = "rlock" if reentrant else "lock"
        self.key = f"{'internal-' if self.internal else ''}{kind}#{sched.locks}"

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        sched = self._sched
        me = sched.me()
        if me is None:
            return self._acquire_outside()
        if self._reentrant and self._owner is me:
            self._count += 1
            return True
        if self._owner is None and (self.silent or self.bookkeeping):
            # A free Future condition guards a few lines of bookkeeping: taking it is
            # not a switch point (waiting on the Future still is), but it still orders
            # the steps that take it, which partial-order reduction needs to know.
            self._owner, self._count = me, 1
            if self.bookkeeping:
                sched.touch(self.key)
            return True
        return sched.acquire(me, self, blocking, timeout)

    def _acquire_outside(self) -> bool:
        if self._owner is not None:
            raise RuntimeError(
                f"{self.key} was created during an exploration and is held by an agent of it; "
                "it cannot be waited for outside the exploration."
            )
        return True

    __enter__ = acquire

    def release(self) -> None:
        if self._owner is None:
            raise RuntimeError("release unlocked lock")
        if self._reentrant:
            if self._owner is not self._sched.me():
                raise RuntimeError("cannot release un-acquired lock")
            self._count -= 1
            if self._count:
                return
        # A release touches nothing: it can never be reordered with another agent's acquire
        # of the same lock (that acquire cannot run while the lock is held), so acquires
        # alone order a lock's critical sections (as in Flanagan and Godefroid's DPOR).
        self._owner = None

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def locked(self) -> bool:
        return self._owner is not None

    def _is_owned(self) -> bool:
        if self._reentrant:
            return self._owner is not None and self._owner is self._sched.me()
        return self._owner is not None

    def _release_save(self) -> tuple[int, Agent | None]:
        if not self._reentrant:
            self.release()
            return (0, None)
        state = (self._count, self._owner)
        self._count = 1
        self.release()
        return state

    def _acquire_restore(self, state: tuple[int, Agent | None]) -> None:
        self.acquire()
        if self._reentrant:
            self._count = state[0]

    def _at_fork_reinit(self) -> None:
        self._owner, self._count = None, 0

    def __repr__(self) -> str:
        held = f"held by {self._owner.name}" if self._owner else "free"
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
    ) -> None:
        self.strategy = strategy
        self.virtual = latency == "virtual"
        self.max_steps = max_steps
        self.seed = seed
        self.clock = 0.0
        self.agents: list[Agent] = []
        self.by_ident: dict[int, Agent] = {}
        self.ordinals = 0
        self.names: dict[int, str] = {}
        self.trace: list[Step] = []
        self.events: list[Event] = []
        self.step: Step | None = None
        self.decisions = 0
        self.locks = 0
        self.thread_names = 0
        self.executors = 0
        self.aborting = False
        self.abort_reason: str | None = None
        self.error: BaseException | None = None
        self.crashes: list[tuple[str, BaseException, str]] = []
        self.done_signal = _new_lock()
        self.main: Agent | None = None
        self.live = 0

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
        agent = Agent(self.new_ordinal(name), name, thread)
        agent.ready_at = self.clock
        self.agents.append(agent)
        self.live += 1
        return agent

    # --- recording ------------------------------------------------------------------

    def touch(self, key: str, write: bool = True) -> None:
        """Add an access to the running step's footprint."""
        step = self.step
        if step is not None and (write or key not in step.footprint):
            step.footprint[key] = write or step.footprint.get(key, False)

    def note(self, kind: str, key: str | None, event: Event | None) -> None:
        """An access that just happened (a recorded event), in the running step."""
        if _get_ident() not in self.by_ident:
            return
        step = self.step
        if step is None:
            return
        if key is not None:
            self.touch(key, not hooks.is_read(kind))
        if event is not None:
            self.events.append(event)
            step.events.append(event)
            self.names[step.id[0]] = event.agent

    # --- scheduling points -------------------------------------------------------------

    def point(self, kind: str, key: str | None) -> None:
        """``hooks.point``: end the step here; another agent may run before the access."""
        me = self.by_ident.get(_get_ident())
        if me is None:
            return
        if self.aborting:
            if me.loop is None:
                raise Abort
            return
        step = self.step
        if (me.loop is not None and self.live == 1) or (step is not None and not step.footprint):
            # asyncio with no other thread: tasks never switch here. And a step that has
            # touched nothing yet may take its first access without a switch: a switch
            # here would only separate invisible local work from the access.
            if key is not None:
                self.touch(key, not hooks.is_read(kind))
            return
        me.kind, me.key = kind, key
        self._yield(me)
        if key is not None:
            self.touch(key, not hooks.is_read(kind))

    def sleep(self, me: Agent, seconds: float) -> None:
        """``time.sleep`` in a controlled thread: virtual, and a scheduling point."""
        if self.aborting:
            raise Abort
        me.kind, me.key = "resume", None
        me.ready_at = self.clock + max(0.0, seconds)
        self._yield(me)

    def acquire(self, me: Agent, lock: VLock, blocking: bool, timeout: float) -> bool:
        """Acquire ``lock`` for ``me``: a scheduling point, and a wait while it is held."""
        if self.aborting:
            if lock._owner is None:
                lock._owner, lock._count = me, 1
                return True
            raise Abort
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
        self._yield(me)
        me.timed_out = False

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
        for agent in self.agents:
            state = agent.state
            if state == RUN:
                loop = agent.loop
                name = names[agent.ordinal] if loop is None else loop.running_name(names)
                out.append(
                    (
                        agent.ready_at,
                        Candidate((agent.ordinal, 0), name, agent.kind, agent.key, agent.ready_at),
                        agent,
                        None,
                    )
                )
                continue
            if state == DONE:
                continue
            enabled = False
            if state == LOCK:
                enabled = agent.wait._owner is None
            elif state == JOIN:
                enabled = agent.wait.state == DONE
            elif state == ALL:
                enabled = all(a.state == DONE for a in self.agents if a is not agent)
            elif state == IDLE:
                loop = agent.loop
                assert loop is not None
                if loop._ready:
                    out.append(
                        (
                            clock,
                            Candidate(
                                (agent.ordinal, 0), names[agent.ordinal], "wake", None, clock
                            ),
                            agent,
                            None,
                        )
                    )
                else:
                    for choice, handle in loop.pending_timers():
                        when = handle.when()
                        cand = Candidate(choice, names[choice[0]], "resume", None, when)
                        out.append((when, cand, agent, handle))
                continue
            if enabled:
                cand = Candidate(
                    (agent.ordinal, 0), names[agent.ordinal], agent.kind, agent.key, clock
                )
                out.append((clock, cand, agent, None))
            elif agent.timeout_at is not None:
                cand = Candidate(
                    (agent.ordinal, 0), names[agent.ordinal], "timeout", agent.key, agent.timeout_at
                )
                timeouts.append((agent.timeout_at, cand, agent, "timeout"))
        if self.virtual:
            out.extend(timeouts)
            if out:
                horizon = max(clock, min(o[0] for o in out))
                out = [o for o in out if o[0] <= horizon]
        elif not out:
            out = timeouts
        return out

    def _yield(self, me: Agent) -> None:
        """End ``me``'s step, choose who runs next, hand the baton over if it is not ``me``."""
        chosen = self._decide(me)
        if chosen is not me:
            self._switch(me, chosen)

    def _decide(self, me: Agent) -> Agent:
        options = self._options()
        step = self.step
        if step is not None:
            self.trace.append(step)
        if len(self.trace) >= self.max_steps:
            self.abort_reason = (
                f"The run took more than {self.max_steps:,} steps, so the explorer gave up on it: "
                "an agent may be polling in a loop (sleep, check, repeat) that the explorer can "
                "repeat forever. Bound the loop, or raise max_steps if the workflow is just long."
            )
            return self._begin_abort(me)
        if not options:
            self.abort_reason = self._deadlock()
            return self._begin_abort(me)
        current: Choice | None = None
        default = 0
        if me.state == RUN and me.ready_at <= self.clock:
            current = (me.ordinal, 0)
        if len(options) == 1:
            index = 0
        else:
            best = None
            for i, (when, cand, _agent, _action) in enumerate(options):
                if current is not None and cand.id == current:
                    default = i
                    break
                rank = (when, cand.id)
                if best is None or rank < best:
                    best, default = rank, i
            decision = Decision(
                self.decisions,
                [o[1] for o in options],
                current if any(o[1].id == current for o in options) else None,
                default,
                self.trace,
            )
            self.decisions += 1
            try:
                index = self.strategy.choose(decision)
            except BaseException as exc:  # a replay that diverged, or a strategy bug
                self.error = exc
                self.abort_reason = str(exc)
                return self._begin_abort(me)
        when, cand, agent, action = options[index]
        if when > self.clock:
            self.clock = when
        if action == "timeout":
            agent.timed_out = True
        elif action is not None:
            agent.fire = action
            agent.loop.forget_timer(action)  # type: ignore[union-attr]
        state = agent.state
        if state == LOCK and not agent.timed_out:
            lock = agent.wait
            lock._owner, lock._count = agent, 1
        agent.state, agent.wait, agent.timeout_at = RUN, None, None
        agent.ready_at = self.clock
        self.step = Step(
            cand.id,
            cand.name,
            cand.kind,
            cand.key,
            self.clock,
            tuple(o[1].id for o in options),
            index != default,
        )
        if cand.key is not None and cand.kind in ("lock", "join"):
            self.touch(cand.key, cand.kind == "lock")
        return agent

    def _switch(self, me: Agent, to: Agent) -> None:
        to.park.release()
        me.park.acquire()
        if self.aborting:
            me.state, me.wait, me.timeout_at = RUN, None, None
            raise Abort

    # --- abandoning a run ------------------------------------------------------------------

    def _deadlock(self) -> str:
        waits = []
        for agent in self.agents:
            if agent.state == LOCK:
                owner = agent.wait._owner
                holder = self.names[owner.ordinal] if owner is not None else "nobody"
                waits.append(
                    f"{self.names[agent.ordinal]} waits for {agent.wait.key} ({holder} holds it)"
                )
            elif agent.state == JOIN:
                target = self.names[agent.wait.ordinal]
                waits.append(f"{self.names[agent.ordinal]} waits for {target} to finish")
            elif agent.state == IDLE:
                waits.append(f"{self.names[agent.ordinal]}'s event loop waits with no task ready")
            elif agent.state == ALL:
                waits.append(f"{self.names[agent.ordinal]} waits for the other agents to finish")
        return "Deadlock: no agent can run. " + "; ".join(waits) + "."

    def _begin_abort(self, me: Agent) -> NoReturn:
        """Start unwinding every agent; ``me`` unwinds first, the workflow's thread last."""
        self.aborting = True
        self.step = None
        if me.state != DONE:
            me.state, me.wait, me.timeout_at = RUN, None, None
        raise Abort

    def _next_to_unwind(self, me: Agent) -> Agent | None:
        others = [a for a in self.agents if a is not me and a.state != DONE]
        if not others:
            return None
        rest = [a for a in others if a is not self.main]
        return rest[0] if rest else others[0]

    # --- threads ---------------------------------------------------------------------------

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
        try:
            if not self.aborting:
                contextvars.Context().run(thread.run)  # a new thread starts with a fresh context
        except Abort:
            pass
        except BaseException as exc:
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
        del self.by_ident[agent.ident]  # type: ignore[arg-type]
        if self.aborting:
            nxt = self._next_to_unwind(agent)
            if nxt is not None:
                nxt.park.release()
            return
        self.touch(f"thread#{agent.ordinal}")
        try:
            chosen = self._decide(agent)
        except Abort:
            nxt = self._next_to_unwind(agent)
            if nxt is not None:
                nxt.park.release()
            return
        chosen.park.release()

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
            worker.start()
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
        """Run ``fn`` in this thread as agent 0, with every agent it starts; return its result."""
        main = self._new_agent("main", None)
        self.main = main
        main.ident = _get_ident()
        self.by_ident[main.ident] = main
        self.step = Step((0, 0), "main", "start", None, 0.0, ((0, 0),))
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn()
        except Abort:
            pass
        except BaseException as exc:
            error = exc
        self._finish_main(main)
        return result, error

    def _finish_main(self, main: Agent) -> None:
        """The workflow returned: let every other agent finish (or unwind) before we do."""
        while True:
            others = [a for a in self.agents if a is not main and a.state != DONE]
            if not others:
                break
            if self.aborting:
                others[0].park.release()
                main.park.acquire()
                continue
            main.kind, main.key = "finish", None
            main.state = ALL
            try:
                self._yield(main)
            except Abort:
                continue
        if self.step is not None:
            self.trace.append(self.step)
            self.step = None
        main.state = DONE
        self.live -= 1
        self.by_ident.pop(main.ident, None)  # type: ignore[arg-type]

    def crash_report(self) -> Sequence[tuple[str, BaseException, str]]:
        return self.crashes
