"""Two bug shapes that no single strategy finds quickly (see strategies/portfolio.py).

Both use real threads and ``hooks.point`` accesses, as the store and ``track`` make
them; each returns its final state for the invariant beside it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from racefree.explore import hooks


def _run(*bodies: Any) -> None:
    threads = [threading.Thread(target=b, name=n) for n, b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def long_sequence_then_look() -> dict[str, Any]:
    """Depth 1 behind a long sequence: the reviewer's one look comes after all 20 tool
    calls of the worker, and then it files a second report. Each tool call is a
    step; the look must lose every one of 20 races to come last."""
    state: dict[str, Any] = {"calls": 0, "reports": 0}

    def worker() -> None:
        for _ in range(20):
            time.sleep(0.1)  # a tool call
            hooks.point("write", "calls")
            state["calls"] += 1
        hooks.point("write", "reports")
        state["reports"] += 1

    def reviewer() -> None:
        time.sleep(0.5)  # it looks early, as it usually does
        hooks.point("read", "calls")
        if state["calls"] == 20:  # the worker is done: the reviewer reports too
            hooks.point("write", "reports")
            state["reports"] += 1

    _run(("worker", worker), ("reviewer", reviewer))
    return state


def one_report(state: dict[str, Any]) -> bool:
    """Exactly one report is filed."""
    return bool(state["reports"] == 1)


def lost_update_among_noise() -> dict[str, Any]:
    """A lost update between two agents, then four unrelated agents that all write one
    busy key: depth-first search re-orders the later busy writes first (billions of
    orders) before it moves the counters' early steps."""
    state: dict[str, Any] = {"count": 0, "log": 0}

    def counter(start: float) -> None:
        time.sleep(start)  # b usually starts long after a has finished
        hooks.point("read", "count")
        seen = state["count"]
        time.sleep(0.1)  # a model call between the read and the write
        hooks.point("write", "count")
        state["count"] = seen + 1

    def noisy() -> None:
        time.sleep(2.0)  # they log after the counters are done
        for _ in range(6):
            hooks.point("write", "log")
            state["log"] += 1

    _run(
        ("counter-a", lambda: counter(0.0)),
        *((f"noise-{i}", noisy) for i in range(4)),
        ("counter-b", lambda: counter(1.0)),
    )
    return state


def both_counted(state: dict[str, Any]) -> bool:
    """Both counters' increments are kept."""
    return bool(state["count"] == 2)
