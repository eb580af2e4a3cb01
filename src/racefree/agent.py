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
from collections.abc import Iterator

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


def current_agent() -> str:
    """The acting agent: explicit context, else asyncio task name, else thread name."""
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
                return str(task.get_name())
    return threading.current_thread().name
