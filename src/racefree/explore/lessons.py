"""The lesson workflows, ready to explore: ``racefree explore racefree.explore.lessons:unsafe``.

Each function runs one lesson run with three agents (Researcher, Analyzer,
Writer) and returns the final session; its ``invariants`` attribute lists the
checks that ``racefree explore`` applies when none are given. The agent code
is the lessons' own (``racefree.scenarios.lesson01`` and ``lesson02``); the
explorer only chooses the order in which the agents' steps run.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from racefree.history import History
from racefree.scenarios import lesson01, lesson02
from racefree.scenarios.llm import SimulatedLLM, agent_names

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
    """Lesson 01, broken: read the session, call the model, write the copy back (threads)."""
    return lesson01.run_broken_parallel(NAMES, seed=1).final_state


def locked() -> dict[str, Any]:
    """Lesson 01, fixed: the model call outside a lock, the read-modify-write inside it.

    The lesson's ``locked_agent`` in a thread pool, as ``run_simple_fix`` runs it,
    without the progress queue that only feeds the script's printing.
    """
    llm, session, history = SimulatedLLM(1, 1.0), lesson01.new_session(), History()
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=len(NAMES), thread_name_prefix="agent") as pool:
        futures = [
            pool.submit(lesson01.locked_agent, n, session, lock, llm, history) for n in NAMES
        ]
        for future in futures:
            future.result()
    return session


def gather_unsafe() -> dict[str, Any]:
    """Lesson 02, broken: the same bug in asyncio tasks under ``gather``."""
    return lesson02.run_gather_unsafe(NAMES, seed=1).final_state


def gather_locked() -> dict[str, Any]:
    """Lesson 02, fixed: an ``asyncio.Lock`` held from the read, across the await, to the write."""
    return lesson02.run_gather_with_lock(NAMES, seed=1).final_state


def gather_await_first() -> dict[str, Any]:
    """Lesson 02, fixed without a lock: await the model, then update with no await between."""
    return lesson02.run_gather_await_first(NAMES, seed=1).final_state


for _workflow in (unsafe, locked, gather_unsafe, gather_locked, gather_await_first):
    _workflow.invariants = (nothing_lost,)  # type: ignore[attr-defined]
