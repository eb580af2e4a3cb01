"""Code that runs in child processes of the multi-process store tests.

Started with the "spawn" method, so each child is a fresh interpreter that
imports this module; keep it free of side effects at import time.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Any

import racefree

REDUCERS: dict[str, racefree.Reducer] = {"events": "append", "tokens": "add"}


def hammer(url: str, worker: int, ops: int, start: Any) -> None:
    """Hit one store from this process: appends, increments, updates, applies, transfers."""
    store = racefree.open_store(url, reducers=REDUCERS, max_attempts=10_000)

    def transfer(tx: racefree.Transaction) -> None:
        a, b = tx.get("balance:a"), tx.get("balance:b")
        tx.set("balance:a", a - 1)
        tx.set("balance:b", b + 1)

    with racefree.agent(f"process-{worker}"):
        start.wait()
        for n in range(ops):
            store.append("log", [worker, n])
            store.increment("count")
            store.update("total", lambda v: (v or 0) + 2)
            store.apply({"events": [[worker, n]], "tokens": 3})
            store.transaction(transfer)
    store.close()


def transfers(url: str, count: int) -> None:
    """Move ``count`` units from balance:a to balance:b, one transaction each."""
    store = racefree.open_store(url, max_attempts=10_000)

    def transfer(tx: racefree.Transaction) -> None:
        a, b = tx.get("balance:a"), tx.get("balance:b")
        tx.set("balance:a", a - 1)
        tx.set("balance:b", b + 1)
        tx.append("moves", 1)

    for _ in range(count):
        store.transaction(transfer)
    store.close()


def stuck_inside(url: str, how: str, signal: Connection) -> None:
    """Enter a write and stay inside it: tell the parent, then wait to be killed.

    ``update``: inside ``update``'s function, which on SQLite runs while this
    process holds the database's write lock. ``transaction``: inside a
    transaction's body, after it has read and buffered writes to both keys.
    """
    store = racefree.open_store(url)

    def never_returns() -> None:
        signal.send("inside")
        signal.recv()  # the parent never answers: it kills this process
        raise AssertionError("the parent should have killed this process")

    if how == "update":

        def drain(value: Any) -> Any:
            never_returns()
            return 0

        store.update("balance:a", drain)
    else:
        with store.transaction() as tx:
            tx.set("balance:a", 0)
            tx.set("balance:b", 0)
            tx.append("moves", "half done")
            never_returns()


def set_many(url: str, worker: int, count: int, start: Any, out: Connection) -> None:
    """Set one shared key ``count`` times from this process; send back the versions returned."""
    store = racefree.open_store(url)
    with racefree.agent(f"process-{worker}"):
        start.wait()
        versions = [
            store.set("shared", [worker, n] if n % 7 == 0 else {"w": worker, "n": n})
            for n in range(count)
        ]
        seen = [store.get_versioned("shared").version for _ in range(3)]
    out.send((versions, seen))
    out.close()
    store.close()
