"""Many threads on one store, released together: the helpers the load tests share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["run_together", "writers_lose_nothing"]


def run_together(
    threads_n: int, work: Callable[[int], None], during: Callable[[], None] | None = None
) -> list[BaseException]:
    """Run ``work(n)`` in ``threads_n`` threads released by one barrier; what they raised.

    ``during`` runs in the caller's thread once every thread has started.
    """
    start = threading.Barrier(threads_n)
    failures: list[BaseException] = []

    def run(n: int) -> None:
        start.wait()
        try:
            work(n)
        except BaseException as exc:  # collected: the callers assert there is none
            failures.append(exc)

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads_n)]
    for t in pool:
        t.start()
    if during is not None:
        during()
    for t in pool:
        t.join()
    return failures


def writers_lose_nothing(
    store: Any, threads_n: int, ops_n: int, during: Callable[[], None] | None = None
) -> None:
    """Each thread increments ``count`` and appends ``[n, i]`` ``ops_n`` times: all of it lands."""

    def work(n: int) -> None:
        for i in range(ops_n):
            store.increment("count")
            store.append("log", [n, i])

    assert run_together(threads_n, work, during) == []
    assert store.get("count") == threads_n * ops_n
    assert sorted(map(tuple, store.get("log"))) == sorted(
        (n, i) for n in range(threads_n) for i in range(ops_n)
    )
