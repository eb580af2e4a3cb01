"""Throughput of the in-memory store against a bare threading.Lock, in one run.

    .venv/bin/python benchmarks/bench_store.py [--ops 200000] [--repeat 3]

For append and update, with 1, 4 and 16 threads, the same total number of
operations is run through ``racefree.open_store()`` (recorder off) and through
a bare ``threading.Lock`` guarding a plain list / dict. Threads start together
at a barrier; the best of ``--repeat`` runs is kept. The store does work the
baseline does not: it checks the key, validates and copies the value (so no
caller aliases stored state), keeps versions and returns the new index.
Figures are recorded in docs/benchmarks.md; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import racefree

OPS = ("append", "update", "transaction")

ITEM = {"role": "assistant", "content": "The answer is 42.", "tokens": 7}


def bump(value: Any) -> Any:
    return (value or 0) + 1


def timed(threads: int, per_thread: int, work: Callable[[int], None]) -> float:
    """Seconds for ``threads`` threads each running ``work(per_thread)``."""
    barrier = threading.Barrier(threads + 1)

    def run() -> None:
        barrier.wait()
        work(per_thread)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return time.perf_counter() - start


def store_append(n: int, store: racefree.Store) -> None:
    append = store.append
    for _ in range(n):
        append("history", ITEM)


def bare_append(n: int, lock: threading.Lock, log: list[Any]) -> None:
    for _ in range(n):
        with lock:
            log.append(ITEM)


def store_update(n: int, store: racefree.Store) -> None:
    update = store.update
    for _ in range(n):
        update("counter", bump)


def bare_update(n: int, lock: threading.Lock, data: dict[str, Any]) -> None:
    for _ in range(n):
        with lock:
            data["counter"] = bump(data.get("counter"))


def profile_turn(tx: racefree.Transaction) -> None:
    profile = tx.get("profile") or {"tokens": 0}
    tx.set("profile", {**profile, "tokens": profile["tokens"] + 1})
    tx.append("history", ITEM)


def store_transaction(n: int, store: racefree.Store) -> None:
    transaction = store.transaction
    for _ in range(n):
        transaction(profile_turn)


def json_copy(value: Any) -> Any:
    """What a careful hand-written store does to keep callers off its state: a JSON round trip."""
    return json.loads(json.dumps(value, allow_nan=False))


def bare_transaction(n: int, lock: threading.Lock, data: dict[str, Any]) -> None:
    for _ in range(n):
        with lock:
            profile = json_copy(data.get("profile")) or {"tokens": 0}
            data["profile"] = json_copy({**profile, "tokens": profile["tokens"] + 1})
            data.setdefault("history", []).append(json_copy(ITEM))


def measure(op: str, threads: int, total: int, repeat: int) -> tuple[float, float]:
    """Best ops/s of (store, bare) for one op and thread count."""
    per_thread = total // threads
    best_store = best_bare = 0.0
    for _ in range(repeat):
        store = racefree.open_store()
        lock = threading.Lock()
        log: list[Any] = []
        data: dict[str, Any] = {}
        if op == "append":
            s = timed(threads, per_thread, partial(store_append, store=store))
            b = timed(threads, per_thread, partial(bare_append, lock=lock, log=log))
            assert len(store.get("history")) == len(log) == per_thread * threads
        elif op == "update":
            s = timed(threads, per_thread, partial(store_update, store=store))
            b = timed(threads, per_thread, partial(bare_update, lock=lock, data=data))
            assert store.get("counter") == data["counter"] == per_thread * threads
        else:
            s = timed(threads, per_thread, partial(store_transaction, store=store))
            b = timed(threads, per_thread, partial(bare_transaction, lock=lock, data=data))
            done = per_thread * threads
            assert store.get("profile")["tokens"] == data["profile"]["tokens"] == done
            assert len(store.get("history")) == len(data["history"]) == done
        best_store = max(best_store, per_thread * threads / s)
        best_bare = max(best_bare, per_thread * threads / b)
    return best_store, best_bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200_000, help="operations per cell")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (best kept)")
    parser.add_argument(
        "--only", dest="ops_to_run", nargs="+", default=list(OPS), choices=OPS, help="ops to run"
    )
    args = parser.parse_args()
    print(
        f"racefree {racefree.__version__}, Python {platform.python_version()} "
        f"({sys.implementation.name}), {os.cpu_count()} CPUs, {platform.platform()}"
    )
    print(f"{args.ops} operations per cell, best of {args.repeat}\n")
    header = f"| {'op':<12}| threads | {'store ops/s':>12} | {'bare ops/s':>12} | ratio |"
    print(header)
    print("|-------------|--------:|-------------:|-------------:|------:|")
    for op in args.ops_to_run:
        for threads in (1, 4, 16):
            store, bare = measure(op, threads, args.ops, args.repeat)
            print(
                f"| {op:<12}| {threads:>7} | {store:>12,.0f} | {bare:>12,.0f} | "
                f"{store / bare:>5.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
