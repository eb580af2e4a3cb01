"""A run blocked in something the explorer does not control ends, and says where.

The watchdog is real time; these tests give it a fraction of a second and
release what blocked the agent afterwards, so that its thread ends too.
"""

from __future__ import annotations

import _thread
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from racefree.errors import UsageError
from racefree.explore import explore

from .foreign import wait_for_threads


@pytest.fixture
def threads_before() -> Iterator[int]:
    yield _thread._count()


def test_a_socket_recv_ends_the_run_as_blocked(threads_before: int) -> None:
    inside, outside = socket.socketpair()

    def workflow() -> None:
        inside.recv(16)  # nothing is ever sent: blocks in C, outside the schedule

    try:
        result = explore(workflow, schedules=10, watchdog=0.3, save_dir=None)
    finally:
        outside.close()  # recv returns, and the abandoned agent unwinds
    found = result.failure
    assert found is not None
    assert found.failure.kind == "blocked"
    assert found.failure.title.startswith("main made no progress for 0.")
    assert "blocked in `inside.recv(16)  # nothing is ever sent" in found.failure.title
    assert "(test_watchdog.py:" in found.failure.title
    assert result.runs == 1
    inside.close()
    assert wait_for_threads(threads_before) <= threads_before


def test_a_lock_taken_before_the_exploration_ends_the_run_as_blocked(
    threads_before: int,
) -> None:
    taken = threading.Lock()  # a real lock: made before the exploration
    taken.acquire()

    def workflow() -> None:
        def fetcher() -> None:
            with taken:
                pass

        worker = threading.Thread(target=fetcher, name="Fetcher")
        worker.start()
        worker.join()

    try:
        result = explore(workflow, schedules=10, watchdog=0.3, save_dir=None)
    finally:
        taken.release()
    found = result.failure
    assert found is not None and found.failure.kind == "blocked"
    title = found.failure.title
    assert title.startswith("Fetcher made no progress for 0.")
    assert "blocked in `with taken:` (test_watchdog.py:" in title
    assert ", in fetcher): a call the explorer does not control" in title
    assert title.endswith("or raise watchdog if the step is only slow.")
    assert wait_for_threads(threads_before) <= threads_before


def test_a_blocked_run_is_not_reported_as_a_race() -> None:
    gate = threading.Lock()
    gate.acquire()
    state: dict[str, Any] = {"n": 0}

    def workflow() -> dict[str, Any]:
        with gate:
            state["n"] += 1
        return state

    try:
        result = explore(workflow, schedules=5, watchdog=0.2, keep_going=True, save_dir=None)
    finally:
        gate.release()
    assert [f.failure.kind for f in result.failures] == ["blocked"] * len(result.failures)
    assert result.failures and all("Checker" not in f.failure.title for f in result.failures)


def test_the_watchdog_leaves_a_slow_but_moving_run_alone() -> None:
    """A run far longer than the watchdog whose agent keeps reaching scheduling points."""

    def workflow() -> int:
        total = 0
        for _ in range(3000):
            sum(range(5000))  # real work, a fraction of a millisecond per step
            with threading.Lock():
                total += 1
        return total

    result = explore(workflow, schedules=1, watchdog=0.1, invariants=[lambda n: n == 3000])
    assert result.ok, result.report()
    assert result.wall_seconds > 0.1  # the premise: the run outlasted the watchdog


@pytest.mark.parametrize("value", [0, -1.0])
def test_a_watchdog_that_is_not_positive_is_refused(value: float) -> None:
    with pytest.raises(
        UsageError, match=rf"^watchdog must be a positive number of seconds or None, not {value}\.$"
    ):
        explore(lambda: None, watchdog=value)


def test_an_import_lock_held_by_a_parked_agent_ends_the_run_as_blocked(
    tmp_path: Any, threads_before: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One agent is parked half-way through importing a module (its top level sleeps:
    a scheduling point); another imports it too and waits on the import system's own
    lock, a real lock in C. Nothing the explorer controls can wake it."""
    import sys

    name = f"slow_module_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text("import time\ntime.sleep(1)\nREADY = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def importer() -> None:
        __import__(name)

    def workflow() -> None:
        sys.modules.pop(name, None)  # every run imports it anew, not only the first
        threads = [threading.Thread(target=importer, name=n) for n in ("First", "Second")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    try:
        # Exhaustive search tries the orders one by one: the one that parks an agent inside
        # the import while the other begins it is among the first, whatever the seed.
        result = explore(workflow, schedules=20, watchdog=0.3, save_dir=None, strategy="exhaustive")
    finally:
        sys.modules.pop(name, None)
    blocked = [f for f in result.failures if f.failure.kind == "blocked"]
    assert blocked, result.summary()
    title = blocked[0].failure.title
    assert title.startswith(("First made no progress", "Second made no progress")), title
    assert f"waiting for the import of {name}, which another agent began" in title
    assert wait_for_threads(threads_before) <= threads_before
