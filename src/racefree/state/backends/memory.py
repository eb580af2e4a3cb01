"""The in-memory backend (``memory://``): one process, threads and asyncio tasks.

State is a dict of :class:`~racefree.state._core.KeyState` guarded by one
``threading.Lock``. Inside the lock the backend only reads, decides (pure,
no I/O) and writes, so the asyncio flavour calls straight into the sync one
without blocking the event loop for longer than that. Every ``open_store``
of ``memory://`` is a fresh, private store; it lives as long as the process.
"""

from __future__ import annotations

import time
from _thread import LockType as Lock
from _thread import allocate_lock, get_ident
from typing import Any

from racefree.errors import UsageError
from racefree.history import History
from racefree.state._core import (
    DECIDERS,
    EMPTY,
    PUT,
    RUNS_USER_CODE,
    KeyState,
    Op,
    decide,
    decide_all,
    describe_events,
    replay,
)
from racefree.state._values import copy_json
from racefree.state.backends.base import AsyncBackend, Backend

__all__ = ["AsyncMemoryBackend", "MemoryBackend", "open_async", "open_sync"]

GUARANTEE = "Safe across the threads and asyncio tasks of one process."

_SPINS = 200

_new = tuple.__new__  # builds an Op without the NamedTuple's generated __new__ (hot path)


def _acquire_contended(lock: Lock) -> None:
    """Take a lock that another thread holds, without forming a lock convoy.

    Under the GIL the holder can be switched out in the middle of its critical
    section. Threads that then sleep in a blocking ``acquire`` are handed the
    lock one by one when it is released, each needing a GIL handoff, and the
    whole store slows to one context switch per operation (measured: 4x
    slower with 4 threads). Yielding the GIL with ``sleep(0)`` between
    non-blocking tries lets the holder finish instead; after ``_SPINS`` tries
    (a long critical section, such as a slow update function) we block like
    any lock. The spin is the same on every build: on one without a GIL it is
    plain busy-waiting, bounded by ``_SPINS`` tries.
    """
    for _ in range(_SPINS):
        time.sleep(0)
        if lock.acquire(False):
            return
    lock.acquire()


class MemoryBackend(Backend):
    """State in a dict, every op under one lock: atomic within one process."""

    schemes = ("memory",)
    guarantee = GUARANTEE
    optimistic = False

    def __init__(self, *, history: History | None = None) -> None:
        # A real lock even when this module was first imported inside an exploration,
        # where threading.Lock is the explorer's (every later store's lock would be a
        # switch point of its own beside the store's hooks, and the search much larger).
        # Nothing can switch agents while it is held: an op only reads, decides, writes.
        self._lock = allocate_lock()
        self._cells: dict[str, KeyState] = {}
        self._done: dict[str, tuple[str, tuple[str, ...] | None, Any]] = {}
        self._history = history
        # The thread running caller code (update's fn, a custom reducer) under
        # the lock, so that a store call from inside it fails instead of
        # deadlocking.
        self._user_code_thread: int | None = None

    @property
    def history(self) -> History | None:
        """The history that :meth:`execute` records events into, or ``None``."""
        return self._history

    def execute(self, op: Op) -> Any:
        """Carry out one op under the lock: read, decide, record, write (``Backend.execute``)."""
        lock = self._lock
        if not lock.acquire(False):
            self._wait_for(lock, op.name)
        try:
            keys = op.keys
            idempotency_key = op.idempotency_key
            cells = self._cells
            if idempotency_key is not None:
                record = self._done.get(idempotency_key)
                if record is not None:
                    return copy_json(replay(op, record))
            if keys is None:
                states: list[KeyState] = list(cells.values())
                decision = decide_all(op, cells)
                keys = tuple(cells)
            else:
                states = (
                    [cells.get(keys[0], EMPTY)]
                    if len(keys) == 1
                    else [cells.get(key, EMPTY) for key in keys]
                )
                if op.name in RUNS_USER_CODE:
                    self._user_code_thread = get_ident()
                    try:
                        decision = decide(op, states)
                    finally:
                        self._user_code_thread = None
                else:
                    decision = DECIDERS[op.name](op, states)
            if self._history is not None:
                for event in describe_events(op, keys, states, decision):
                    self._history.record(**event)
            writer = op.agent
            for kind, key, payload in decision.effects:
                cell = cells.get(key)
                if cell is None:
                    cells[key] = KeyState(payload if kind == PUT else list(payload), 1, writer)
                else:
                    if kind == PUT:
                        cell.value = payload
                    else:
                        cell.value.extend(payload)
                    cell.version += 1
                    cell.writer = writer
            result = decision.result
            if decision.shares_state:
                result = copy_json(result)
            if idempotency_key is not None:
                self._done[idempotency_key] = (op.name, op.keys, copy_json(result))
            return result
        finally:
            lock.release()

    def _wait_for(self, lock: Lock, op_name: str) -> None:
        """Take the lock that another call holds, or refuse a call from inside the store.

        Caller code the store runs (update's fn, a custom reducer) runs under
        the lock, so a store call from inside it always finds the lock taken:
        checking here, off the uncontended path, catches every such call.
        """
        if self._user_code_thread is not None and self._user_code_thread == get_ident():
            raise UsageError(
                f"The store was called ({op_name}) from inside a function the store is "
                "running (an update function or a custom reducer). Such a function must "
                "only compute the new value from the one it is given; do other store "
                "calls before or after."
            )
        _acquire_contended(lock)

    # ------------------------------------------------------------ fast path

    def fast_path(self) -> MemoryBackend | None:
        """This backend (see ``FastPath``) when no history is attached, else ``None``."""
        return self if self._history is None else None

    def read(self, key: str) -> tuple[Any, int]:
        """``(value, version)`` of ``key``: the result of ``get`` with nothing recorded."""
        lock = self._lock
        if not lock.acquire(False):
            self._wait_for(lock, "get")
        try:
            cell = self._cells.get(key)
            if cell is None:
                return None, 0
            value = cell.value
            # The copy is made under the lock: a stored list grows in place.
            if type(value) is list or type(value) is dict:
                value = copy_json(value)
            return value, cell.version
        finally:
            lock.release()

    def append(self, key: str, item: Any) -> int:
        """``append`` of ``item`` (owned by the caller) with no agent or idempotency key.

        As :meth:`extend`, without building a list for the one item.
        """
        lock = self._lock
        if not lock.acquire(False):
            self._wait_for(lock, "append")
        try:
            cell = self._cells.get(key)
            if cell is not None:
                value = cell.value
                if type(value) is list:
                    value.append(item)
                    cell.version += 1
                    cell.writer = None
                    return len(value) - 1
        finally:
            lock.release()
        result: int = self.execute(_new(Op, ("append", (key,), ([item],), None, None)))
        return result

    def extend(self, key: str, items: list[Any]) -> int:
        """``extend`` of ``items`` (owned by the caller) with no agent or idempotency key.

        Only the common case is done here, a key that holds a list; a key
        never written or of another type goes through :meth:`execute`, so
        the shared decision creates it or refuses the op.
        """
        lock = self._lock
        if not lock.acquire(False):
            self._wait_for(lock, "extend")
        try:
            cell = self._cells.get(key)
            if cell is not None:
                value = cell.value
                if type(value) is list:
                    index = len(value)
                    value += items
                    cell.version += 1
                    cell.writer = None
                    return index
        finally:
            lock.release()
        result: int = self.execute(_new(Op, ("extend", (key,), (items,), None, None)))
        return result

    def close(self) -> None:
        """Nothing to release; the state stays readable until the store is dropped."""


class AsyncMemoryBackend(AsyncBackend):
    """The memory backend for asyncio: the same lock, no awaiting inside it."""

    schemes = ("memory",)
    guarantee = GUARANTEE
    optimistic = False

    def __init__(self, *, history: History | None = None) -> None:
        self._sync = MemoryBackend(history=history)

    @property
    def history(self) -> History | None:
        """The history that :meth:`execute` records events into, or ``None``."""
        return self._sync.history

    async def execute(self, op: Op) -> Any:
        """Carry out one op (see ``Backend.execute``); the critical section does no I/O."""
        return self._sync.execute(op)

    def fast_path(self) -> MemoryBackend | None:
        """The sync backend's fast path: its calls never wait for I/O."""
        return self._sync.fast_path()

    async def aclose(self) -> None:
        """Nothing to release."""


def _check_url(url: str) -> None:
    """``memory://`` takes no option; one given is a mistake worth saying."""
    from racefree.state.backends import redact
    from racefree.state.backends._shared import query_options

    query_options(url, {}, redact(url))


def open_sync(url: str, *, history: History | None) -> MemoryBackend:
    """Open a fresh in-memory backend for ``url`` (``memory://``)."""
    _check_url(url)
    return MemoryBackend(history=history)


def open_async(url: str, *, history: History | None) -> AsyncMemoryBackend:
    """Open a fresh in-memory backend for asyncio."""
    _check_url(url)
    return AsyncMemoryBackend(history=history)
