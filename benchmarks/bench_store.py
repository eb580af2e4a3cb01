"""Throughput of the in-memory store against a bare threading.Lock, in one run.

    .venv/bin/python benchmarks/bench_store.py [--ops 200000] [--repeat 3]

For append, update and a transaction, with 1, 4 and 16 threads, the same
total number of operations is run through ``racefree.open_store()``
(recorder off) and through a bare ``threading.Lock`` guarding a plain list /
dict. Threads start together at a barrier; the best of ``--repeat`` runs is
kept. The store does work the baseline does not: it checks the key,
validates and copies the value (so no caller aliases stored state), keeps
versions and returns the new index. The transaction's baseline is the
careful hand-written equivalent: one lock around the read and both writes,
each value copied through ``json`` on its way in and out.

A second table takes an append apart, one thread: the baseline, then the
baseline plus one piece of the store's work at a time, then the store
itself with and without its fast path. Its last column is the ratio to
the baseline, so it shows which piece costs what.

``--loop NAME`` runs only ``--ops`` iterations of one loop (after a warm-up
of every loop) and prints nothing: run it under
``valgrind --tool=callgrind`` with ``--ops 0`` and ``--ops N`` and the
difference of the instruction counts, divided by N, is the cost of one op
in machine instructions, a figure that does not depend on how busy the
machine is.
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
from racefree.state._values import check_key, to_json

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


def _steps_of_an_append(n: int) -> list[tuple[str, Callable[[], None]]]:
    """Loops of ``n`` appends, each adding one piece of the store's work to the baseline."""
    lock = threading.Lock()
    log: list[Any] = []
    fast_store = racefree.open_store()
    general_store = racefree.open_store()
    general_store._fast = None  # every op built as data and dispatched (the general path)
    backend: Any = fast_store._backend

    def bare() -> None:
        for _ in range(n):
            with lock:
                log.append(ITEM)

    def plus_copy() -> None:
        for _ in range(n):
            item = ITEM.copy()
            with lock:
                log.append(item)

    def plus_check_and_copy() -> None:
        for _ in range(n):
            item = to_json(ITEM)
            with lock:
                log.append(item)

    def fast_path_call() -> None:
        append = backend.append
        for _ in range(n):
            append(check_key("history"), to_json(ITEM))

    return [
        ("bare lock + list.append (the baseline)", bare),
        ("+ a C copy of the item (dict.copy), no check", plus_copy),
        ("+ the store's check and copy (to_json) instead", plus_check_and_copy),
        ("+ key check, backend fast append (lock, version)", fast_path_call),
        ("store.append (fast path)", partial(store_append, n, fast_store)),
        ("store.append, general path (op as data)", partial(store_append, n, general_store)),
    ]


def append_breakdown(n: int, repeat: int) -> list[tuple[str, float]]:
    """Best ops/s of each step of an append, one thread, the steps interleaved per round."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        for label, loop in _steps_of_an_append(n):
            start = time.perf_counter()
            loop()
            best[label] = max(best.get(label, 0.0), n / (time.perf_counter() - start))
    return list(best.items())


def calls_per_op(work: Callable[[], object], n: int = 200) -> float:
    """Function calls (Python and C) that one ``work()`` makes, counted with ``sys.setprofile``."""
    work()  # warm up: the key exists, caches are filled
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        for _ in range(n):
            work()
    finally:
        sys.setprofile(None)
    return calls / n - 1  # the call of work itself


def call_counts() -> list[tuple[str, float, float]]:
    """Calls per op of the store with its fast path and on the general path."""
    rows = []
    for label, op in (
        ("append", lambda s: s.append("history", ITEM)),
        ("get", lambda s: s.get("history")),
        ("transaction", lambda s: s.transaction(profile_turn)),
    ):
        fast_store, general_store = racefree.open_store(), racefree.open_store()
        general_store._fast = None
        fast_store.set("history", [])
        general_store.set("history", [])
        rows.append(
            (
                label,
                calls_per_op(partial(op, fast_store)),
                calls_per_op(partial(op, general_store)),
            )
        )
    return rows


def _loops() -> dict[str, Callable[[int], None]]:
    """The loops ``--loop`` can run: each op and its baseline, and the store's check of one item."""
    store = racefree.open_store()
    store.set("history", [])
    lock = threading.Lock()
    log: list[Any] = []
    data: dict[str, Any] = {}

    def check_and_copy(n: int) -> None:
        for _ in range(n):
            to_json(ITEM)

    return {
        "append": partial(store_append, store=store),
        "bare-append": partial(bare_append, lock=lock, log=log),
        "transaction": partial(store_transaction, store=store),
        "bare-transaction": partial(bare_transaction, lock=lock, data=data),
        "to_json": check_and_copy,
    }


def run_loop(name: str, n: int) -> None:
    """Warm every loop up the same way, then run ``n`` iterations of one."""
    loops = _loops()
    for loop in loops.values():
        loop(50)
    loops[name](n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200_000, help="operations per cell")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (best kept)")
    parser.add_argument(
        "--only", dest="ops_to_run", nargs="+", default=list(OPS), choices=OPS, help="ops to run"
    )
    parser.add_argument(
        "--loop",
        choices=("append", "bare-append", "transaction", "bare-transaction", "to_json"),
        help="only run --ops iterations of this loop, silently (for valgrind)",
    )
    args = parser.parse_args()
    if args.loop:
        run_loop(args.loop, args.ops)
        return
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
    print("\nFunction calls per op (sys.setprofile; Python and C functions):\n")
    print("| op          | fast path | general path |")
    print("|-------------|----------:|-------------:|")
    for label, fast, general in call_counts():
        print(f"| {label:<12}| {fast:>9.0f} | {general:>12.0f} |")
    if "append" in args.ops_to_run:
        print("\nOne append taken apart (1 thread):\n")
        print(f"| {'step':<50} | {'ops/s':>11} | ns/op | ratio |")
        print(f"|{'-' * 52}|------------:|------:|------:|")
        steps = append_breakdown(args.ops, args.repeat)
        baseline = steps[0][1]
        for label, rate in steps:
            print(
                f"| {label:<50} | {rate:>11,.0f} | {1e9 / rate:>5.0f} | {rate / baseline:>5.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
