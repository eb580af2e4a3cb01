"""The lesson workflows, ready to explore: ``racefree explore racefree.explore.lessons:unsafe``.

Each function runs one lesson run with three agents (Researcher, Analyzer,
Writer) and returns the final session; its ``invariants`` attribute lists the
checks that ``racefree explore`` applies when none are given. The agent code
is the lesson scripts' own (``examples/01-race-conditions`` and
``02-async-await``, loaded by path), on a session that ``racefree.track``
records, so every read and write of it is a scheduling point; the explorer
only chooses the order in which the agents' steps run.
"""

from __future__ import annotations

from typing import Any

from racefree.scenarios import lesson01, lesson02
from racefree.scenarios.course import play_script
from racefree.scenarios.llm import agent_names

__all__ = [
    "NAMES",
    "gather_await_first",
    "gather_locked",
    "gather_unsafe",
    "locked",
    "nothing_lost",
    "unsafe",
]

NAMES = agent_names(3)


def nothing_lost(session: dict[str, Any]) -> bool:
    """Every agent's reply is in the conversation history: no update was lost."""
    kept = {entry["agent"] for entry in session[lesson01.HISTORY]}
    missing = [name for name in NAMES if name not in kept]
    assert not missing, f"lost: {', '.join(missing)} (their entries are gone from the history)"
    return True


def unsafe() -> dict[str, Any]:
    """Lesson 01, broken (``broken_parallel.py``): read, call the model, write the copy back."""
    return play_script(lesson01.LESSON, "broken_parallel", NAMES, seed=1)


def locked() -> dict[str, Any]:
    """Lesson 01, fixed (``simple_fix.py``): the call outside a lock, the update inside it."""
    return play_script(lesson01.LESSON, "simple_fix", NAMES, seed=1)


def gather_unsafe() -> dict[str, Any]:
    """Lesson 02, broken (``gather_race.py``): the same bug in asyncio tasks under ``gather``."""
    return play_script(lesson02.LESSON, "gather_race", NAMES, seed=1)


def gather_locked() -> dict[str, Any]:
    """Lesson 02, fixed (``gather_with_lock.py``): an ``asyncio.Lock`` across the await."""
    return play_script(lesson02.LESSON, "gather_with_lock", NAMES, seed=1)


def gather_await_first() -> dict[str, Any]:
    """Lesson 02, fixed without a lock (``gather_await_first.py``): await, then update."""
    return play_script(lesson02.LESSON, "gather_await_first", NAMES, seed=1)


for _workflow in (unsafe, locked, gather_unsafe, gather_locked, gather_await_first):
    _workflow.invariants = (nothing_lost,)  # type: ignore[attr-defined]
