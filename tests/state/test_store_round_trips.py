"""Round trips, counted (not timed): what each store operation sends to its engine.

Redis: the server's own ``MONITOR`` stream lists every command a client
sent, in the order the server ran them (the commands a script runs inside
Redis are marked ``lua`` and are not round trips). A mark (``ECHO``) sent
before and after the operation bounds what it sent. SQLite: the connection's
trace callback lists every statement it ran, ``BEGIN`` and ``COMMIT``
included.

Each single-key operation is one round trip on Redis (a write one ``EVALSHA``,
``get`` one ``HMGET``, or two for a list); on SQLite one
autocommit statement (SQLite's own transaction) where SQL can check and write
what the decision would, an append four (``BEGIN IMMEDIATE``, the key's row,
the items, ``COMMIT``), and otherwise one ``BEGIN IMMEDIATE`` ... ``COMMIT``.
``update`` and a transaction are at most one read and one commit.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import racefree
from racefree.state.backends.sqlite import SQLiteBackend
from tests.state.conftest import AsyncFacade
from tests.state.redis_server import drop_namespace, fresh_redis_url

Action = Callable[[Any], Any]


class RedisCommands:
    """The commands clients send to a Redis server, as the server saw them (``MONITOR``)."""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url.split("?", 1)[0])
        self._monitor = self._client.monitor()
        self._monitor.__enter__()

    def _until(self, mark: str) -> list[str]:
        seen: list[str] = []
        while True:
            entry = self._monitor.next_command()
            if entry["command"] == f"ECHO {mark}":
                return seen
            if entry["client_type"] != "lua":
                seen.append(entry["command"].split(" ", 1)[0].upper())

    def during(self, action: Callable[[], Any]) -> list[str]:
        """The names of the commands sent while ``action`` ran, in order."""
        start, end = uuid.uuid4().hex, uuid.uuid4().hex
        self._client.echo(start)
        self._until(start)
        action()
        self._client.echo(end)
        return self._until(end)

    def close(self) -> None:
        self._monitor.__exit__(None, None, None)
        self._client.close()


@pytest.fixture(scope="module")
def redis_commands(redis_base_url: str) -> Iterator[RedisCommands]:
    commands = RedisCommands(redis_base_url)
    yield commands
    commands.close()


def _open(url: str, flavour: str) -> Any:
    """A store with the reducers the operations below use, sync or behind ``AsyncFacade``."""
    reducers = {"tokens": "add", "log": "append"}
    if flavour == "sync":
        return racefree.open_store(url, reducers=reducers)
    return AsyncFacade(racefree.open_async_store(url, reducers=reducers))


@pytest.fixture(params=["sync", "async"])
def redis_store(request: pytest.FixtureRequest, redis_base_url: str) -> Iterator[Any]:
    url = fresh_redis_url(redis_base_url)
    store = _open(url, request.param)
    yield store
    store.close()
    drop_namespace(url)


# (name, prepare the store, the operation, its answer and what the store then holds)
SINGLE_KEY: list[tuple[str, Action, Action, Callable[[Any, Any], bool]]] = [
    ("get", lambda s: s.set("k", 7), lambda s: s.get("k"), lambda s, r: r == 7),
    (
        "set",
        lambda s: None,
        lambda s: s.set("k", {"a": 1}),
        lambda s, r: s.get_versioned("k") == ({"a": 1}, r),
    ),
    (
        "set a list",
        lambda s: s.append("k", 0),
        lambda s: s.set("k", [1, 2]),
        lambda s, r: s.get_versioned("k") == ([1, 2], r),
    ),
    (
        "compare_and_set",
        lambda s: s.set("k", 1),
        None,  # built in the test: it needs the version before the call
        lambda s, r: s.get_versioned("k") == (2, r),
    ),
    (
        "append",
        lambda s: s.append("k", 0),
        lambda s: s.append("k", 1),
        lambda s, r: r == 1 and s.get("k") == [0, 1],
    ),
    (
        "extend",
        lambda s: None,
        lambda s: s.extend("k", [1, 2]),
        lambda s, r: r == 0 and s.get("k") == [1, 2],
    ),
    (
        "append_turn",
        lambda s: None,
        lambda s: s.append_turn("k", [{"role": "user", "content": "hi"}]),
        lambda s, r: r == 0 and s.get("k") == [{"role": "user", "content": "hi"}],
    ),
    (
        "append with an idempotency key",
        lambda s: None,
        None,  # a fresh key per call, built in the test
        lambda s, r: r == 0 and s.get("k") == [1],
    ),
    ("increment", lambda s: None, lambda s: s.increment("k", 2), lambda s, r: r == 2),
    (
        "increment a float",
        lambda s: s.set("k", 1.5),
        lambda s: s.increment("k", 0.25),
        lambda s, r: r == 1.75 and s.get("k") == 1.75,
    ),
    (
        "claim (wins)",
        lambda s: None,
        lambda s: s.claim("k", "ann"),
        lambda s, r: r is True and s.get("k") == "ann",
    ),
    (
        "claim (held)",
        lambda s: s.claim("k", "bob"),
        lambda s: s.claim("k", "ann"),
        lambda s, r: r is False and s.get("k") == "bob",
    ),
    (
        "apply",
        lambda s: None,
        lambda s: s.apply({"tokens": 3, "log": ["x"], "plan": "p"}),
        lambda s, r: (s.get("tokens"), s.get("log"), s.get("plan")) == (3, ["x"], "p"),
    ),
]


SINGLE_KEY_PARAMS = [pytest.param(*row, id=row[0]) for row in SINGLE_KEY]


def _ready(store: Any, name: str, prepare: Action, action: Action | None) -> Action:
    """Warm up (the op once: its script loaded, a connection open), reset the keys, prepare.

    Returns the operation to count.
    """
    if name == "compare_and_set":
        action = lambda s: s.compare_and_set("k", 2, expected_version=s.version("k"))  # noqa: E731
    if name == "append with an idempotency key":
        action = lambda s: s.append("k", 1, idempotency_key=uuid.uuid4().hex)  # noqa: E731
    assert action is not None
    prepare(store)
    action(store)
    for key in ("k", "tokens", "log", "plan"):
        store.set(key, None)
    prepare(store)
    if name == "compare_and_set":
        expected = store.version("k")
        return lambda s: s.compare_and_set("k", 2, expected_version=expected)
    return action


def _answer(action: Action, store: Any) -> tuple[Callable[[], None], list[Any]]:
    answer: list[Any] = []
    return lambda: answer.append(action(store)), answer


@pytest.mark.parametrize(("name", "prepare", "action", "check"), SINGLE_KEY_PARAMS)
def test_each_single_key_operation_is_one_script_call_on_redis(
    redis_commands: RedisCommands,
    redis_store: Any,
    name: str,
    prepare: Action,
    action: Action | None,
    check: Callable[[Any, Any], bool],
) -> None:
    run, answer = _answer(_ready(redis_store, name, prepare, action), redis_store)
    # get: one command, atomic by itself (a key's version and value are one hash)
    assert redis_commands.during(run) == (["HMGET"] if name == "get" else ["EVALSHA"])
    assert check(redis_store, answer[0])


def test_reading_a_list_on_redis_is_the_hash_then_one_script_for_hash_and_items(
    redis_commands: RedisCommands, redis_store: Any
) -> None:
    redis_store.extend("k", [1, 2])
    assert redis_commands.during(lambda: redis_store.get("k")) == ["HMGET", "EVALSHA"]
    assert redis_store.get("k") == [1, 2]


def test_a_refused_operation_is_one_script_call_too(
    redis_commands: RedisCommands, redis_store: Any
) -> None:
    redis_store.set("k", "text")
    redis_store.compare_and_set("k", 1, expected_version=1)
    _refused(redis_store)  # warm up
    sent = redis_commands.during(lambda: _refused(redis_store))
    assert sent == ["EVALSHA"]
    assert redis_store.get_versioned("k") == (1, 2)


def _refused(store: Any) -> None:
    with pytest.raises(racefree.ConflictError):
        store.compare_and_set("k", 2, expected_version=1)


def test_update_is_one_read_and_one_commit_on_redis(
    redis_commands: RedisCommands, redis_store: Any
) -> None:
    redis_store.update("n", lambda v: (v or 0) + 1)
    sent = redis_commands.during(lambda: redis_store.update("n", lambda v: (v or 0) + 1))
    assert sent == ["HMGET", "EVALSHA"]  # the read; the write at the version read
    assert redis_store.get_versioned("n") == (2, 2)


def _move(store: Any) -> None:
    """A transfer in a transaction: one read, three writes (on either kind of store)."""
    if isinstance(store, AsyncFacade):

        async def move(tx: racefree.AsyncTransaction) -> None:
            balance = await tx.get("a", 100)
            tx.set("a", balance - 30)
            tx.increment("b", 30)
            tx.append("log", "moved 30")

        store._loop.run_until_complete(store._store.transaction(move))
        return
    with store.transaction() as tx:
        balance = tx.get("a", 100)
        tx.set("a", balance - 30)
        tx.increment("b", 30)
        tx.append("log", "moved 30")


def _blind(store: Any) -> None:
    """A transaction that only writes."""
    if isinstance(store, AsyncFacade):

        async def blind(tx: racefree.AsyncTransaction) -> None:
            tx.increment("b", 1)
            tx.extend("log", ["x", "y"])

        store._loop.run_until_complete(store._store.transaction(blind))
        return
    with store.transaction() as tx:
        tx.increment("b", 1)
        tx.extend("log", ["x", "y"])


def test_a_transaction_is_one_call_per_read_and_one_commit_on_redis(
    redis_commands: RedisCommands, redis_store: Any
) -> None:
    _move(redis_store)
    assert redis_commands.during(lambda: _move(redis_store)) == ["HMGET", "EVALSHA"]
    assert redis_commands.during(lambda: _blind(redis_store)) == ["EVALSHA"]
    assert (redis_store.get("a"), redis_store.get("b")) == (40, 61)
    assert redis_store.get("log") == ["moved 30", "moved 30", "x", "y"]


# ---------------------------------------------------------------- SQLite


class Statements:
    """Every statement the SQLite backend's connections run, through their trace callbacks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ran: list[str] = []

    def record(self, statement: str) -> None:
        with self.lock:
            self.ran.append(" ".join(statement.split()[:2]).upper())

    def during(self, action: Callable[[], Any]) -> list[str]:
        with self.lock:
            self.ran.clear()
        action()
        with self.lock:
            return list(self.ran)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    traced = Statements()
    connect = SQLiteBackend._connect

    def traced_connect(self: SQLiteBackend) -> sqlite3.Connection:
        conn = connect(self)
        conn.set_trace_callback(traced.record)
        return conn

    monkeypatch.setattr(SQLiteBackend, "_connect", traced_connect)
    return traced


@pytest.fixture(params=["sync", "async"])
def sqlite_store(request: pytest.FixtureRequest, tmp_path: Path, statements: Statements) -> Any:
    store = _open(f"sqlite:///{tmp_path / 'trips.db'}", request.param)
    yield store
    store.close()


def _transactions(ran: list[str]) -> list[list[str]]:
    """The statements grouped by database transaction; a statement outside one fails."""
    groups: list[list[str]] = []
    inside = False
    for statement in ran:
        if statement.startswith("BEGIN"):
            assert not inside, ran
            groups.append([statement])
            inside = True
        else:
            assert inside, ran
            groups[-1].append(statement)
            inside = statement not in ("COMMIT", "ROLLBACK")
    assert not inside, ran
    return groups


# What each single-key operation runs on SQLite (a statement's first two words):
# one autocommit statement (its own transaction, no BEGIN or COMMIT) where SQL
# can check and write what the decision would, else one whole transaction.
GROW_A_LIST = ["BEGIN IMMEDIATE", "INSERT INTO", "INSERT INTO", "COMMIT"]
ONE_TRANSACTION = None  # BEGIN IMMEDIATE ... COMMIT, decided in Python
SQLITE_STATEMENTS: dict[str, list[str] | None] = {
    "get": ["SELECT VALUE,"],
    "set": ["UPDATE RACEFREE_KEYS"],  # at the version this process wrote (else an upsert)
    "set a list": ONE_TRANSACTION,  # the old list's items go too
    "compare_and_set": ["UPDATE RACEFREE_KEYS"],
    "append": GROW_A_LIST,
    "extend": GROW_A_LIST,
    "append_turn": GROW_A_LIST,
    "append with an idempotency key": ONE_TRANSACTION,  # its record, in the same transaction
    "increment": ["INSERT INTO"],
    "increment a float": ONE_TRANSACTION,  # Python's arithmetic
    "claim (wins)": ["INSERT INTO"],
    "claim (held)": ONE_TRANSACTION,  # after the claim's statement, which wrote nothing
    "apply": ONE_TRANSACTION,
}


@pytest.mark.parametrize(("name", "prepare", "action", "check"), SINGLE_KEY_PARAMS)
def test_each_single_key_operation_is_one_statement_or_one_transaction_on_sqlite(
    statements: Statements,
    sqlite_store: Any,
    name: str,
    prepare: Action,
    action: Action | None,
    check: Callable[[Any, Any], bool],
) -> None:
    run, answer = _answer(_ready(sqlite_store, name, prepare, action), sqlite_store)
    ran = statements.during(run)
    expected = SQLITE_STATEMENTS[name]
    if expected is not None:
        assert ran == expected
    else:
        if name == "claim (held)":
            assert ran[0] == "INSERT INTO"  # the statement that declined
            ran = ran[1:]
        (one,) = _transactions(ran)
        assert (one[0], one[-1]) == ("BEGIN IMMEDIATE", "COMMIT")
    assert check(sqlite_store, answer[0])


def test_reading_a_list_is_two_statements_the_second_reading_it_at_one_instant(
    statements: Statements, sqlite_store: Any
) -> None:
    sqlite_store.extend("k", [1, 2])
    ran = statements.during(lambda: sqlite_store.get("k"))
    assert ran == ["SELECT VALUE,", "SELECT -1,"]  # the key's row; then row and items, in one
    assert sqlite_store.get("k") == [1, 2]


def test_setting_a_key_this_process_last_wrote_is_one_update_at_the_known_version(
    statements: Statements, sqlite_store: Any
) -> None:
    ran = statements.during(lambda: sqlite_store.set("k", 1))
    assert ran == ["INSERT INTO"]  # a key never written: the upsert, RETURNING its version
    ran = statements.during(lambda: sqlite_store.set("k", 2))
    assert ran == ["UPDATE RACEFREE_KEYS"]  # no RETURNING: the new version is the known one + 1
    assert sqlite_store.get_versioned("k") == (2, 2)


def test_a_set_after_another_process_wrote_finds_the_version_moved_and_upserts(
    statements: Statements, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'moved-set.db'}"
    store, other = racefree.open_store(url), racefree.open_store(url)  # two backends
    assert store.set("k", "a") == 1
    assert other.increment("n") == 1
    assert other.set("k", "b") == 2  # store's known version of k (1) is now out of date
    ran = statements.during(lambda: store.set("k", "c"))
    assert ran == ["UPDATE RACEFREE_KEYS", "INSERT INTO"]  # found no row at 1: the upsert
    assert store.get_versioned("k") == ("c", 3)
    assert other.set("k", "d") == 4
    assert store.get_versioned("k")[1] == 4
    store.close()
    other.close()


def test_update_of_a_json_value_is_one_statement_that_calls_the_function_on_sqlite(
    statements: Statements, sqlite_store: Any
) -> None:
    sqlite_store.update("n", lambda v: (v or 0) + 1)
    calls: list[Any] = []

    def add_one(value: int) -> int:
        calls.append(value)
        return value + 1

    ran = statements.during(lambda: sqlite_store.update("n", add_one))
    assert ran == ["UPDATE RACEFREE_KEYS"]  # read, fn and write in one statement
    assert calls == [1]
    assert sqlite_store.get_versioned("n") == (2, 2)


def test_an_update_of_a_key_never_written_is_one_read_and_one_conditional_write(
    statements: Statements, sqlite_store: Any
) -> None:
    ran = statements.during(lambda: sqlite_store.update("fresh", lambda v: [v, 1][1]))
    # the statement that found no row, the read, the write only of a key still unwritten
    assert ran == ["UPDATE RACEFREE_KEYS", "SELECT KIND,", "INSERT INTO"]
    assert sqlite_store.get_versioned("fresh") == (1, 1)


def test_an_update_whose_function_fails_writes_nothing_and_raises_its_error(
    statements: Statements, sqlite_store: Any
) -> None:
    sqlite_store.set("n", 1)

    def fails(value: int) -> int:
        raise ZeroDivisionError(f"no {value}")

    with pytest.raises(ZeroDivisionError, match="no 1"):
        sqlite_store.update("n", fails)
    with pytest.raises(racefree.NotSerializableError):
        sqlite_store.update("n", lambda v: {"s": {v}})

    def refuse(value: int) -> int:
        raise ValueError(value)

    def refused() -> None:
        with pytest.raises(ValueError):
            sqlite_store.update("n", refuse)

    ran = statements.during(refused)
    assert ran == ["UPDATE RACEFREE_KEYS"]  # aborted inside the statement: no retry
    assert sqlite_store.get_versioned("n") == (1, 1)


def test_an_update_that_makes_a_list_runs_its_function_once_and_writes_in_one_transaction(
    statements: Statements, sqlite_store: Any
) -> None:
    sqlite_store.set("n", 1)
    calls: list[Any] = []

    def to_list(value: Any) -> list[Any]:
        calls.append(value)
        return [value, value]

    ran = statements.during(lambda: sqlite_store.update("n", to_list))
    assert calls == [1]
    assert ran[0] == "UPDATE RACEFREE_KEYS"  # aborted by the list; its rows need a transaction
    (write,) = _transactions(ran[1:])
    assert (write[0], write[-1]) == ("BEGIN IMMEDIATE", "COMMIT")
    assert sqlite_store.get_versioned("n") == ([1, 1], 2)


def test_an_update_whose_key_moved_runs_again_in_one_transaction_under_the_write_lock(
    statements: Statements, tmp_path: Path
) -> None:
    # A key never written: read first (a JSON value's update is one statement
    # that holds the write lock while fn runs, so nothing can come between).
    url = f"sqlite:///{tmp_path / 'moved.db'}"
    store, other = racefree.open_store(url), racefree.open_store(url)
    seen: list[int | None] = []

    def add_one(value: int | None) -> int:
        seen.append(value)
        if len(seen) == 1:
            other.increment("n", 10)  # another writer, between the read and the write
        return (value or 0) + 1

    ran = statements.during(lambda: store.update("n", add_one))
    assert seen == [None, 10]  # the first decision was on a version that moved: decided again
    # found no row; the read; the other's increment; the write of a key still unwritten, refused
    assert ran[:4] == ["UPDATE RACEFREE_KEYS", "SELECT KIND,", "INSERT INTO", "INSERT INTO"]
    (again,) = _transactions(ran[4:])
    assert (again[0], again[-1]) == ("BEGIN IMMEDIATE", "COMMIT")
    assert store.get_versioned("n") == (11, 2)
    store.close()
    other.close()


def test_a_transaction_is_one_database_transaction_on_sqlite(
    statements: Statements, sqlite_store: Any
) -> None:
    _move(sqlite_store)
    (one,) = _transactions(statements.during(lambda: _move(sqlite_store)))
    assert (one[0], one[-1]) == ("BEGIN", "COMMIT")  # its read, then its writes, in one
    (blind,) = _transactions(statements.during(lambda: _blind(sqlite_store)))
    assert (blind[0], blind[-1]) == ("BEGIN IMMEDIATE", "COMMIT")
    assert (sqlite_store.get("a"), sqlite_store.get("b")) == (40, 61)
    assert sqlite_store.get("log") == ["moved 30", "moved 30", "x", "y"]


def test_a_transactions_reads_come_from_one_snapshot_and_its_commit_detects_a_change(
    tmp_path: Path,
) -> None:
    store = racefree.open_store(f"sqlite:///{tmp_path / 'snapshot.db'}")
    store.set("a", 1)
    store.set("b", 1)
    seen: list[tuple[int, int]] = []
    with pytest.raises(racefree.ConflictError) as caught, store.transaction() as tx:
        a = tx.get("a")
        store.set("a", 2)  # another agent writes both keys between the two reads
        store.set("b", 2)
        b = tx.get("b")
        seen.append((a, b))
        tx.set("sum", a + b)
    assert seen == [(1, 1)]  # both from the instant of the first read, never (1, 2)
    assert (caught.value.key, caught.value.expected, caught.value.actual) == ("a", 1, 2)
    assert store.get_versioned("sum") == (None, 0)
    store.close()
