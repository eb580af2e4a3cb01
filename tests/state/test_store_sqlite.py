"""SQLite under contention: the threads of a process take turns in order; opening waits for none."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import racefree
from racefree.state.backends import sqlite as sqlite_backend
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


def taken_in_order_of_arrival(lock: Any, in_line: Callable[[], int]) -> list[int]:
    """The order in which 20 threads that stood in line for the held ``lock`` got it."""
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
        while in_line() < n + 1:  # wait until thread n stands in line
            time.sleep(0.001)
        pool.append(t)
    lock.release()
    for t in pool:
        t.join()
    return order


def test_the_writer_lock_is_handed_over_in_the_order_threads_asked() -> None:
    lock = FairSemaphore(1)
    assert taken_in_order_of_arrival(lock, lambda: len(lock._waiters)) == list(range(20))


def test_a_writer_that_waits_past_the_timeout_gives_up_and_leaves_the_line() -> None:
    lock = FairSemaphore(1)
    assert lock.idle()
    assert lock.acquire(timeout=1)
    assert not lock.idle()
    assert not lock.acquire(timeout=0.05)
    assert len(lock._waiters) == 0
    lock.release()
    assert lock.idle()
    assert lock.acquire(timeout=0.05)


def test_a_semaphore_of_two_places_lets_two_in_and_queues_the_third() -> None:
    places = FairSemaphore(2)
    assert places.acquire(timeout=0.01)
    assert places.acquire(timeout=0.01)
    assert not places.acquire(timeout=0.01)
    places.release()
    assert places.acquire(timeout=0.01)


def test_increments_sql_cannot_add_exactly_are_decided_in_python(tmp_path: Path) -> None:
    store = racefree.open_store(f"sqlite:///{tmp_path / 'numbers.db'}")
    cases = [
        (99_999_999_999_999_999, 2**53 - 1),  # 17 digits: added in SQL, exactly
        (10**17, 1),  # 18 digits: Python's arithmetic
        (-(10**40), 10**40 + 1),
        (1.5, 1),
        (None, 5),
        (True, 1),  # a bool is no number
    ]
    for n, (start, amount) in enumerate(cases):
        key = f"n{n}"
        store.set(key, start)
        if start is True:
            with pytest.raises(racefree.WrongTypeError):
                store.increment(key, amount)
            assert store.get_versioned(key) == (True, 1)
            continue
        expected = (start or 0) + amount
        assert store.increment(key, amount) == expected
        assert store.get_versioned(key) == (expected, 2)
        assert type(store.get(key)) is type(expected)
    store.close()


def test_without_returning_every_op_runs_as_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a SQLite older than 3.35 (no RETURNING) does: the same answers.
    monkeypatch.setattr(sqlite_backend, "_RETURNING", False)
    store = racefree.open_store(f"sqlite:///{tmp_path / 'old.db'}")
    ran: list[str] = []
    store._backend._connection().set_trace_callback(ran.append)  # type: ignore[attr-defined]
    assert store.set("k", {"a": 1}) == 1
    assert store.compare_and_set("k", 2, expected_version=1) == 2
    assert store.increment("n", 2) == 2
    assert store.claim("job", "ann") is True
    assert store.update("n", lambda v: v + 1) == 3
    assert store.extend("log", [1, 2]) == 0
    assert store.append("log", 3) == 2
    assert store.get("log") == [1, 2, 3]
    assert store.get_versioned("k") == (2, 2)
    inside = False
    for statement in ran:
        if statement.startswith("BEGIN"):
            inside = True
        assert inside, statement
        if statement == "COMMIT":
            inside = False
    assert not any("RETURNING" in statement for statement in ran)
    store.close()


def test_writers_that_stood_in_line_get_the_lock_in_the_order_they_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_backend, "_POLLERS", 0)  # every waiter stands in line at once
    lock = sqlite_backend.WriterLock()
    assert taken_in_order_of_arrival(lock, lambda: len(lock._line)) == list(range(20))
    assert lock.idle()


def test_a_polling_writer_gets_a_lock_freed_while_it_sleeps() -> None:
    lock = sqlite_backend.WriterLock()
    assert lock.acquire(timeout=1)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=10)))
    waiter.start()
    time.sleep(0.002)
    lock.release()  # nobody stands in line: freed, and the poller takes it at its next try
    waiter.join()
    assert got == [True]
    assert not lock.idle()
    lock.release()
    assert lock.idle()


def test_a_writer_past_its_timeout_in_line_gives_up_and_leaves_the_line() -> None:
    lock = sqlite_backend.WriterLock()
    assert lock.acquire(timeout=1)
    assert not lock.idle()
    began = time.monotonic()
    assert not lock.acquire(timeout=0.05)  # polled, then stood in line, then gave up
    assert time.monotonic() - began >= 0.05
    assert len(lock._line) == 0
    lock.release()
    assert lock.idle()
    assert lock.acquire(timeout=0.05)


def test_the_writer_lock_is_never_lost_among_many_threads() -> None:
    lock = sqlite_backend.WriterLock()
    inside = [0]
    worst = [0]
    counted = [0]

    def work() -> None:
        for _ in range(200):
            assert lock.acquire(timeout=30)
            inside[0] += 1
            worst[0] = max(worst[0], inside[0])
            counted[0] += 1
            inside[0] -= 1
            lock.release()

    pool = [threading.Thread(target=work) for _ in range(32)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert (worst[0], counted[0]) == (1, 32 * 200)
    assert lock.idle()


def test_a_writer_that_finds_a_long_line_joins_it_without_polling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With a patience of a minute, a waiter that polled first would not stand in line
    # within the few seconds this test waits.
    monkeypatch.setattr(sqlite_backend, "_PATIENCE", 60.0)
    lock = sqlite_backend.WriterLock()
    assert lock.acquire(timeout=1)
    standing = [threading.Lock() for _ in range(sqlite_backend._POLLERS)]
    for turn in standing:
        turn.acquire()
    lock._line.extend(standing)  # a line as long as the pollers allowed
    got: list[bool] = []
    late = threading.Thread(target=lambda: got.append(lock.acquire(timeout=30)))
    late.start()
    deadline = time.monotonic() + 5
    while len(lock._line) <= len(standing) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(lock._line) == len(standing) + 1 and lock._polling == 0
    for _ in standing:  # hand the turn down the line: the late writer gets it last
        lock.release()
    lock.release()
    late.join()
    assert got == [True]
