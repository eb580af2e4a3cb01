"""What the explorer swaps in while it runs, and only for the threads it controls.

Installed once per exploration and removed after it; every replacement first
asks "is this thread one of the explorer's agents?" and otherwise calls the
original, so other threads of the process (a progress bar, pytest, a free
thread that a library started during a run) are not affected.

- ``threading.Lock`` / ``RLock`` (and the lock that ``Condition.wait`` makes):
  virtual locks, so ``Condition``, ``Event``, ``Semaphore``, ``Barrier``,
  ``queue.Queue`` and ``concurrent.futures.Future`` become scheduling points.
- ``Thread.start`` / ``join`` / ``is_alive``; ``ThreadPoolExecutor.submit`` /
  ``shutdown``: serialised agents (a thread that library code starts runs
  free, unless the exploration's ``threads`` rules say otherwise).
- ``time.sleep`` / ``monotonic`` / ``perf_counter`` / ``time``: virtual time.
- ``asyncio.new_event_loop``: a :class:`ControlledLoop` (so ``asyncio.run``
  inside a workflow is explored too); and the loop binding of asyncio's
  primitives, so that one made in an earlier run serves this run's loop.

(``History.record`` needs no replacement: it announces every event through
``racefree.hooks``, and the scheduler adds it to the run's history and the
running step's footprint.)
"""

from __future__ import annotations

import _thread
import os
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from racefree import hooks
from racefree.explore._scheduler import DONE, Agent, Scheduler, VLock

if TYPE_CHECKING:
    import asyncio

__all__ = ["installed"]

_get_ident = _thread.get_ident
_real_lock = _thread.allocate_lock
_real_rlock = threading.RLock
_orig = {
    "start": threading.Thread.start,
    "join": threading.Thread.join,
    "is_alive": threading.Thread.is_alive,
    "newname": threading._newname,  # type: ignore[attr-defined]
    "submit": ThreadPoolExecutor.submit,
    "shutdown": ThreadPoolExecutor.shutdown,
    "sleep": time.sleep,
    "monotonic": time.monotonic,
    "perf_counter": time.perf_counter,
    "time": time.time,
}
_EPOCH = 1_700_000_000.0  # virtual time.time() at the start of every run


def _scheduler() -> Scheduler | None:
    sched = hooks._scheduler
    if sched is None or _get_ident() not in sched.by_ident:  # type: ignore[attr-defined]
        return None
    return sched  # type: ignore[return-value]


def _agent() -> Agent | None:
    """The running exploration's agent in this thread, or None (not controlled)."""
    sched = hooks._scheduler
    if sched is None:
        return None
    agent: Agent | None = sched.by_ident.get(_get_ident())  # type: ignore[attr-defined]
    return agent


_STDLIB = os.path.dirname(threading.__file__)


_FUTURES = os.path.join(_STDLIB, "concurrent", "futures")
_RACEFREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the racefree package


def _made_by() -> str:
    """Who made the lock: a Future ("bookkeeping": its condition guards a few lines of
    state, directly or through ``threading.Condition``), the rest of the standard
    library ("internal": a Queue's, an Event's), site-packages or racefree's own
    store ("library"), or user code ("")."""
    caller = sys._getframe(2)
    name = caller.f_code.co_filename
    if name.startswith(_STDLIB) and "-packages" not in name:
        outer = caller.f_back
        for filename in (name, outer.f_code.co_filename if outer is not None else ""):
            if filename.startswith(_FUTURES):
                return "bookkeeping"
        return "internal"
    if "-packages" in name or name.startswith(_RACEFREE):
        return "library"  # a real switch point, folded into the agent's step in timelines
    return ""


def _site() -> str:
    """``file:line`` of the code that asked for the lock: the first caller outside the
    standard library (an Event's lock is named where the Event was made)."""
    frame = sys._getframe(2)
    for _ in range(6):
        name = frame.f_code.co_filename
        outer = frame.f_back
        if outer is None or not name.startswith(_STDLIB) or "-packages" in name:
            break
        frame = outer
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _lock() -> Any:
    sched = _scheduler()
    if sched is None:
        return _real_lock()
    return VLock(sched, made_by=_made_by(), site=_site())


def _rlock(*args: Any, **kwargs: Any) -> Any:
    sched = _scheduler()
    if sched is None:
        return _real_rlock(*args, **kwargs)
    return VLock(sched, reentrant=True, made_by=_made_by(), site=_site())


def _start(self: threading.Thread) -> None:
    me = _agent()
    if me is None:
        return _orig["start"](self)  # type: ignore[no-any-return]
    sched = me.run
    if sched.adopts(self, sys._getframe(1)):
        sched.spawn(me, self)
    else:
        sched.start_free(me, self, lambda: _orig["start"](self))
    return None


def _join(self: threading.Thread, timeout: float | None = None) -> None:
    agent: Agent | None = getattr(self, "_racefree_agent", None)
    if agent is None:
        return _orig["join"](self, timeout)  # type: ignore[no-any-return]
    me = _agent()
    if me is None or agent.run is not me.run:
        return None  # its run is over: every agent of it has finished or been left behind
    if me is agent:
        raise RuntimeError("cannot join current thread")
    me.run.join(me, agent, timeout)
    return None


def _is_alive(self: threading.Thread) -> bool:
    agent: Agent | None = getattr(self, "_racefree_agent", None)
    if agent is None:
        return _orig["is_alive"](self)  # type: ignore[no-any-return]
    return agent.state != DONE


def _newname(name_template: str = "Thread-%d") -> str:
    me = _agent()
    if me is None:
        return _orig["newname"](name_template)  # type: ignore[no-any-return]
    me.run.thread_names += 1
    return name_template % me.run.thread_names


def _submit(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    me = _agent()
    if me is None:
        return _orig["submit"](self, fn, *args, **kwargs)
    return me.run.executor_submit(me, self, fn, args, kwargs)


def _shutdown(self: ThreadPoolExecutor, wait: bool = True, *, cancel_futures: bool = False) -> None:
    if getattr(self, "_racefree_state", None) is None:
        return _orig["shutdown"](self, wait, cancel_futures=cancel_futures)  # type: ignore[no-any-return]
    sched = _scheduler()
    if sched is not None and id(getattr(self, "_racefree_run", None)) == id(sched):
        sched.executor_shutdown(self, wait, cancel_futures)
    else:  # the run that used this pool is over: its workers have finished
        self._shutdown = True
    return None


def _sleep(seconds: float) -> None:
    me = _agent()
    if me is None:
        return _orig["sleep"](seconds)  # type: ignore[no-any-return]
    me.run.sleep(me, seconds)
    return None


def _read_clock(sched: Scheduler) -> None:
    # A loop that reads the clock (a deadline) is no pure poll (strategies/fair.py). A flag,
    # not a footprint key: reading the clock must not change where steps end. Reads by
    # racefree (an event's timestamp) or the standard library (a log record's time) are
    # not a deadline of the agent's; user code and site-packages are.
    step = sched.step
    if step is None:
        return
    name = sys._getframe(2).f_code.co_filename
    if name.startswith(_RACEFREE) or (name.startswith(_STDLIB) and "-packages" not in name):
        return
    step.read_clock = True


def _monotonic() -> float:
    sched = _scheduler()
    if sched is None:
        return _orig["monotonic"]()  # type: ignore[no-any-return]
    _read_clock(sched)
    return sched.clock


def _perf_counter() -> float:
    sched = _scheduler()
    if sched is None:
        return _orig["perf_counter"]()  # type: ignore[no-any-return]
    _read_clock(sched)
    return sched.clock


def _time() -> float:
    sched = _scheduler()
    if sched is None:
        return _orig["time"]()  # type: ignore[no-any-return]
    _read_clock(sched)
    return _EPOCH + sched.clock


def _new_event_loop() -> asyncio.AbstractEventLoop:
    me = _agent()
    if me is None:
        return _orig["new_event_loop"]()  # type: ignore[no-any-return]
    from racefree.explore._loop import ControlledLoop

    return ControlledLoop(me.run, me)


def _get_loop(primitive: Any) -> Any:
    """asyncio's ``_LoopBoundMixin._get_loop`` (Lock, Event, Semaphore, Condition, Queue):
    a primitive that an earlier run bound to its loop (a module-level lock, made at import
    or lazily) is bound to this run's loop, as the program's one loop would hold it,
    instead of raising "is bound to a different event loop" in every later run."""
    bound = primitive._loop
    if bound is not None:
        from racefree.explore._loop import ControlledLoop

        loop = sys.modules["asyncio"].events._get_running_loop()
        if (
            loop is not bound
            and type(bound) is ControlledLoop
            and type(loop) is ControlledLoop
            and bound._racefree is not loop._racefree
        ):
            _rebind(primitive, bound, loop)
    return _orig["get_loop"](primitive)


def _rebind(primitive: Any, old: Any, new: Any) -> None:
    """Move ``primitive`` from an ended run's loop to ``new``; the waiters it kept are of
    tasks that no longer run."""
    primitive._loop = new
    for name in ("_waiters", "_getters", "_putters"):
        waiters = getattr(primitive, name, None)
        if waiters:
            for waiter in [w for w in waiters if w.get_loop() is old]:
                waiters.remove(waiter)


_PATCHES: list[tuple[Any, str, Any]] = [
    (threading, "Lock", _lock),
    (threading, "_allocate_lock", _lock),
    (threading, "RLock", _rlock),
    (threading, "_newname", _newname),
    (threading, "_time", _monotonic),
    (queue, "time", _monotonic),
    (threading.Thread, "start", _start),
    (threading.Thread, "join", _join),
    (threading.Thread, "is_alive", _is_alive),
    (ThreadPoolExecutor, "submit", _submit),
    (ThreadPoolExecutor, "shutdown", _shutdown),
    (time, "sleep", _sleep),
    (time, "monotonic", _monotonic),
    (time, "perf_counter", _perf_counter),
    (time, "time", _time),
]

_installed = 0
_guard = _real_lock()


def _with_asyncio() -> None:
    """Add the event-loop replacement: at the first exploration, not at ``import racefree``.

    A workflow may import asyncio during a run, and the explorer must already
    own its loops then, so an exploration imports asyncio; ``import racefree``
    alone does not (it would cost more than the rest of racefree)."""
    if "new_event_loop" in _orig:
        return
    import asyncio
    import asyncio.events
    import asyncio.mixins

    _orig["new_event_loop"] = asyncio.new_event_loop
    _PATCHES.append((asyncio, "new_event_loop", _new_event_loop))
    _PATCHES.append((asyncio.events, "new_event_loop", _new_event_loop))
    _orig["get_loop"] = asyncio.mixins._LoopBoundMixin._get_loop  # type: ignore[attr-defined]
    _PATCHES.append((asyncio.mixins._LoopBoundMixin, "_get_loop", _get_loop))


class installed:
    """``with installed():`` swaps the replacements in (re-entrant; counted)."""

    def __enter__(self) -> None:
        global _installed
        with _guard:
            if _installed == 0:
                _with_asyncio()
                _SAVED[:] = [(owner, name, getattr(owner, name)) for owner, name, _ in _PATCHES]
                for owner, name, replacement in _PATCHES:
                    setattr(owner, name, replacement)
            _installed += 1

    def __exit__(self, *exc_info: object) -> None:
        global _installed
        with _guard:
            _installed -= 1
            if _installed == 0:
                try:
                    _restore()
                except KeyboardInterrupt:
                    _restore()  # a Ctrl-C half-way: restoring is idempotent, so finish it
                    raise


def _restore() -> None:
    for owner, name, original in _SAVED:
        setattr(owner, name, original)


def is_installed() -> bool:
    """Is any replacement still in place? (False once every exploration has ended.)"""
    return any(getattr(owner, name) is replacement for owner, name, replacement in _PATCHES)


_SAVED: list[tuple[Any, str, Any]] = []
