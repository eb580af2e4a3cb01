"""Lesson 02's runs: the course scripts' async agents, run and measured.

The agents are in ``examples/02-async-await/*.py`` and nowhere else; each
function here loads one script by path and runs it on a tracked session
(:func:`racefree.scenarios.course.run_script`), for the explorer's lesson
workflows and the tests.
"""

from __future__ import annotations

from racefree.scenarios.course import run_script
from racefree.scenarios.result import ScenarioResult

__all__ = [
    "LESSON",
    "run_gather_await_first",
    "run_gather_unsafe",
    "run_gather_with_lock",
    "run_gather_with_store",
    "run_rate_limited",
    "run_sequential_awaits",
]

LESSON = "02-async-await"


def run_sequential_awaits(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """``sequential_awaits.py``: each task awaited before the next; slow, nothing lost."""
    return run_script(LESSON, "sequential_awaits", names, seed=seed, time_scale=time_scale)


def run_gather_unsafe(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """``gather_race.py``: read, await the model, write back, under ``gather``; work is lost."""
    return run_script(LESSON, "gather_race", names, seed=seed, time_scale=time_scale)


def run_gather_await_first(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """``gather_await_first.py``: await first, then update with no await; nothing lost."""
    return run_script(LESSON, "gather_await_first", names, seed=seed, time_scale=time_scale)


def run_gather_with_lock(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """``gather_with_lock.py``: an ``asyncio.Lock`` from read to write; the agents take turns."""
    return run_script(LESSON, "gather_with_lock", names, seed=seed, time_scale=time_scale)


def run_gather_with_store(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """``gather_with_store.py``: deltas merged by the store's reducers; nothing lost."""
    return run_script(LESSON, "gather_with_store", names, seed=seed, time_scale=time_scale)


def run_rate_limited(
    names: list[str], *, limit: int = 2, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """``rate_limit.py``: at most ``limit`` model calls in flight (an ``asyncio.Semaphore``)."""
    return run_script(LESSON, "rate_limit", names, seed=seed, time_scale=time_scale, limit=limit)
