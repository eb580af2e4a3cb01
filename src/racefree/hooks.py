"""Scheduling points: the one call shared-state code makes for an explorer.

Code that touches shared state calls :func:`point` just *before* each access::

    from racefree import hooks

    hooks.point("read", "conversation_history")
    value = self._cells["conversation_history"]

When no exploration is running, :func:`point` is one global load and a
comparison: cheap enough for a store's hot path. During an exploration it
tells the scheduler what the running agent is about to do, and, in a thread,
lets the scheduler switch to another agent first. In an asyncio task it never
switches between tasks (a task is only switched out where it awaits); it only
records the access, and switches to another *thread* if one is runnable.

``kind`` says what the access does; ``key`` names the shared object. Kinds
that only look (``read``, ``get``, ``check``, ``snapshot``...; see
:data:`READ_KINDS`) are reads; every other kind with a key, including
``append`` and ``increment``, is a write to that key. A point without a key
(``call``, ``tool``, ``sleep``, ``yield``) touches nothing shared but is still
a place where another agent may run.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["READ_KINDS", "is_read", "note", "point"]

READ_KINDS = frozenset(
    {
        "read",
        "get",
        "get_versioned",
        "version",
        "versions",
        "snapshot",
        "check",
        "load",
        "peek",
        "len",
        "contains",
        "iter",
        "wait",
    }
)


def is_read(kind: str) -> bool:
    """True for kinds that only look at the key (see :data:`READ_KINDS`)."""
    return kind in READ_KINDS or kind.startswith("read")


class _Explorer(Protocol):
    def point(self, kind: str, key: str | None) -> None: ...

    def note(self, kind: str, key: str | None, event: Any) -> None: ...

    def clock_now(self) -> float | None: ...

    # A scheduling point, then ``guard.lock`` (a real lock) taken, waiting for it as a
    # decision; sets ``guard.holder``. False for a thread that is no agent: it takes
    # the lock itself. (A tracked object's lock: racefree.track.)
    def enter(self, guard: Any) -> bool: ...

    # The write just noted left its key as it was (a clear of an empty list): it still
    # orders steps, but a poll that makes it changes nothing.
    def left_as_it_was(self, key: str) -> None: ...


# The running exploration's scheduler, or None. Set only by racefree.explore; the
# store and track know only this protocol, never the explorer.
_scheduler: _Explorer | None = None


def point(kind: str, key: str | None = None) -> None:
    """Announce an access to shared state (before making it); may let another agent run first."""
    scheduler = _scheduler
    if scheduler is None:
        return
    scheduler.point(kind, key)


def note(kind: str, key: str | None = None) -> None:
    """Record an access that has just happened, without switching agents.

    For code that cannot yield where it is (inside a critical section it does
    not control): the access joins the running agent's current step, so that
    partial-order reduction and the timeline see it.
    """
    scheduler = _scheduler
    if scheduler is None:
        return
    scheduler.note(kind, key, None)
