"""SQLite under contention: the threads of a process take turns in order; opening waits for none."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import racefree
from racefree.state.backends._shared import FairSemaphore
from tests.state.threads import writers_lose_nothing


def test_500_threads_of_one_process_write_without_a_failure(tmp_path: Path) -> None:
    # With every thread polling SQLite's own lock (which sleeps between tries),
    # some waited past the timeout at 1,000 threads while others progressed;
    # the figures are in benchmarks/bench_load.py, the claim here is correctness.
    store = racefree.open_store(f"sqlite:///{tmp_path / 'busy.db'}")
    writers_lose_nothing(store, 500, 10)
    store.close()


def test_opening_an_existing_store_takes_no_write_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}?timeout=0.5"
    with racefree.open_store(url) as store:
        store.set("k", 1)
    writer = sqlite3.connect(tmp_path / "shared.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
    try:
        with racefree.open_store(url) as store:
            assert store.get("k") == 1  # opened and read while the write lock is held
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_the_writer_lock_is_handed_over_in_the_order_threads_asked() -> None:
    lock = FairSemaphore(1)
    assert lock.acquire(timeout=1)
    order: list[int] = []

    def wait_in_line(n: int) -> None:
        assert lock.acquire(timeout=10)
        order.append(n)
        lock.release()

    pool = []
    for n in range(20):
        t = threading.Thread(target=wait_in_line, args=(n,))
        t.start()
        while len(lock._waiters) < n + 1:  # wait until thread n stands in line
            time.sleep(0.001)
        pool.append(t)
    lock.release()
    for t in pool:
        t.join()
    assert order == list(range(20))


def test_a_writer_that_waits_past_the_timeout_gives_up_and_leaves_the_line() -> None:
    lock = FairSemaphore(1)
    assert lock.acquire(timeout=1)
    assert not lock.acquire(timeout=0.05)
    assert len(lock._waiters) == 0
    lock.release()
    assert lock.acquire(timeout=0.05)


def test_a_semaphore_of_two_places_lets_two_in_and_queues_the_third() -> None:
    places = FairSemaphore(2)
    assert places.acquire(timeout=0.01)
    assert places.acquire(timeout=0.01)
    assert not places.acquire(timeout=0.01)
    places.release()
    assert places.acquire(timeout=0.01)
