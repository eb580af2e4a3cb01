"""An asyncio event loop whose only source of nondeterminism is the explorer.

Ready callbacks run exactly as in asyncio: first in, first out, and a task
runs undisturbed from one ``await`` that suspends to the next. There is no
I/O. When nothing is ready the loop asks the scheduler which pending timer
(an ``asyncio.sleep``, a simulated model call, a timeout) completes next, or
waits for another controlled thread (``asyncio.to_thread``) to hand it work;
the clock jumps to the timer's deadline instead of waiting for it.

Each timer belongs to the task that created it, so choices read as agent
steps: "Writer's model call returns" rather than "callback 7 runs".

The loop belongs to the agent that *runs* it, not the one that made it (a
library may make a loop in one thread and run it in another). Run by a
thread the explorer does not control (a free thread), it is an ordinary
selector loop: real time, real I/O, outside the schedule.
"""

from __future__ import annotations

import _thread
import asyncio
import heapq
import sys
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from racefree import hooks
from racefree.explore._patches import _orig
from racefree.explore.schedule import Choice
from racefree.explore.strategies.base import CANCELS, call_site

if TYPE_CHECKING:
    from racefree.explore._scheduler import Agent, Scheduler

__all__ = ["ControlledLoop"]


_real_monotonic = _orig["monotonic"]

# What asyncio's timeouts schedule: wait_for's (3.10, 3.11) and asyncio.timeout's (3.11+).
_TIMEOUT_CALLBACKS: set[Any] = {asyncio.tasks._release_waiter}  # type: ignore[attr-defined]
if sys.version_info >= (3, 11):
    _TIMEOUT_CALLBACKS.add(asyncio.timeouts.Timeout._on_timeout)


class ControlledLoop(asyncio.SelectorEventLoop):
    """asyncio's loop with a virtual clock and the scheduler in place of its selector."""

    # BaseEventLoop's own state, which typeshed does not describe.
    _ready: deque[asyncio.Handle]
    _scheduled: list[asyncio.TimerHandle]
    _stopping: bool

    def __init__(self, scheduler: Scheduler, agent: Agent) -> None:
        super().__init__()
        self._racefree = scheduler
        self._agent = agent
        self._controlled = True  # False while a thread the explorer does not run drives it
        self._clock_resolution = 1e-9
        self._owners: dict[int, int] = {}  # id(timer handle) -> ordinal of the task that made it
        self._made_in: dict[int, int] = {}  # id(timer handle) -> the scheduler's turn then
        # id(timer handle) -> its choice id, for a timer that joined a batch after the chosen one
        self._batch: dict[int, Choice] = {}
        # id(handle) -> the choice whose batch handle called it soon (a task's wakeup)
        self._wakeups: dict[int, Choice] = {}
        self._waking: Choice | None = None  # the choice whose batch handle is running
        self._ordinals: dict[asyncio.Task[Any], int] = {}
        self._given: dict[asyncio.Task[Any], str] = {}  # the name each task had when seen
        self._tasks_made = 0

    # --- time and the (absent) selector ---------------------------------------------------

    def time(self) -> float:
        return self._racefree.clock if self._controlled else _real_monotonic()

    def _write_to_self(self) -> None:
        """Another thread scheduled a callback; the scheduler sees ``_ready`` directly."""
        if not (self._controlled and self.is_running()):  # a real loop waits in select
            self._racefree.outside += 1  # work handed to a free thread: worth waiting for
            super()._write_to_self()  # type: ignore[misc]

    # --- who owns what ------------------------------------------------------------------------

    def create_task(self, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        if kwargs.get("name") is None:
            self._tasks_made += 1
            kwargs["name"] = f"Task-{self._tasks_made}"
        task: asyncio.Task[Any] = super().create_task(coro, **kwargs)
        if self._controlled:  # a free thread's tasks are no agents: no ordinal to shift
            self._ordinals[task] = self._racefree.new_ordinal(task.get_name())
            self._given[task] = task.get_name()
        return task

    def sync_names(self, names: dict[int, str]) -> None:
        """Take up names given after creation: ``asyncio.create_task(coro, name=...)``
        names the task only once the loop has made it (as ``Task-N``), and
        ``Task.set_name`` may rename it later. A name an event gave (the agent's
        ``racefree.agent(...)``) is kept."""
        for task, first in self._given.items():
            name = task.get_name()
            if name != first:
                ordinal = self._ordinals[task]
                if names.get(ordinal) == first:
                    names[ordinal] = name
                self._given[task] = name

    def call_at(self, when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:  # type: ignore[override]
        handle = super().call_at(when, callback, *args, **kwargs)
        if not self._controlled:
            return handle
        task = asyncio.current_task(self) if self.is_running() else None
        owner = self._ordinals.get(task, self._agent.ordinal) if task else self._agent.ordinal
        self._owners[id(handle)] = owner
        self._made_in[id(handle)] = self._racefree.turn
        step = self._racefree.step
        if step is not None:
            step.timed = True
        if step is not None and step.id[0] == owner:
            # The timer a task's step makes last is the sleep that ends the step: where it
            # was made tells a poll (again here) from work (strategies/fair.py).
            step.slept = call_site(sys._getframe(1))
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        super()._timer_handle_cancelled(handle)  # type: ignore[misc]
        owner = self._owners.get(id(handle)) if self._controlled else None
        if owner is not None:
            # The running step takes away a timer that a decision could have let end first
            # (wait_for's timeout, when the call it guards ended): a step that disables
            # another's is dependent on it, which no shared key would show
            # (strategies/exhaustive.py).
            self._racefree.touch(f"{CANCELS}{owner}")

    def task_ordinal(self, default: int) -> int:
        """The ordinal of the task running now, or ``default`` (a callback, no task)."""
        task = asyncio.current_task(self) if self.is_running() else None
        return self._ordinals.get(task, default) if task is not None else default

    def running_name(self, names: dict[int, str]) -> str:
        """The name of the task running now (for a candidate that continues it)."""
        task = asyncio.current_task(self)
        if task is not None and task in self._ordinals:
            return names[self._ordinals[task]]
        return names[self._agent.ordinal]

    def pending_timers(self) -> Iterator[tuple[Choice, asyncio.TimerHandle]]:
        """Live timers, earliest first, each named (owner ordinal, n-th of that owner's)."""
        live = [h for h in self._scheduled if not h.cancelled()]
        live.sort(key=lambda h: h.when())
        seen: dict[int, int] = {}
        for handle in live:
            owner = self._owners.get(id(handle), self._agent.ordinal)
            sub = seen.get(owner, 0)
            seen[owner] = sub + 1
            yield (owner, sub), handle

    @staticmethod
    def is_timeout(handle: asyncio.TimerHandle) -> bool:
        """Is this timer an asyncio timeout (``wait_for``, ``asyncio.timeout``) rather than
        a sleep or a call? (For the timeline: "times out", not "returns".)"""
        callback = handle._callback  # type: ignore[attr-defined]
        return getattr(callback, "__func__", callback) in _TIMEOUT_CALLBACKS

    def forget_timer(self, handle: asyncio.TimerHandle) -> None:
        """The scheduler chose ``handle``: take it off the heap (the loop will run it)."""
        self._scheduled.remove(handle)
        heapq.heapify(self._scheduled)
        handle._scheduled = False  # type: ignore[attr-defined,unused-ignore]
        self._owners.pop(id(handle), None)

    # --- the loop -------------------------------------------------------------------------------

    def run_forever(self) -> None:
        sched = self._racefree
        agent = None
        if hooks._scheduler is sched:
            agent = sched.by_ident.get(_thread.get_ident())
        if agent is None:
            self._controlled = False  # a free thread, or a later run: a real loop
            super().run_forever()
            return
        self._controlled = True
        self._agent = agent
        agent.loop = self
        try:
            super().run_forever()
        finally:
            agent.loop = None

    def _run_once(self) -> None:
        if not self._controlled:
            super()._run_once()  # type: ignore[misc]
            return
        ready = self._ready
        scheduled = self._scheduled
        while scheduled and scheduled[0].cancelled():
            timer = heapq.heappop(scheduled)
            timer._scheduled = False  # type: ignore[attr-defined]
            self._owners.pop(id(timer), None)
            self._made_in.pop(id(timer), None)
        scheduler = self._racefree
        if scheduler.virtual:
            self._take_due_timers()
        batch = self._batch
        if not ready and not self._stopping:
            batch.clear()  # every handle of the last batch has run
            self._wakeups.clear()
            fire = scheduler.loop_idle(self)
            if fire is not None:
                ready.append(fire)
                # As in asyncio, every timer due by then joins the same batch, after the one
                # chosen, so two sleeps that end together interleave. With arbitrary
                # latency ("any") only exact ties are due together, and only timers made in
                # one turn (a step, or the steps of one batch) tie: whether two made in
                # different turns tie hangs on how far earlier wakes had moved the clock,
                # which the order of those wakes decides and no footprint shows (a retry
                # sleeping half as long tied with another agent's call in one order and not
                # in the other, and exhaustive search took the two orders for one).
                made_in = self._made_in.pop(id(fire), None)
                if scheduler.virtual:
                    self._take_due_timers()
                else:
                    self._take_due_timers(fire.when(), made_in)
                if batch and scheduler.step is not None:
                    batch[id(fire)] = scheduler.step.id
        if not batch and not self._wakeups:
            for _ in range(len(ready)):
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
            return
        # A batch of several tasks' timers: what each timer wakes (the awaiting task's
        # wakeup, and what that calls soon in turn) is that task's step, so that the two
        # tasks' accesses are two steps to order. A timer's own callback (a sleep's future
        # set) stays in the step it runs in: the decision's step is the chosen task's.
        wakeups = self._wakeups
        for _ in range(len(ready)):
            handle = ready.popleft()
            key = id(handle)
            choice = batch.pop(key, None)
            if choice is None:
                choice = wakeups.pop(key, None)
                if choice is not None:
                    scheduler.split_step(choice)
            self._waking = choice
            try:
                if not handle._cancelled:
                    handle._run()
            finally:
                self._waking = None

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:  # type: ignore[override]
        handle = super().call_soon(callback, *args, context=context)
        waking = self._waking
        if waking is not None:
            self._wakeups[id(handle)] = waking
        return handle

    def _take_due_timers(self, tie: float | None = None, made_in: int | None = None) -> None:
        """Move timers due now to the ready queue; with ``tie``, those due exactly then that
        were made in turn ``made_in``."""
        scheduled, ready = self._scheduled, self._ready
        now = self._racefree.clock if tie is None else tie
        taken: dict[int, int] = {}
        kept: list[asyncio.TimerHandle] = []  # due then, but made in another turn
        while scheduled and (
            scheduled[0].when() <= now if tie is None else scheduled[0].when() == tie
        ):
            timer = heapq.heappop(scheduled)
            if tie is not None and self._made_in.get(id(timer)) != made_in:
                kept.append(timer)
                continue
            timer._scheduled = False  # type: ignore[attr-defined]
            owner = self._owners.pop(id(timer), None)
            self._made_in.pop(id(timer), None)
            if not timer.cancelled():
                ready.append(timer)
                if owner is not None:
                    # Named as pending_timers() named it at the decision: the owner's n-th
                    # live timer, earliest first (its earlier ones that are still pending,
                    # then those of this batch).
                    sub = sum(
                        1
                        for h in scheduled
                        if not h.cancelled()
                        and h.when() < timer.when()
                        and self._owners.get(id(h)) == owner
                    )
                    sub += taken.get(owner, 0)
                    taken[owner] = taken.get(owner, 0) + 1
                    self._batch[id(timer)] = (owner, sub)
        for timer in kept:
            heapq.heappush(scheduled, timer)

    def close(self) -> None:
        super().close()
        self._owners.clear()
        self._made_in.clear()
        self._ordinals.clear()
        self._given.clear()
