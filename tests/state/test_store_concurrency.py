"""Under real concurrency nothing is lost: many threads, many asyncio tasks."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable

import racefree
from racefree import agent
from tests.state.threads import run_together

REDUCERS: dict[str, racefree.Reducer] = {"events": "append", "tokens": "add", "seen": "merge"}


# Memory takes the full load; engines, which pay a round trip per operation, a slice of it.
ENGINE_OPS = 400


def test_16_threads_times_10000_mixed_operations_lose_nothing(backend: str, store_url: str) -> None:
    threads_n, ops_n = 16, 10_000 if backend == "memory" else ENGINE_OPS
    store = racefree.open_store(store_url, reducers=REDUCERS, max_attempts=1_000)
    store.set("balance:a", 1_000)
    store.set("balance:b", 1_000)
    start = threading.Barrier(threads_n)
    done: Counter[str] = Counter()
    done_lock = threading.Lock()

    def transfer(tx: racefree.Transaction) -> None:
        a, b = tx.get("balance:a"), tx.get("balance:b")
        tx.set("balance:a", a - 1)
        tx.set("balance:b", b + 1)

    def work(i: int) -> None:
        mine: Counter[str] = Counter()
        with agent(f"agent-{i}"):
            start.wait()
            for n in range(ops_n):
                kind = n % 8
                if kind == 0:
                    store.append("log", [i, n])
                elif kind == 1:
                    store.increment("count")
                elif kind == 2:
                    store.update("total", lambda v: (v or 0) + 2)
                elif kind == 3:
                    store.apply({"events": [[i, n]], "tokens": 3, "seen": {str(i): n}})
                elif kind == 4:
                    store.extend("pairs", [[i, n, 0], [i, n, 1]])
                elif kind == 5:
                    store.transaction(transfer)
                elif kind == 6:
                    store.claim(f"task:{n}", f"agent-{i}")
                else:
                    store.get_versioned("count")
                mine[str(kind)] += 1
        with done_lock:
            done.update(mine)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert sum(done.values()) == threads_n * ops_n

    log = store.get("log")
    assert len(log) == done["0"]
    for i in range(threads_n):  # every append, once, in each thread's own order
        assert [n for who, n in log if who == i] == list(range(0, ops_n, 8))
    assert store.get("count") == done["1"]
    assert store.get("total") == 2 * done["2"]
    assert len(store.get("events")) == done["3"]
    assert store.get("tokens") == 3 * done["3"]
    assert store.get("seen") == {str(i): max(range(3, ops_n, 8)) for i in range(threads_n)}
    pairs = store.get("pairs")
    assert len(pairs) == 2 * done["4"]
    assert all(pairs[k][:2] == pairs[k + 1][:2] for k in range(0, len(pairs), 2))
    assert store.get("balance:a") == 1_000 - done["5"]
    assert store.get("balance:b") == 1_000 + done["5"]
    claimed = [store.get(f"task:{n}") for n in range(6, ops_n, 8)]
    assert all(owner is not None and owner.startswith("agent-") for owner in claimed)
    assert store.version("log") == done["0"]
    assert store.version("count") == done["1"]


def claim_race(store: racefree.Store, owners: int) -> list[str]:
    """Owners race for one key after a barrier; returns those that got True."""
    start = threading.Barrier(owners)
    wins: list[str] = []

    def race(name: str) -> None:
        start.wait()
        if store.claim("job", name):
            wins.append(name)

    pool = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(owners)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return wins


def test_exactly_one_of_many_threads_wins_a_claim(new_url: Callable[[], str]) -> None:
    for _ in range(20):
        store = racefree.open_store(new_url())
        wins = claim_race(store, 16)
        assert len(wins) == 1
        assert store.get("job") == wins[0]


def test_1000_asyncio_tasks_lose_nothing(backend: str, store_url: str) -> None:
    tasks_n = 1_000 if backend == "memory" else 200

    async def main() -> racefree.AsyncStore:
        store = racefree.open_async_store(store_url, reducers=REDUCERS, max_attempts=1_000)
        await store.set("balance:a", 5_000)
        await store.set("balance:b", 0)
        go = asyncio.Event()

        async def transfer(tx: racefree.AsyncTransaction) -> None:
            a = await tx.get("balance:a")
            if a % 10 == 0:
                await asyncio.sleep(0)  # now and then, let other tasks commit meanwhile
            b = await tx.get("balance:b")
            tx.set("balance:a", a - 1)
            tx.set("balance:b", b + 1)

        async def agent_task(i: int) -> None:
            await go.wait()
            await store.append("log", i)
            await asyncio.sleep(0)
            await store.increment("count")
            value = await store.get("count")  # a read across an await...
            await asyncio.sleep(0)
            assert value is not None
            await store.update("total", lambda v: (v or 0) + 1)  # ...but the update is atomic
            await store.apply({"events": [i], "tokens": 2})
            await store.append_turn("turns", [{"i": i, "p": 0}, {"i": i, "p": 1}])
            await store.transaction(transfer)

        tasks = [asyncio.create_task(agent_task(i)) for i in range(tasks_n)]
        await asyncio.sleep(0)
        go.set()
        await asyncio.gather(*tasks)
        return store

    async def check() -> None:
        store = await main()
        assert sorted(await store.get("log")) == list(range(tasks_n))
        assert await store.get("count") == tasks_n
        assert await store.get("total") == tasks_n
        assert sorted(await store.get("events")) == list(range(tasks_n))
        assert await store.get("tokens") == 2 * tasks_n
        turns = await store.get("turns")
        assert all(turns[k]["i"] == turns[k + 1]["i"] for k in range(0, len(turns), 2))
        assert await store.get("balance:a") == 5_000 - tasks_n
        assert await store.get("balance:b") == tasks_n
        await store.aclose()

    asyncio.run(check())


def test_operations_that_never_conflict_never_conflict(backend: str, store_url: str) -> None:
    """set, increment, append, extend and apply with add/append/last_value need no retry.

    With ``max_attempts=1`` a single lost race would raise ContentionError at once,
    so every op landing proves that none of them ever had to be retried.
    """
    threads_n, ops_n = 8, 2_000 if backend == "memory" else 300
    store = racefree.open_store(store_url, reducers=REDUCERS, max_attempts=1)

    def work(n: int) -> None:
        with agent(f"agent-{n}"):
            for i in range(ops_n):
                store.increment("count")
                store.apply({"tokens": 2, "events": [(n, i)], f"mine-{n}": i})
                store.append("log", (n, i))
                store.extend("pairs", [n, i])
                store.set("last", n)

    assert run_together(threads_n, work) == []
    total = threads_n * ops_n
    assert store.get("count") == total
    assert store.get("tokens") == 2 * total
    assert sorted(map(tuple, store.get("events"))) == sorted(
        (n, i) for n in range(threads_n) for i in range(ops_n)
    )
    assert len(store.get("log")) == total
    pairs = store.get("pairs")
    assert len(pairs) == 2 * total
    assert store.get("last") in range(threads_n)
    assert all(store.get(f"mine-{n}") == ops_n - 1 for n in range(threads_n))
    assert store.version("count") == total
