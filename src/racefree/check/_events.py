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
    "version_name",
    "version_of",
    "word",
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


def word(event: Event, name: str, default: str) -> str:
    """The recorder's word for ``name`` in this event's story, else ``default``.

    A recorder (a framework integration, a hand-written history) tells the
    story in its own words through meta ``{"words": {...}}``: ``verb`` (what
    the event did to its key, in the past tense: ``"saved"``), ``version``
    (what the key's versions are called: ``"checkpoint"``), ``change`` (what
    a write of the key is to the people who read the story: ``"turn"``) and
    ``fix`` (the sentence of advice that ends a lost-update story). The
    checker decides from ops and order alone; words only change the text.
    """
    words = event.meta.get("words") if event.meta else None
    if isinstance(words, dict):
        value = words.get(name)
        if isinstance(value, str) and value:
            return value
    return default


def version_name(event: Event, version: int) -> str:
    """``v3``, or in the recorder's words (``checkpoint 3``)."""
    noun = word(event, "version", "")
    return f"{noun} {version}" if noun else f"v{version}"


def version_of(event: Event, *, written: bool = False) -> str:
    """`` at v3`` when the event knows its version, else an empty string.

    In a recorder's words a version read is `` at checkpoint 3`` and one
    written `` as checkpoint 4``.
    """
    version = event.version_written if written else event.version_read
    if version is None:
        return ""
    if not word(event, "version", ""):
        return f" at v{version}"
    return f" {'as' if written else 'at'} {version_name(event, version)}"


def short(value: Any, limit: int = 60) -> str:
    """A value as a short one-line JSON-ish text for stories."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # pragma: no cover - default=repr catches most
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
