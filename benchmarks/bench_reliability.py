"""The store's reliability record: load, faults and bad input on every backend, re-run.

    .venv/bin/python benchmarks/bench_reliability.py [--threads 1000] [--ops 100]
        [--tasks 1000] [--processes 8] [--kills 100] [--storm-seconds 10]
        [--backends memory sqlite redis]

Each row tries one thing many times and counts what was lost (an operation
that returned but whose effect is missing), duplicated (an effect present
twice) or raised an error that is not racefree's own typed error. A row
"held" when all three are zero and, for load, no operation raised at all.

* threads / tasks: every thread (asyncio task) shares one store and runs
  ``--ops`` operations: increment, append, apply (add and append reducers), set.
* processes: ``--processes`` processes, each ``--ops`` x 10 increments and appends.
* SIGKILL: a writer process appending with idempotency keys is killed at a
  random moment (seeded), ``--kills`` times; every append it saw return must
  be there once, and nothing twice.
* CLIENT KILL (Redis): 8 writer threads append while another connection kills
  every client connection in a loop for ``--storm-seconds``.
* bad input: non-JSON values, bad keys, wrong types, overflowing increments,
  ints past 4300 digits, nesting past 100 levels, on every write operation:
  each must raise a typed ``StoreError``/``UsageError`` and leave the store
  exactly as it was; and values at the edge of what is accepted (an int of
  4300 digits, lone surrogates, 100 levels, -0.0) must read back exactly.
* hostile URLs: the URLs of ``tests/state/test_store_secrets.py``, opened sync
  and asyncio: no part of the secret in any message or traceback.

Figures are recorded in docs/benchmarks.md ("Reliability"); nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "benchmarks")]

from bench_load import REDUCERS, Urls, load, redis_base  # noqa: E402

import racefree  # noqa: E402

SPAWN = multiprocessing.get_context("spawn")

Row = dict[str, str]  # backend -> outcome ("held", or what went wrong)


def verdict(lost: int, duplicated: int, raw: int, raised: int = 0) -> str:
    if lost == duplicated == raw == raised == 0:
        return "held"
    parts = [
        f"{n} {what}"
        for n, what in ((lost, "lost"), (duplicated, "duplicated"), (raw, "raw errors"))
        if n
    ]
    if raised:
        parts.append(f"{raised} raised")
    return ", ".join(parts)


# ---------------------------------------------------------------- load


def threads_row(url: str, threads: int, ops: int) -> str:
    _, raised, landed = load(url, threads, ops)
    return verdict(0 if landed else 1, 0, 0, raised)


def tasks_row(url: str, tasks: int, ops: int) -> str:
    async def main() -> str:
        store = racefree.open_async_store(url, reducers=REDUCERS)
        go = asyncio.Event()
        done = Counter[str]()
        raised = 0

        async def task(n: int) -> None:
            nonlocal raised
            await go.wait()
            for i in range(ops):
                kind = i % 4
                try:
                    if kind == 0:
                        await store.increment("count")
                    elif kind == 1:
                        await store.append("log", [n, i])
                    elif kind == 2:
                        await store.apply({"tokens": 2, "events": [[n, i]]})
                    else:
                        await store.set(f"last:{n % 16}", i)
                except racefree.RacefreeError:
                    raised += 1
                    continue
                done[kind] += 1

        running = [asyncio.create_task(task(n)) for n in range(tasks)]
        await asyncio.sleep(0)
        go.set()
        await asyncio.gather(*running)
        log = await store.get("log") or []
        landed = (
            (await store.get("count") or 0) == done[0]
            and len(log) == done[1]
            and len({tuple(x) for x in log}) == len(log)
            and (await store.get("tokens") or 0) == 2 * done[2]
        )
        await store.aclose()
        return verdict(0 if landed else 1, 0, 0, raised)

    return asyncio.run(main())


def hammer(url: str, worker: int, ops: int, start: Any) -> None:
    """One process of the processes row: increments and appends."""
    store = racefree.open_store(url)
    start.wait()
    for n in range(ops):
        store.increment("count")
        store.append("log", [worker, n])
    store.close()


def processes_row(url: str, processes: int, ops: int) -> str:
    start = SPAWN.Barrier(processes)
    pool = [SPAWN.Process(target=hammer, args=(url, w, ops, start)) for w in range(processes)]
    for p in pool:
        p.start()
    for p in pool:
        p.join()
    failed = sum(p.exitcode != 0 for p in pool)
    with racefree.open_store(url) as store:
        log = [tuple(x) for x in store.get("log") or []]
        count = store.get("count") or 0
    expected = processes * ops
    lost = max(0, expected - len(set(log))) + max(0, expected - count)
    duplicated = len(log) - len(set(log)) + max(0, count - expected)
    return verdict(lost, duplicated, 0, failed)


# ---------------------------------------------------------------- faults


def writer(url: str, tag: str, acks: Connection) -> None:
    """Append with idempotency keys until killed, acknowledging each append that returned."""
    store = racefree.open_store(url)
    n = 0
    while True:
        store.append("log", f"{tag}-{n}", idempotency_key=f"{tag}-{n}")
        acks.send(n)
        n += 1


def sigkill_row(url: str, kills: int, seed: int) -> str:
    chooser = random.Random(seed)
    acknowledged: list[str] = []
    for k in range(kills):
        tag = f"w{k}"
        mine, theirs = SPAWN.Pipe()
        victim = SPAWN.Process(target=writer, args=(url, tag, theirs))
        victim.start()
        wanted = chooser.randint(1, 30)
        seen = 0
        while seen < wanted:
            seen = mine.recv() + 1
        time.sleep(chooser.random() * 0.002)  # land the kill inside a later append
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        victim.join()
        while mine.poll():
            seen = mine.recv() + 1
        acknowledged += [f"{tag}-{n}" for n in range(seen)]
    with racefree.open_store(url) as store:
        present = Counter(store.get("log") or [])
    lost = sum(1 for item in acknowledged if present[item] == 0)
    duplicated = sum(n - 1 for n in present.values() if n > 1)
    return verdict(lost, duplicated, 0)


def storm_row(url: str, seconds: float) -> tuple[str, int]:
    import redis

    from racefree.state.backends.redis import parse_url

    admin = redis.Redis.from_url(parse_url(url)[0])
    store = racefree.open_store(url)
    stop = threading.Event()
    returned: list[str] = []
    raised = Counter[str]()
    lock = threading.Lock()

    def append(n: int) -> None:
        i = 0
        while not stop.is_set():
            item = f"t{n}-{i}"
            i += 1
            try:
                store.append("log", item)
            except racefree.BackendUnavailableError:
                raised["typed"] += 1
                continue
            except Exception:
                raised["raw"] += 1
                continue
            with lock:
                returned.append(item)

    pool = [threading.Thread(target=append, args=(n,)) for n in range(8)]
    for t in pool:
        t.start()
    kills = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        kills += admin.client_kill_filter(_type="normal", skipme=True)
    stop.set()
    for t in pool:
        t.join()
    present = Counter(store.get("log") or [])
    store.close()
    admin.close()
    lost = sum(1 for item in returned if present[item] == 0)
    duplicated = sum(n - 1 for n in present.values() if n > 1)
    return verdict(lost, duplicated, raised["raw"]), kills


# ---------------------------------------------------------------- bad input


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _loop() -> list[Any]:
    itself: list[Any] = []
    itself.append(itself)
    return itself


BAD_VALUES: list[Callable[[], Any]] = [
    lambda: datetime.date(2024, 1, 2),
    lambda: {1, 2},
    lambda: b"bytes",
    lambda: float("nan"),
    lambda: float("inf"),
    lambda: {1: "one"},
    _loop,
    lambda: 10**4300,
    lambda: _nested(101),
    lambda: _nested(5_000),
    object,
]
BAD_KEYS: list[Any] = ["", 42, None, "a\nb", "k" * 300, ("a",)]
# Values at the edge of what is accepted: every backend stores and reads them back exactly.
ODD_VALUES: list[Any] = [
    10**4300 - 1,
    -(10**4300) + 1,
    "lone \ud800 surrogate",
    {"\udc00": ["\ud800"]},
    _nested(100),
    -0.0,
    5e-324,
    1.7976931348623157e308,
    "Zoë \U0001f600 \u2028",
]


def bad_input_row(url: str) -> tuple[str, int]:
    """(verdict, attempts): every bad call must raise a typed error and write nothing."""
    store = racefree.open_store(url, reducers={"log": "append", "tokens": "add"})
    store.set("text", "hello")
    store.set("number", 5)
    store.set("big", 10**4300 - 1)
    store.set("huge", 1e308)
    before = store.snapshot()
    calls: list[Callable[[], Any]] = []
    for make in BAD_VALUES:
        calls += [
            lambda m=make: store.set("k", m()),
            lambda m=make: store.append("log", m()),
            lambda m=make: store.extend("log", [m()]),
            lambda m=make: store.append_turn("turns", [{"content": m()}]),
            lambda m=make: store.apply({"k": m(), "log": [1]}),
            lambda m=make: store.update("k", lambda _, m=m: m()),
            lambda m=make: store.compare_and_set("k", m(), expected_version=0),
        ]
    for key in BAD_KEYS:
        calls += [lambda k=key: store.set(k, 1), lambda k=key: store.get(k)]
    calls += [
        lambda: store.increment("text"),
        lambda: store.append("number", 1),
        lambda: store.apply({"tokens": "many"}),
        lambda: store.increment("huge", 1e308),
        lambda: store.increment("big", 1),
        lambda: store.increment("number", float("nan")),
        lambda: store.increment("number", True),
        lambda: store.apply({"tokens": 10**4300}),
    ]
    raw = wrote = 0
    for call in calls:
        try:
            call()
            wrote += 1  # a bad call that returned: it wrote something it should not
        except (racefree.StoreError, racefree.UsageError):
            pass
        except Exception:
            raw += 1
    changed = store.snapshot() != before
    misread = 0
    for i, value in enumerate(ODD_VALUES):
        store.set(f"odd:{i}", value)
        store.append("odd:log", value)
        back = store.get(f"odd:{i}")
        misread += back != value or type(back) is not type(value) or repr(back) != repr(value)
    misread += store.get("odd:log") != ODD_VALUES
    store.close()
    return verdict(int(changed) + wrote + misread, 0, raw), len(calls) + 2 * len(ODD_VALUES)


def hostile_urls_row() -> tuple[str, int]:
    from tests.state.test_store_secrets import HOSTILE, PIECES

    shown = raw = 0
    for url in HOSTILE:
        for opener in ("sync", "async"):
            try:
                if opener == "sync":
                    racefree.open_store(url).close()
                else:

                    async def open_close(url: str = url) -> None:
                        await racefree.open_async_store(url).aclose()

                    asyncio.run(open_close())
            except racefree.RacefreeError as exc:
                text = "".join(traceback.format_exception(exc))
                shown += any(piece in text for piece in PIECES)
            except Exception:
                raw += 1
    return verdict(shown, 0, raw), 2 * len(HOSTILE)


# ---------------------------------------------------------------- the table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--ops", type=int, default=100)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--storm-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", nargs="+", default=["memory", "sqlite", "redis"])
    args = parser.parse_args()
    rows: list[tuple[str, str, Row]] = []
    na = "n/a (one process)"

    with tempfile.TemporaryDirectory() as folder, redis_base() as base:
        urls = Urls(folder, base)

        def each(run: Callable[[str, str], str], *, shared: bool = False) -> Row:
            row: Row = {}
            for backend in args.backends:
                if shared and backend == "memory":
                    row[backend] = na
                    continue
                url = urls.new(backend)
                began = time.perf_counter()
                row[backend] = run(backend, url)
                urls.drop(url)
                print(f"  {backend}: {row[backend]} ({time.perf_counter() - began:.0f} s)")
            return row

        def add(what: str, times: str, run: Callable[[str, str], str], **kw: bool) -> None:
            print(what)
            rows.append((what, times, each(run, **kw)))

        add(
            f"{args.threads:,} threads x {args.ops} ops on one store",
            f"{args.threads * args.ops:,} ops",
            lambda b, u: threads_row(u, args.threads, args.ops),
        )
        add(
            f"{args.tasks:,} asyncio tasks x {args.ops} ops on one store",
            f"{args.tasks * args.ops:,} ops",
            lambda b, u: tasks_row(u, args.tasks, args.ops),
        )
        add(
            f"{args.processes} processes x {10 * args.ops:,} increments and appends",
            f"{2 * 10 * args.processes * args.ops:,} ops",
            lambda b, u: processes_row(u, args.processes, 10 * args.ops),
            shared=True,
        )
        add(
            "SIGKILL of a writer in the middle of its appends",
            f"{args.kills} kills",
            lambda b, u: sigkill_row(u, args.kills, args.seed),
            shared=True,
        )
        if "redis" in args.backends:
            print("CLIENT KILL storm")
            url = urls.new("redis")
            outcome, kills = storm_row(url, args.storm_seconds)
            urls.drop(url)
            print(f"  redis: {outcome}")
            rows.append(
                (
                    "CLIENT KILL of every connection while 8 threads append",
                    f"{kills:,} kills",
                    {"memory": "n/a", "sqlite": "n/a", "redis": outcome},
                )
            )
        attempts: list[int] = []

        def bad(backend: str, url: str) -> str:
            outcome, count = bad_input_row(url)
            attempts.append(count)
            return outcome

        add("bad values, keys, types, overflows; edge values read back", "", bad)
        rows[-1] = (rows[-1][0], f"{attempts[0]} calls", rows[-1][2])
        print("hostile URLs")
        outcome, count = hostile_urls_row()
        rows.append(
            (
                "hostile URLs opened (no secret in any message or traceback)",
                f"{count} opens",
                dict.fromkeys(args.backends, outcome),
            )
        )

    print()
    print("| what was tried | times | " + " | ".join(args.backends) + " |")
    print("| --- | ---: | " + " | ".join("---" for _ in args.backends) + " |")
    for what, times, row in rows:
        cells = " | ".join(row.get(b, "n/a") for b in args.backends)
        print(f"| {what} | {times} | {cells} |")


if __name__ == "__main__":
    main()
