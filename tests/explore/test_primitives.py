"""Locks, conditions, events and queues made during a run work outside it.

A library keeps a lock it made on first use in a module global; the first
use falls inside run 1. The lock must order the agents of every later run,
and be a plain lock after explore() returns and in threads the explorer does
not run.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any

import pytest

import racefree
from racefree import hooks
from racefree.explore import explore

_lock: Any = None
_queue: Any = None
_event: Any = None


def _lazy_lock() -> Any:
    global _lock
    if _lock is None:
        _lock = threading.Lock()
    return _lock


def _lazy_queue() -> Any:
    global _queue
    if _queue is None:
        _queue = queue.Queue()
    return _queue


def _lazy_event() -> Any:
    global _event
    if _event is None:
        _event = threading.Event()
    return _event


@pytest.fixture(autouse=True)
def _fresh_globals() -> None:
    global _lock, _queue, _event, _async_lock
    _lock = _queue = _event = _async_lock = None


def guarded_counter() -> dict[str, int]:
    """Two agents read-modify-write a counter under the lazily made module lock."""
    state = {"n": 0}

    def agent() -> None:
        with _lazy_lock():
            hooks.point("read", "n")
            seen = state["n"]
            time.sleep(0.1)  # another agent runs here, and must wait for the lock
            hooks.point("write", "n")
            state["n"] = seen + 1

    threads = [threading.Thread(target=agent, name=f"Agent{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state


def both_counted(state: dict[str, int]) -> bool:
    return state["n"] == 2


def test_a_lock_made_in_run_one_orders_every_later_run() -> None:
    result = explore(guarded_counter, strategy="exhaustive", invariants=[both_counted])
    assert result.ok, result.report()
    assert result.complete and result.runs > 1  # the later runs used run 1's lock


def test_a_lock_made_in_run_one_still_protects_random_runs() -> None:
    result = explore(guarded_counter, schedules=200, invariants=[both_counted], save_dir=None)
    assert result.ok, result.report()
    assert result.runs == 200


def test_the_lock_is_a_plain_lock_after_the_exploration() -> None:
    explore(guarded_counter, schedules=20, invariants=[both_counted], save_dir=None).check()
    lock = _lock
    assert lock is not None
    assert lock.acquire()
    assert lock.locked()
    got: list[bool] = []
    other = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.05)))
    other.start()
    other.join()
    assert got == [False]  # held here, so another thread cannot take it
    lock.release()
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    with lock:  # and the with-statement works as usual
        assert lock.locked()


def test_a_queue_and_an_event_made_in_a_run_work_after_it() -> None:
    def handoff() -> list[str]:
        box, ready = _lazy_queue(), _lazy_event()
        ready.clear()
        got: list[str] = []

        def consumer() -> None:
            ready.wait()
            got.append(box.get())

        thread = threading.Thread(target=consumer)
        thread.start()
        box.put("hello")
        ready.set()
        thread.join()
        return got

    result = explore(handoff, strategy="exhaustive", invariants=[lambda got: got == ["hello"]])
    assert result.ok and result.runs > 1, result.report()
    box, ready = _queue, _event
    ready.clear()
    received: list[str] = []
    consumer = threading.Thread(target=lambda: (ready.wait(), received.append(box.get())))
    consumer.start()
    box.put("after")
    ready.set()
    consumer.join(timeout=5)
    assert received == ["after"]
    assert box.empty()


def test_a_lock_left_held_by_an_abandoned_run_is_free_in_the_next() -> None:
    """A deadlocked run is unwound; a lock it left held must not poison the next run."""
    runs: list[int] = []

    def sometimes_stuck() -> None:
        lock = _lazy_lock()
        runs.append(1)
        lock.acquire()  # no with: nothing releases it when the run is abandoned
        if len(runs) == 1:
            stuck = threading.Event()
            stuck.wait()  # nobody sets it: a deadlock the explorer reports
        lock.release()

    result = explore(sometimes_stuck, schedules=3, keep_going=True, shrink=False, save_dir=None)
    kinds = [f.failure.kind for f in result.failures]
    assert kinds == ["deadlock"], result.report()
    assert result.runs == 3
    assert not _lock.locked()


def test_an_event_loop_kept_from_run_1_runs_as_a_plain_loop_later_and_after() -> None:
    """docs/explorer.md, Limits: a loop made in one run and run again in a later one is
    an ordinary loop there (its own clock is real time, its waits are not explored),
    and it still works after the exploration."""
    import asyncio

    kept: list[asyncio.AbstractEventLoop] = []
    clocks: list[float] = []

    def workflow() -> None:
        if not kept:
            kept.append(asyncio.new_event_loop())  # a library's lazily made loop

        async def step() -> float:
            await asyncio.sleep(0.001)
            return asyncio.get_running_loop().time()

        clocks.append(kept[0].run_until_complete(step()))

    real_before = time.monotonic()
    result = explore(workflow, schedules=3, strategy="random", save_dir=None)
    assert result.failure is None and result.runs == 3
    assert clocks[0] < 1.0  # run 1: the run's virtual clock, a millisecond in
    assert all(clock >= real_before for clock in clocks[1:])  # later runs: the real clock
    assert kept[0].run_until_complete(asyncio.sleep(0, result="works")) == "works"
    kept[0].close()


# --- asyncio primitives kept in module globals ------------------------------------------------

_async_lock: Any = None


def _lazy_async_lock() -> Any:
    global _async_lock
    if _async_lock is None:
        _async_lock = asyncio.Lock()
    return _async_lock


async def guarded_turns() -> list[str]:
    """Two tasks add a turn under a module-level asyncio.Lock made on first use; each run
    is a fresh event loop, as each asyncio.run of the program is."""
    session = racefree.track({"history": []}, name="session")

    async def add_turn(text: str, latency: float) -> None:
        async with _lazy_async_lock():
            history = session["history"]
            await asyncio.sleep(latency)  # the model call, with the lock held
            session["history"] = [*history, text]

    await asyncio.gather(add_turn("a", 1.0), add_turn("b", 0.5))
    return list(session["history"])


def test_an_asyncio_lock_made_in_run_one_serves_every_later_run() -> None:
    # It was bound to run 1's loop: every later run raised "is bound to a different event
    # loop", a false alarm on code that is right in a program's one loop.
    for strategy in ("exhaustive", "random"):
        result = explore(
            guarded_turns,
            strategy=strategy,
            schedules=100,
            invariants=[lambda history: sorted(history) == ["a", "b"]],
            save_dir=None,
        )
        assert result.ok, result.report()
    assert result.runs == 100  # random's later runs used run 1's lock
    assert _async_lock is not None


def three_guarded_agents() -> dict[str, int]:
    """Three agents read-modify-write a counter under the module lock that the workflow
    makes on first use, before it starts them (as a library's get_lock() does)."""
    state = {"n": 0}
    _lazy_lock()

    def agent() -> None:
        with _lazy_lock():
            hooks.point("read", "n")
            seen = state["n"]
            time.sleep(0.1)
            hooks.point("write", "n")
            state["n"] = seen + 1

    threads = [threading.Thread(target=agent, name=f"Agent{i}") for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state


def test_a_lock_keeps_its_name_in_every_run_so_each_ordering_counts_once() -> None:
    # Named by a count over the run, the lazily made lock had one name in run 1 and
    # another in each later run, by how many locks the agents had made before: the
    # first run counted as an ordering of its own ("all 7" for the 3! = 6 orders).
    lazily = explore(three_guarded_agents, strategy="exhaustive", save_dir=None)
    again = explore(three_guarded_agents, strategy="exhaustive", save_dir=None)  # lock kept
    assert lazily.complete and again.complete
    assert lazily.distinct == again.distinct == 6


async def two_tasks_make_a_lock_each() -> dict[str, str]:
    made: dict[str, str] = {}

    async def task(name: str, latency: float) -> None:
        await asyncio.sleep(latency)
        lock = threading.Lock()
        made[name] = lock.key  # the explorer's name for it (a VLock while exploring)
        with lock:
            pass

    await asyncio.gather(task("first", 0.01), task("second", 0.02))
    return made


def test_a_lock_is_named_by_the_task_that_made_it_whichever_task_runs_first() -> None:
    # The tasks of one loop are one thread: named by the thread's count, the two locks
    # took each other's names when the other task ran first.
    seen: list[dict[str, str]] = []
    result = explore(
        two_tasks_make_a_lock_each,
        strategy="random",
        schedules=30,
        invariants=[lambda made: seen.append(made) or True],
        save_dir=None,
    )
    assert result.ok and len(seen) == 30
    assert len({tuple(sorted(made.items())) for made in seen}) == 1, seen
    assert seen[0]["first"] != seen[0]["second"]
