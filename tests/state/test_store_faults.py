"""Faults and bad input: a clear, typed error and nothing written (or written exactly once).

The transaction and process-kill faults that hold for every backend live in
``test_store_transactions.py`` and ``test_store_processes.py``; here are the
engine faults: a Redis connection killed (``CLIENT KILL``) in the middle of an
append, a Redis server that stops, and URLs and files that cannot work.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import racefree
from racefree import BackendUnavailableError, UsageError
from racefree.state.backends.redis import parse_url
from tests.state.redis_server import TEST_PASSWORD as PASSWORD
from tests.state.redis_server import RedisServer
from tests.state.threads import writers_lose_nothing


@pytest.fixture
def redis_url(new_url: Any, backend: str) -> str:
    if backend != "redis":
        pytest.skip("a Redis fault")
    url: str = new_url()
    return url


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(parse_url(redis_url)[0])
    yield client
    client.close()


def meta_key(url: str, key: str) -> str:
    return "{" + parse_url(url)[1] + "}:m:" + key


WRITES_ONCE = [
    ("append", lambda s: s.append("log", "once"), 1, ["before", "once"]),
    ("increment", lambda s: s.increment("log", 2), 3, 3),
    ("update", lambda s: s.update("log", lambda v: v * 10), 10, 10),
]


@pytest.mark.parametrize(
    ("name", "write", "answer", "stored"), WRITES_ONCE, ids=[w[0] for w in WRITES_ONCE]
)
def test_a_connection_killed_after_the_write_was_applied_does_not_write_twice(
    redis_url: str,
    admin: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    write: Callable[[Any], Any],
    answer: Any,
    stored: Any,
) -> None:
    """The worst moment: Redis applied the write, the answer never arrived.

    When the write's script reaches the server, we wait (for the state, not
    for time) until Redis has applied it, kill the store's connection with
    ``CLIENT KILL`` and drop the answer the client had not read yet. The
    backend reconnects and sends the op again with the same record key:
    Redis answers with the recorded result instead of writing again (an
    update reads afresh, decides again, and its write finds the record).
    """
    store = racefree.open_store(redis_url)
    if name == "append":
        store.append("log", "before")
    else:
        store.set("log", 1)
    killed: list[str] = []
    busy: list[bool] = []
    scripts: list[bool] = []
    real_send = redis.connection.AbstractConnection.send_packed_command
    real_read = redis.connection.AbstractConnection.read_response

    def send_packed_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        scripts.append(b"EVALSHA" in b"".join(command))
        return real_send(self, command, *args, **kwargs)

    def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not killed and not busy and scripts and scripts[-1]:
            busy.append(True)  # the admin's own reads below go straight through
            for _ in range(100_000):  # until Redis has applied the write
                if admin.hget(meta_key(redis_url, "log"), "n") == b"2":
                    break
            else:
                raise AssertionError("the write never reached Redis")
            host, port = self._sock.getsockname()[:2]
            killed.append(f"{host}:{port}")
            assert admin.client_kill(f"{host}:{port}")
            self.disconnect()  # the answer is lost with the connection
            raise redis.ConnectionError("Connection closed by server.")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command", send_packed_command
    )
    monkeypatch.setattr(redis.connection.AbstractConnection, "read_response", read_response)
    assert write(store) == answer
    monkeypatch.undo()
    assert killed, "the connection was not killed"
    assert store.get_versioned("log") == (stored, 2)
    store.close()


def test_a_connection_killed_before_an_append_applies_it_once(
    redis_url: str, admin: redis.Redis
) -> None:
    store = racefree.open_store(redis_url)
    store.append("log", "before")
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    assert store.append("log", "after the kill") == 1
    assert store.get_versioned("log") == (["before", "after the kill"], 2)
    store.close()


def unavailable(url: str) -> str:
    return (
        rf"^Cannot reach the Redis store {url}: .+\. Check that the server is running and "
        r"that the URL \(host, port, password\) is right; a write that raised this was "
        r"applied once or not at all, never twice, so retrying it with an idempotency_key "
        r"is safe\.$"
    )


def test_a_stopped_redis_server_gives_a_clear_error_without_the_password(
    own_server: RedisServer,
) -> None:
    store = racefree.open_store(own_server.url)
    astore = racefree.open_async_store(own_server.url)
    assert store.append("log", 1) == 0
    shown = own_server.url.replace(f":{PASSWORD}@", r"\*\*\*@")
    own_server.stop()
    with pytest.raises(BackendUnavailableError, match=unavailable(shown)) as caught:
        store.append("log", 2)
    assert PASSWORD not in str(caught.value)
    with pytest.raises(BackendUnavailableError, match=unavailable(shown)) as caught:
        racefree.open_store(own_server.url)
    assert PASSWORD not in str(caught.value)

    import asyncio

    async def main() -> None:
        with pytest.raises(BackendUnavailableError, match=unavailable(shown)) as failed:
            await astore.get("log")
        assert PASSWORD not in str(failed.value)
        await astore.aclose()

    asyncio.run(main())
    store.close()


def test_a_wrong_password_is_refused_without_showing_it(own_server: RedisServer) -> None:
    url = own_server.url.replace(PASSWORD, "not-the-password")
    with pytest.raises(BackendUnavailableError) as caught:
        racefree.open_store(url)
    assert "not-the-password" not in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_an_unreachable_redis_url_is_a_clear_error() -> None:
    with pytest.raises(
        BackendUnavailableError, match=unavailable(r"redis://\*\*\*@127\.0\.0\.1:1/0")
    ) as caught:
        racefree.open_store("redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(caught.value)


def test_an_sqlite_file_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing/store.db"
    with pytest.raises(
        BackendUnavailableError,
        match=rf"^The SQLite store {url} cannot be used: unable to open database file\. "
        rf"Nothing was written; check that {tmp_path}/missing/store\.db is a racefree SQLite "
        r"store and that its folder exists and is writable \(sqlite:///name\.db is relative "
        r"to the current folder, sqlite:////abs/name\.db absolute\)\.$",
    ):
        racefree.open_store(url)
    assert not (tmp_path / "missing").exists()


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, " * 100)
    with pytest.raises(BackendUnavailableError, match=r"file is not a database"):
        racefree.open_store(f"sqlite:///{path}")
    assert path.read_text() == "not a database, " * 100


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", r"^The SQLite store URL 'sqlite://' names no database file\. .*memory://\.$"),
        ("sqlite:///:memory:", r"names no database file\."),
        ("sqlite:///x.db?wal=1", r"^The store URL 'sqlite:///x\.db\?wal=1' has the unknown option"),
        ("sqlite:///x.db?timeout=soon", r"^The option timeout='soon' in the store URL"),
        ("redis://127.0.0.1:1/0?namespace=a b", r"^The namespace 'a b' in the store URL"),
        (
            "redis://127.0.0.1:1/0?bogus=1",
            r"^The store URL 'redis://127\.0\.0\.1:1/0\?bogus=1' has the unknown option 'bogus'\. "
            r"Known options: client_name, db, .*, username; remove it or fix its spelling\.$",
        ),
        ("redis://127.0.0.1:1/0?max_connections=0", r"give at least one connection"),
        ("redis://127.0.0.1:1/0?socket_timeout=soon", r"^The option socket_timeout='soon'"),
        ("redis://127.0.0.1:port/0", r"is malformed: its host or port cannot be read"),
        ("redis://127.0.0.1:1/zero", r"names the database 'zero', which is not a number"),
        (
            "memory://?size=3",
            r"^The store URL 'memory://\?size=3' has the unknown option 'size'\. It takes none; "
            r"remove it or fix its spelling\.$",
        ),
    ],
)
def test_a_malformed_url_is_a_usage_error(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=message):
        racefree.open_store(url)


def test_many_threads_share_a_small_pool_and_every_op_lands(redis_url: str, admin: Any) -> None:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    store = racefree.open_store(f"{redis_url}&max_connections=4&client_name={name}")
    connected: list[Any] = []

    def count_connections() -> None:
        connected.extend(c for c in admin.client_list() if c.get("name") == name)

    writers_lose_nothing(store, 200, 20, during=count_connections)
    assert 1 <= len(connected) <= 4
    assert len([c for c in admin.client_list() if c.get("name") == name]) <= 4
    store.close()


POOL_WAIT = (
    r"^All 1 connections of the Redis store redis://127\.0\.0\.1:\d+/0\?namespace=\w+&"
    r"max_connections=1&pool_timeout=0\.2 stayed busy for 0\.2 s, so this operation was not "
    r"sent; the server itself may be fine\. Nothing was written; use fewer threads or tasks "
    r"per store, or raise \?max_connections=N or \?pool_timeout=SECONDS in the URL\.$"
)


def test_a_pool_wait_that_times_out_says_so_and_writes_nothing(redis_url: str) -> None:
    url = f"{redis_url}&max_connections=1&pool_timeout=0.2"
    store = racefree.open_store(url)
    # Another thread's slow operation holds the only connection: an update
    # whose function waits, between its read and its commit.
    inside, done = threading.Event(), threading.Event()

    def slow(value: Any) -> int:
        inside.set()
        done.wait(10)
        return 1

    slow_thread = threading.Thread(target=store.update, args=("slow", slow))
    slow_thread.start()
    assert inside.wait(10)
    with pytest.raises(BackendUnavailableError, match=POOL_WAIT) as caught:
        store.increment("count")
    assert "server is running" not in str(caught.value)
    done.set()
    slow_thread.join()
    assert store.get_versioned("count") == (None, 0)
    assert store.get("slow") == 1
    store.close()

    async def main() -> None:
        astore = racefree.open_async_store(url)
        assert await astore.increment("count") == 1  # connects the pool in this loop
        pool = astore._backend._client.connection_pool  # type: ignore[attr-defined]
        taken = await pool.get_connection()
        with pytest.raises(BackendUnavailableError, match=POOL_WAIT):
            await astore.increment("count")
        await pool.release(taken)
        assert await astore.get_versioned("count") == (1, 1)
        await astore.aclose()

    asyncio.run(main())
