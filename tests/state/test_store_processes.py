"""Across OS processes: nothing lost, and a process killed mid-write harms nobody.

These run on the backends whose guarantee reaches other processes (SQLite,
Redis); ``memory://`` is private to one process by design. Children are
started with the "spawn" method: fresh interpreters, as on separate hosts.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

import racefree
from tests.state import workers

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def shared_url(backend: str, store_url: str) -> str:
    if backend == "memory":
        pytest.skip("memory:// is private to one process (its stated guarantee)")
    return store_url


def test_4_processes_hammering_the_same_keys_lose_nothing(shared_url: str) -> None:
    processes_n, ops = 4, 60
    with racefree.open_store(shared_url) as store:
        store.set("balance:a", 1_000)
        store.set("balance:b", 0)
    start = SPAWN.Barrier(processes_n)
    pool = [
        SPAWN.Process(target=workers.hammer, args=(shared_url, i, ops, start))
        for i in range(processes_n)
    ]
    for process in pool:
        process.start()
    for process in pool:
        process.join()
    assert [process.exitcode for process in pool] == [0] * processes_n

    total = processes_n * ops
    with racefree.open_store(shared_url) as store:
        log = store.get("log")
        assert len(log) == total
        for i in range(processes_n):  # every append once, in each process's own order
            assert [n for who, n in log if who == i] == list(range(ops))
        assert store.get("count") == total
        assert store.get("total") == 2 * total
        assert len(store.get("events")) == total
        assert store.get("tokens") == 3 * total
        assert (store.get("balance:a"), store.get("balance:b")) == (1_000 - total, total)
        assert store.version("log") == total
        assert store.version("count") == total


@pytest.mark.parametrize("how", ["update", "transaction"])
def test_a_process_killed_inside_a_write_leaves_the_store_consistent(
    shared_url: str, how: str
) -> None:
    with racefree.open_store(shared_url) as store:
        store.set("balance:a", 100)
        store.set("balance:b", 0)
        before = store.snapshot()
    parent_end, child_end = SPAWN.Pipe()
    victim = SPAWN.Process(target=workers.stuck_inside, args=(shared_url, how, child_end))
    victim.start()
    assert parent_end.recv() == "inside"  # the victim is inside its write now
    # Others start while the victim is inside (on SQLite after an update, they
    # wait for the write lock it holds); then the victim dies without a word.
    others = [SPAWN.Process(target=workers.transfers, args=(shared_url, 10)) for _ in range(3)]
    for process in others:
        process.start()
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    assert victim.exitcode == -signal.SIGKILL
    for process in others:
        process.join()
    assert [process.exitcode for process in others] == [0, 0, 0]

    with racefree.open_store(shared_url) as store:
        assert store.get("balance:a") == 70  # the victim wrote nothing, the others all
        assert store.get("balance:b") == 30
        assert store.get("moves") == [1] * 30
        assert store.version("balance:a") == before["balance:a"].version + 30
