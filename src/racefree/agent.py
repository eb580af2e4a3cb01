"""Who is acting: the agent identity attached to every recorded event.

An explicit ``with agent("Researcher"):`` wins; otherwise the name of the
current asyncio task, else the name of the current thread. The explicit
context lives in a ``contextvars.ContextVar``, so asyncio tasks inherit it
from the code that created them. Whether a new thread inherits it depends on
the interpreter (``sys.flags.thread_inherit_context``: off by default, on by
default in free-threaded builds from 3.14), so do not rely on either: enter
``agent(...)`` inside the thread's own function.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["agent", "current_agent"]

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "racefree_agent", default=None
)


@contextlib.contextmanager
def agent(name: str) -> Iterator[str]:
    """Act as agent ``name`` inside the ``with`` block (threads and tasks alike)."""
    if not isinstance(name, str) or not name.strip():
        from racefree.errors import UsageError

        raise UsageError(f"An agent name must be a non-empty string, not {name!r}.")
    token = _current.set(name)
    try:
        yield name
    finally:
        _current.reset(token)


# An implicit name (a thread's or a task's) -> the thread or task that goes by it now. Two
# live threads named alike ("agent", the threads of two pools with one prefix), or two
# loops' tasks named alike, are two agents: merged under one name, a lost update between
# them would read as one agent's own writes.
_owners: dict[str, weakref.ref[Any]] = {}
_aliases: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()
_owners_lock = threading.Lock()


def _alive(owner: Any) -> bool:
    if isinstance(owner, threading.Thread):
        return owner.is_alive()
    return not owner.done()  # an asyncio task


def _unique(name: str, owner: Any) -> str:
    """``name``, or ``name #2`` (3, ...) while another live thread or task goes by it.

    An owner keeps the alias it was given for as long as it keeps its name."""
    with _owners_lock:
        given = _aliases.get(owner)
        if given is not None and given[0] == name:
            return given[1]
        alias, n = name, 1
        while True:
            held = _owners.get(alias)
            who = held() if held is not None else None
            if who is owner:
                return alias
            if who is None or not _alive(who):
                _owners[alias] = weakref.ref(owner)
                _aliases[owner] = (name, alias)
                return alias
            n += 1
            alias = f"{name} #{n}"


def _named(name: str, owner: Any) -> str:
    held = _owners.get(name)
    if held is not None and held() is owner:
        return name  # the common case: one look-up
    return _unique(name, owner)


def current_agent() -> str:
    """The acting agent: explicit context, else asyncio task name, else thread name.

    An implicit name that another live thread or task already goes by gets a
    number (``agent #2``): two agents are never merged into one."""
    explicit = _current.get()
    if explicit is not None:
        return explicit
    # No task runs unless asyncio was imported; racefree does not import it for you
    # (importing it costs more than all of racefree). _get_running_loop() returns None
    # outside a loop instead of raising like current_task() does; the store asks on
    # every recorded operation, and the exception path cost three times as much.
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        loop = asyncio._get_running_loop()
        if loop is not None:
            task = asyncio.current_task(loop)
            if task is not None:
                return _named(str(task.get_name()), task)
    thread = threading.current_thread()
    return _named(thread.name, thread)
