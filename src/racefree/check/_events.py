"""How the checker reads events: which ops read, overwrite, append, suspend or guard.

Kept in one place so that every finding module classifies an event the same
way; ``docs/history.md`` documents the same table for people who write
histories by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from racefree.history import Event, History

__all__ = [
    "APPENDS",
    "ATOMIC",
    "OVERWRITES",
    "READS",
    "SUSPENSIONS",
    "event_list",
    "is_read",
    "is_write",
    "short",
    "version_of",
]

READS = frozenset({"read", "get", "snapshot"})
"""Ops that only look at a key."""

OVERWRITES = frozenset({"write", "set", "delete"})
"""Ops that replace a key's value with one the agent computed outside the store."""

APPENDS = frozenset({"append", "extend", "append_turn", "turn"})
"""Atomic ops that add items at the end of a list."""

ATOMIC = frozenset(
    {
        *APPENDS,
        "increment",
        "update",
        "compare_and_set",
        "claim",
        "apply",
        "commit",
        "insert",
        "remove",
        "pop",
    }
)
"""Ops done inside the store's atomic section (or as one atomic step): they
cannot lose another agent's write by themselves. A store records such an op
on a key it only read (a claim already held, a key a transaction only read)
with ``version_read`` and no ``version_written``: that event is a read."""

SUSPENSIONS = frozenset({"call", "llm", "tool", "sleep", "await", "yield", "wait", "release"})
"""Ops during which other agents may run: a model or tool call, a sleep, an
await, a wait, a lock release."""


def is_read(event: Event) -> bool:
    """True if the event looked at its key without changing it."""
    op = event.op
    if op in READS:
        return True
    return op in ATOMIC and event.version_written is None and event.version_read is not None


def is_write(event: Event) -> bool:
    """True if the event changed its key (an overwrite or an atomic write)."""
    op = event.op
    if op in OVERWRITES:
        return True
    return op in ATOMIC and not (event.version_written is None and event.version_read is not None)


def event_list(history: History | Iterable[Event]) -> list[Event]:
    """The events in ``seq`` order (sorted only when they are not already)."""
    events = history.events if isinstance(history, History) else list(history)
    previous = None
    for event in events:
        if previous is not None and event.seq < previous:
            return sorted(events, key=lambda e: e.seq)
        previous = event.seq
    return events


def version_of(event: Event, *, written: bool = False) -> str:
    """`` at v3`` when the event knows its version, else an empty string."""
    version = event.version_written if written else event.version_read
    return "" if version is None else f" at v{version}"


def short(value: Any, limit: int = 60) -> str:
    """A value as a short one-line JSON-ish text for stories."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # pragma: no cover - default=repr catches most
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
