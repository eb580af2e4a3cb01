"""The SQLite backend (``sqlite:///path/to/file.db``): processes of one machine.

Every op is one SQLite transaction on the database file, and most
single-key ops are one *statement*, which SQLite runs as a transaction of
its own (no ``BEGIN``, no ``COMMIT``): where SQL can check and write exactly
what the shared decision would, the statement does both (``set`` and
``increment`` an ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING``,
``compare_and_set`` an ``UPDATE ... WHERE version = ?``, ``claim`` an upsert
that writes only a key holding nothing, ``get`` a ``SELECT``; an int is
added in SQL only where 64 bits hold the sum exactly). A statement that
finds a case only the decision handles (a list where a JSON value was
expected, a conflict, a float to add) writes nothing, and the op runs as a
whole transaction, which decides it and raises its error. A ``set`` of a key
whose version this process knows is an ``UPDATE ... WHERE version = ?``
without ``RETURNING`` (the upsert follows when another process moved it).
An append is one transaction of four statements (the key's row grown with
``RETURNING`` its old length, the items' rows in one ``INSERT``). ``update``
of a JSON value is one ``UPDATE`` whose new value SQLite gets by calling the
function (``racefree_update``, registered on each connection) under the
write lock: it runs once, and its error aborts the statement. Of a key never
written or a list, ``update`` reads, runs its function, then writes only if
the key is still at the version read; when it moved, the op runs again
under the write lock, so the function runs at most twice. This needs SQLite
3.35 (``RETURNING``); with an older one every op runs as a whole
transaction. The sync store calls ``read``, ``append`` and ``extend``
directly (``FastPath``) when nothing watches.

A whole transaction begins with ``BEGIN IMMEDIATE``, which takes the
database's write lock *before* reading, so read, decide and write happen
under one lock that every process opening the same file respects (a
deferred ``BEGIN`` that upgrades to a write later is what makes other savers
fail with "database is locked"). Read-only ops (``snapshot``, ``versions``)
use a plain ``BEGIN``: in WAL mode they read one consistent snapshot without
blocking writers. While a history is recorded, every op is a whole
transaction (its events need the state it read).

A store transaction (``store.transaction()``) is one SQLite transaction too
(:class:`_Session`): its reads begin a deferred transaction on a connection
of its own, a snapshot, and its commit writes in that same transaction. If
another connection wrote since the snapshot, SQLite refuses the commit's
write lock (``SQLITE_BUSY_SNAPSHOT``); the commit is then run as an
ordinary op, which compares the versions read and raises ``ConflictError``
when one of them changed.

The file is put in WAL mode with a busy timeout (``?timeout=SECONDS``,
default 30): a process that finds the lock taken waits for it; when SQLite
answers ``SQLITE_BUSY`` anyway (it may, without waiting, during a WAL
checkpoint or recovery) the op is run again from the start, until the
timeout. A process killed in the middle of a transaction leaves nothing
behind: SQLite ignores its uncommitted WAL frames and the OS releases its
locks.

Layout: ``racefree_keys`` holds one row per key (kind, JSON text, version,
last writer); a key holding a list keeps its items as rows of
``racefree_items`` (one JSON text each), so an append inserts one row
instead of rewriting the list; ``racefree_done`` holds idempotency records.
Values are JSON text, never pickle. Each thread uses its own connection;
the asyncio flavour runs the same blocking calls in a worker thread
(``asyncio.to_thread``), so the event loop never waits on the file.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from racefree.errors import BackendUnavailableError, StoreError, UsageError
from racefree.history import History
from racefree.state._core import (
    EMPTY,
    EXTEND,
    PUT,
    RUNS_USER_CODE,
    KeyState,
    Op,
    decide,
    decide_all,
    describe_events,
    needs_items,
    replay,
)
from racefree.state._values import to_json
from racefree.state.backends import redact
from racefree.state.backends._shared import (
    _scan,
    dumps,
    loads,
    loads_list,
    loads_record,
    query_options,
    record_text,
    reentrant_call_error,
    wait_to_be_handed,
)
from racefree.state.backends.base import AsyncBackend, Backend

__all__ = ["AsyncSQLiteBackend", "SQLiteBackend", "open_async", "open_sync"]

GUARANTEE = (
    "Safe across the threads, asyncio tasks and processes of one machine that open the "
    "same database file."
)

DEFAULT_TIMEOUT = 30.0

_JSON = 0  # racefree_keys.value holds the JSON text
_LIST = 1  # the value is a list whose items are rows of racefree_items

_READ_ONLY = frozenset({"get", "snapshot", "versions"})
_APPENDS = frozenset({"append", "extend", "append_turn"})

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS racefree_keys (key TEXT PRIMARY KEY, kind INTEGER NOT NULL, "
    "value TEXT, length INTEGER NOT NULL, version INTEGER NOT NULL, writer TEXT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS racefree_items (key TEXT NOT NULL, idx INTEGER NOT NULL, "
    "item TEXT NOT NULL, PRIMARY KEY (key, idx)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS racefree_done (idem TEXT PRIMARY KEY, record TEXT NOT NULL) "
    "WITHOUT ROWID",
)

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6

# RETURNING (SQLite 3.35) lets one statement check, write and answer; an
# older SQLite runs every op as a whole transaction instead.
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
_DECLINED = object()  # a one-statement op that the whole transaction must decide
_EXACT = 2**53  # an int amount below this adds exactly to a stored int of up to 17 characters

_INSERT_JSON = (
    "INSERT INTO racefree_keys (key, kind, value, length, version, writer) "
    "VALUES (?1, 0, ?2, 0, 1, ?3) ON CONFLICT (key) DO UPDATE SET "
)
# Replaces a JSON value (not a list: its items' rows would stay behind).
_SET = (
    _INSERT_JSON + "value = excluded.value, version = version + 1, writer = excluded.writer "
    "WHERE kind = 0 RETURNING version"
)
# Writes only a key never written.
_CREATE = (
    "INSERT INTO racefree_keys (key, kind, value, length, version, writer) "
    "VALUES (?1, 0, ?2, 0, 1, ?3) ON CONFLICT (key) DO NOTHING"
)
# Writes only at the expected version (?4) of a JSON value.
_COMPARE_AND_SET = (
    "UPDATE racefree_keys SET value = ?2, version = version + 1, writer = ?3 "
    "WHERE key = ?1 AND version = ?4 AND kind = 0"
)
# Adds to a stored int of at most 17 characters, which SQL adds exactly in 64
# bits (null counts as 0); a float, a longer int or any other text declines.
_INCREMENT = (
    _INSERT_JSON + "value = CASE value WHEN 'null' THEN ?2 ELSE CAST(value AS INTEGER) + ?2 END, "
    "version = version + 1, writer = excluded.writer WHERE kind = 0 AND (value = 'null' OR "
    "(length(value) <= 17 AND CAST(CAST(value AS INTEGER) AS TEXT) = value)) RETURNING value"
)
# Writes only a key that holds nothing (never written, or set to None).
_CLAIM = (
    _INSERT_JSON + "value = excluded.value, version = version + 1, writer = excluded.writer "
    "WHERE kind = 0 AND value = 'null'"
)
# Grows a list's row by ?2 items (or makes a list's row where the key holds
# nothing); answers the first new index.
_GROW = (
    "INSERT INTO racefree_keys (key, kind, value, length, version, writer) "
    "VALUES (?1, 1, NULL, ?2, 1, ?3) ON CONFLICT (key) DO UPDATE SET kind = 1, value = NULL, "
    "length = CASE kind WHEN 1 THEN length + ?2 ELSE ?2 END, version = version + 1, "
    "writer = excluded.writer WHERE kind = 1 OR value = 'null' RETURNING length - ?2"
)
_GET = "SELECT kind, value, version FROM racefree_keys WHERE key = ?"
# A JSON value's text, or NULL for a list (whose items are rows of racefree_items).
_READ = "SELECT value, version FROM racefree_keys WHERE key = ?"
# Replaces a JSON value known to be at version ?4: no RETURNING needed (the
# new version is ?4 + 1), which saves SQLite about a sixth of the write.
# update: the new value from the caller's function, called by SQLite for the
# row (see SQLiteBackend._update).
_UPDATE_IN_SQL = (
    "UPDATE racefree_keys SET value = racefree_update(value, version), version = version + 1, "
    "writer = ?2 WHERE key = ?1 AND kind = 0"
)
_SET_AT = (
    "UPDATE racefree_keys SET value = ?2, version = ?4 + 1, writer = ?3 "
    "WHERE key = ?1 AND version = ?4 AND kind = 0"
)
# A key's row and its items' rows in one statement, so from one instant.
_READ_ONE = (
    "SELECT -1, kind, value, version, writer FROM racefree_keys WHERE key = ?1 UNION ALL "
    "SELECT idx, NULL, item, NULL, NULL FROM racefree_items WHERE key = ?1 ORDER BY 1"
)


# Rows per INSERT: 3 parameters each stay below SQLite's oldest limit of 999.
_ROWS_PER_INSERT = 300


_INSERT_ONE = "INSERT INTO racefree_items (key, idx, item) VALUES (?,?,?)"


@functools.lru_cache(maxsize=64)
def _insert_rows(count: int) -> str:
    """An INSERT of ``count`` items' rows: the same text for the same count, so prepared once."""
    return "INSERT INTO racefree_items (key, idx, item) VALUES " + ",".join(["(?,?,?)"] * count)


def _read_one(conn: sqlite3.Connection, key: str) -> KeyState:
    rows = conn.execute(_READ_ONE, (key,)).fetchall()
    if not rows or rows[0][0] != -1:
        return EMPTY
    _, kind, text, version, writer = rows[0]
    if kind == _LIST:
        return KeyState(loads_list([row[2] for row in rows[1:]]), version, writer)
    return KeyState(loads(text), version, writer)


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


# How long a writer of this process polls for the writer lock, backing off as
# SQLite's own busy handler does, before it stands in line (see WriterLock).
_PATIENCE = 0.02
_FIRST_PAUSE = 0.0005
_LONGEST_PAUSE = 0.005
# At most this many waiters poll at once; the others stand in line at once
# (a thousand threads polling would spend the cores on waking up).
_POLLERS = 8


class WriterLock:
    """The write turn of one database file among the threads of one process.

    A free lock is taken at once, even while others wait (no hand-over, so a
    thread that writes again and again never waits for a sleeping thread to
    wake up: a thread wake-up per write on two cores cost racefree half its
    throughput at 8 writing threads). A waiter first polls, sleeping 0.5 ms,
    then 1, 2, ... up to 5 ms between tries, as SQLite's busy handler does;
    once it has waited ``_PATIENCE`` (20 ms) it stands in a line, and
    :meth:`release` hands the lock straight to the first in line, in the
    order they came. So no waiter waits longer than that patience plus its
    place in line, however many threads write: with every thread polling
    SQLite's own lock some waited past the timeout at 1,000 threads while
    others progressed. While the line is long, a new waiter joins it at once:
    the lock then passes from one waiter to the next, and polling could only
    take turns on the CPU with the writer (a third less throughput at 1,000
    threads).
    """

    def __init__(self) -> None:
        self._place = threading.Lock()  # held by the thread whose turn it is
        self._mutex = threading.Lock()  # guards _line and every release of _place
        self._line: deque[threading.Lock] = deque()
        self._polling = 0  # waiters polling now (at most _POLLERS; read and written under _mutex)

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds; False if it timed out."""
        if not self._line and self._place.acquire(False):
            return True
        return self._wait(timeout)

    def _wait(self, timeout: float) -> bool:
        now = time.monotonic()
        deadline = now + timeout
        with self._mutex:
            # A long line means the lock is handed from one waiter to the next for a
            # while: polling could not win it, only take turns on the CPU (1,000 threads).
            poll = self._polling < _POLLERS and len(self._line) < _POLLERS
            if poll:
                self._polling += 1
        if poll:
            try:
                patience = min(now + _PATIENCE, deadline)
                pause = _FIRST_PAUSE
                while now < patience:
                    time.sleep(min(pause, patience - now))
                    pause = min(pause * 2, _LONGEST_PAUSE)
                    if not self._line and self._place.acquire(False):
                        return True
                    now = time.monotonic()
            finally:
                with self._mutex:
                    self._polling -= 1
        turn = threading.Lock()
        turn.acquire()
        with self._mutex:
            # Under the mutex the lock is never free while someone stands in
            # line (release hands it over instead), so this is no queue jump.
            if self._place.acquire(False):
                return True
            self._line.append(turn)
        return wait_to_be_handed(turn, self._line, self._mutex, max(deadline - time.monotonic(), 0))

    def idle(self) -> bool:
        """True when the lock is free and nobody stands in line (a hint: it may change at once)."""
        return not self._line and not self._place.locked()

    def release(self) -> None:
        """Hand the lock to the first in line, or free it."""
        with self._mutex:
            if self._line:
                self._line.popleft().release()  # _place stays held: the turn passes
            else:
                self._place.release()


# One writer lock per database file and process: the threads of a process
# take turns here (WriterLock) instead of all polling SQLite's own lock.
# Processes still take turns through SQLite's lock.
_writers: dict[str, WriterLock] = {}
_writers_lock = threading.Lock()


def _writer_lock(path: str) -> WriterLock:
    where = os.path.realpath(path)
    with _writers_lock:
        lock = _writers.get(where)
        if lock is None:
            lock = _writers[where] = WriterLock()
        return lock


def parse_url(url: str) -> tuple[str, float]:
    """The file path and the busy timeout of a ``sqlite:///...`` URL.

    ``sqlite:///demo.db`` is ``demo.db`` relative to the working directory;
    ``sqlite:////tmp/demo.db`` is the absolute path ``/tmp/demo.db``.
    """
    shown = redact(url)
    rest = url.split("://", 1)[1].split("?", 1)[0]
    path = unquote(rest[1:]) if rest.startswith("/") else ""
    if not path or path == ":memory:" or path.startswith("file:"):
        raise UsageError(
            f"The SQLite store URL {shown!r} names no database file. Write "
            "sqlite:///relative/path.db or sqlite:////absolute/path.db; for a store "
            "private to one process use memory://."
        )
    options = query_options(url, {"timeout": float}, shown)
    timeout = options.get("timeout", DEFAULT_TIMEOUT)
    if not timeout > 0:
        raise UsageError(f"The option timeout in {shown!r} must be above 0 seconds.")
    return path, timeout


class _ListResult(Exception):
    """Aborts an update's statement whose new value is a list (see SQLiteBackend._update)."""


_LIST_RESULT = _ListResult()


class _UpdateCall:
    """One update's function, and what SQLite's call of it found and made."""

    __slots__ = ("error", "fn", "new", "old", "version")

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.error: BaseException | None = None
        self.new: Any = None
        self.old: Any = None
        self.version = 0


class _Local(threading.local):
    """What each thread keeps: its connection, and whether it runs the caller's code now."""

    conn: sqlite3.Connection | None = None
    generation = -1
    in_user_code = False
    update: _UpdateCall | None = None


# The versions this process last wrote or read, per backend (a hint: a
# write at a version that moved since finds no row and runs without it).
_VERSIONS_LIMIT = 65_536


class SQLiteBackend(Backend):
    """State in one SQLite file; every op is one transaction (see the module docstring)."""

    schemes = ("sqlite",)
    guarantee = GUARANTEE
    optimistic = False

    def __init__(self, url: str, *, history: History | None = None) -> None:
        self._shown = redact(url)
        self._path, self._timeout = parse_url(url)
        self._history = history
        self._local = _Local()
        self._versions: dict[str, int] = {}
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._idle: list[sqlite3.Connection] = []  # connections for transactions' sessions
        self._generation = 0
        self._schema_ready = False
        self._writer = _writer_lock(self._path)
        self._one_statement: dict[str, Any] = (
            {
                "get": self._get,
                "set": self._set,
                "compare_and_set": self._compare_and_set,
                "increment": self._increment,
                "claim": self._claim,
                "append": self._extend,
                "extend": self._extend,
                "append_turn": self._extend,
                "update": self._update,
            }
            if _RETURNING
            else {}
        )
        self._connection()  # fail now, not at the first op, when the file cannot be opened

    @property
    def history(self) -> History | None:
        """The history that :meth:`execute` records events into, or ``None``."""
        return self._history

    # ------------------------------------------------------------ connections

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        conn = local.conn
        if conn is not None and local.generation == self._generation:
            return conn
        conn = local.conn = self._with_retries(self._connect)
        local.generation = self._generation
        return conn  # type: ignore[no-any-return]

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            # Both checks only read: a process that opens an existing store
            # takes no write lock, so it never waits behind a busy writer.
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.create_function("racefree_update", 2, self._call_update)
            if not self._schema_ready and self._has_schema(conn):
                self._schema_ready = True
            if not self._schema_ready:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                self._schema_ready = True
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._connections.append(conn)
        return conn

    @staticmethod
    def _has_schema(conn: sqlite3.Connection) -> bool:
        (count,) = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
            "('racefree_keys', 'racefree_items', 'racefree_done')"
        ).fetchone()
        return bool(count == len(_SCHEMA))

    def _take(self) -> sqlite3.Connection:
        """A connection of its own for a transaction's session (see :class:`_Session`)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn: sqlite3.Connection = self._with_retries(self._connect)
        return conn

    def _give(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if any(open_ is conn for open_ in self._connections):  # not closed meanwhile
                self._idle.append(conn)

    def close(self) -> None:
        """Close every connection; a later op opens a fresh one."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._idle = []
            self._generation += 1
        for conn in connections:
            conn.close()

    # ------------------------------------------------------------ errors, retries

    def _with_retries(self, call: Any, *args: Any) -> Any:
        """Run ``call`` again while SQLite answers busy, until the timeout; translate errors."""
        try:
            return call(*args)
        except sqlite3.Error as exc:
            if not _is_busy(exc):
                raise self._unavailable(exc) from exc
        deadline = time.monotonic() + self._timeout
        pause = 0.001
        while True:
            time.sleep(pause)  # back off: another process holds the lock
            pause = min(pause * 2, 0.05)
            try:
                return call(*args)
            except sqlite3.Error as exc:
                if not (_is_busy(exc) and time.monotonic() < deadline):
                    raise self._unavailable(exc) from exc

    def _unavailable(self, exc: sqlite3.Error) -> BackendUnavailableError:
        if _is_busy(exc):
            return BackendUnavailableError(
                f"The SQLite store {self._shown} stayed locked for {self._timeout:g} s: "
                "another process holds a long write transaction (the threads of this "
                "process take turns before they ask). Nothing was written; retry later, "
                "or raise the wait with ?timeout=SECONDS in the URL."
            )
        where = os.path.abspath(self._path) if self._path != ":memory:" else self._path
        return BackendUnavailableError(
            f"The SQLite store {self._shown} cannot be used: {exc}. Nothing was written; "
            f"check that {where} is a racefree SQLite store and that its folder exists "
            "and is writable (sqlite:///name.db is relative to the current folder, "
            "sqlite:////abs/name.db absolute)."
        )

    # ------------------------------------------------------------ ops

    def execute(self, op: Op) -> Any:
        """Carry out one op in one SQLite transaction (see ``Backend.execute``)."""
        if self._local.in_user_code:
            raise reentrant_call_error(op)
        if self._history is None and op.idempotency_key is None:
            one_statement = self._one_statement.get(op.name)
            if one_statement is not None:
                try:
                    result = one_statement(op)
                except sqlite3.Error as exc:  # what _with_retries does, without its frame
                    if not _is_busy(exc):
                        raise self._unavailable(exc) from exc
                    result = self._with_retries(one_statement, op)
                if result is not _DECLINED:
                    return result
        read_only = op.name in _READ_ONLY and self._history is None
        if read_only:  # WAL readers never wait for writers
            return self._with_retries(self._transaction, op, "BEGIN")
        self._take_turn()
        try:
            return self._with_retries(self._transaction, op, "BEGIN IMMEDIATE")
        finally:
            self._writer.release()

    # One statement per op, where SQL can check and write what the decision
    # would: SQLite runs a lone statement as a transaction of its own, so
    # there is no BEGIN and COMMIT to send. Each answers _DECLINED, having
    # written nothing, for a case only the full decision handles (a list
    # where a JSON value was expected, a conflict, a number SQL cannot add
    # exactly); the op then runs as a whole transaction, which decides it.

    def _get(self, op: Op) -> Any:
        return list(self.read(op.keys[0]))  # type: ignore[index]

    def read(self, key: str) -> tuple[Any, int]:
        """``(value, version)`` of ``key``: one ``SELECT`` (two for a list, see ``_read_one``)."""
        local = self._local
        if local.in_user_code:  # a store call from inside an update function
            raise reentrant_call_error(Op("get", (key,), ()))
        conn = local.conn
        if conn is None or local.generation != self._generation:
            conn = self._connection()
        row = conn.execute(_READ, (key,)).fetchone()
        if row is None:
            return None, 0
        text, version = row
        if text is None:  # a list: its items too, in one statement with the row, one instant
            state = _read_one(conn, key)
            return state.value, state.version
        versions = self._versions
        if len(versions) >= _VERSIONS_LIMIT:
            versions.clear()
        versions[key] = version
        try:  # what loads does, without its frame
            value, end = _scan(text, 0)
            if end == len(text):
                return value, version
        except (RecursionError, StopIteration):
            pass
        return loads(text), version

    def _write_if(self, sql: str, args: tuple[Any, ...]) -> bool:
        """Run one writing statement in this process's turn; whether it wrote its row.

        For a statement whose answer is known beforehand (the version
        expected, plus one): ``RETURNING`` would add about a third to what
        SQLite spends on the write.
        """
        conn = self._connection()
        self._take_turn()
        try:
            wrote: bool = conn.execute(sql, args).rowcount == 1
        finally:
            self._writer.release()
        return wrote

    def _set(self, op: Op) -> Any:
        value = op.args[0]
        if type(value) is list:
            return _DECLINED
        key: str = op.keys[0]  # type: ignore[index]
        text = dumps(value)
        versions = self._versions
        known = versions.get(key)
        conn = self._connection()
        self._take_turn()
        try:
            # At the version this process last saw, the new one is known: no
            # RETURNING. Moved since (another process wrote): the upsert.
            if known is None or conn.execute(_SET_AT, (key, text, op.agent, known)).rowcount != 1:
                row = conn.execute(_SET, (key, text, op.agent)).fetchone()
                if row is None:
                    versions.pop(key, None)
                    return _DECLINED
                known = row[0]
            else:
                known += 1
        finally:
            self._writer.release()
        if len(versions) >= _VERSIONS_LIMIT:
            versions.clear()
        versions[key] = known
        return known

    def _compare_and_set(self, op: Op) -> Any:
        value, expected = op.args
        if type(value) is list:
            return _DECLINED
        key: str = op.keys[0]  # type: ignore[index]
        if expected == 0:
            return self._replace(key, value, op.agent, 0)
        text = dumps(value)
        conn = self._connection()
        self._take_turn()
        try:  # _replace's statement, without its two frames (the common case)
            wrote = conn.execute(_COMPARE_AND_SET, (key, text, op.agent, expected)).rowcount == 1
        finally:
            self._writer.release()
        if not wrote:
            return _DECLINED
        self._versions[key] = expected + 1
        return expected + 1

    def _replace(self, key: str, value: Any, writer: str | None, expected: int) -> Any:
        """Write a JSON value only if the key is at version ``expected`` (0: never written)."""
        if expected == 0:
            wrote = self._write_if(_CREATE, (key, dumps(value), writer))
        else:
            wrote = self._write_if(_COMPARE_AND_SET, (key, dumps(value), writer, expected))
        if not wrote:
            return _DECLINED
        self._versions[key] = expected + 1
        return expected + 1

    def _increment(self, op: Op) -> Any:
        amount = op.args[0]
        if type(amount) is not int or not -_EXACT < amount < _EXACT:
            return _DECLINED  # floats and big ints: Python's arithmetic, in the decision
        conn = self._connection()
        self._take_turn()
        try:
            row = conn.execute(_INCREMENT, (op.keys[0], amount, op.agent)).fetchone()  # type: ignore[index]
        finally:
            self._writer.release()
        return _DECLINED if row is None else int(row[0])

    def _claim(self, op: Op) -> Any:
        text = dumps(op.args[0])
        conn = self._connection()
        self._take_turn()
        try:
            wrote = conn.execute(_CLAIM, (op.keys[0], text, op.agent)).rowcount == 1  # type: ignore[index]
        finally:
            self._writer.release()
        return True if wrote else _DECLINED

    def _extend(self, op: Op) -> Any:
        """append, extend, append_turn: the new items' rows and the key's row, one transaction.

        Without ``RETURNING`` the whole transaction of any op, where ``_run``
        hands an append without an idempotency key to ``_fast_extend``.
        """
        return self._append_now(op.keys[0], op.args[0], op.agent)  # type: ignore[index]

    def _append_now(self, key: str, items: list[Any], writer: str | None) -> Any:
        """The key's row grown with ``RETURNING`` its old length, then the items' rows.

        One transaction of four statements, in this process's turn;
        ``_DECLINED`` (nothing written) where the key holds no list.
        """
        texts = [dumps(item) for item in items]  # before the turn: it is held for less
        conn = self._connection()
        self._take_turn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(_GROW, (key, len(texts), writer)).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    return _DECLINED
                start: int = row[0]
                if len(texts) == 1:
                    conn.execute(_INSERT_ONE, (key, start, texts[0]))
                else:
                    self._insert_texts(conn, key, start, texts)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            self._writer.release()
        return start

    # ------------------------------------------------------------ fast path

    def fast_path(self) -> SQLiteBackend | None:
        """``read``, ``append``, ``extend`` without an op (see ``FastPath``), unless recording.

        The same statements as ``execute`` runs for the op each stands for,
        without building and dispatching it; any other case goes to ``execute``.
        """
        return self if self._history is None and _RETURNING else None

    def append(self, key: str, item: Any) -> int:
        """``Op("append", (key,), ([item],))`` (see ``FastPath.append``)."""
        return self._grow(key, [item], "append")

    def extend(self, key: str, items: list[Any]) -> int:
        """``Op("extend", (key,), (items,))`` (see ``FastPath.extend``)."""
        return self._grow(key, items, "extend")

    def _grow(self, key: str, items: list[Any], name: str) -> int:
        if self._local.in_user_code:  # a store call from inside an update function
            raise reentrant_call_error(Op(name, (key,), (items,)))
        try:
            start = self._append_now(key, items, None)
        except sqlite3.Error as exc:
            if not _is_busy(exc):
                raise self._unavailable(exc) from exc
            start = self._with_retries(self._append_now, key, items, None)
        if start is _DECLINED:  # not a list: the decision raises its error
            result: int = self.execute(Op(name, (key,), (items,)))
            return result
        return start  # type: ignore[no-any-return]

    def _update(self, op: Op) -> Any:
        """One ``UPDATE`` whose new value ``fn`` computes, called from SQL (``racefree_update``).

        SQLite calls the function for the key's row while it holds the
        write lock, inside the statement: read, ``fn`` and write are one
        step for every process, ``fn`` runs once, and a failure in ``fn``
        (or a result that is not JSON) aborts the statement, which then has
        written nothing. A key that holds no JSON value matches no row
        (never written, or a list): then ``_update_read_first``. A new value
        that is a list (rows of ``racefree_items``) aborts the statement
        too, and is written by ``_put_list_at`` at the version read.
        """
        key: str = op.keys[0]  # type: ignore[index]
        local = self._local
        conn = self._connection()
        call = local.update = _UpdateCall(op.args[0])
        failed: BaseException | None = None
        self._take_turn()
        try:
            wrote = conn.execute(_UPDATE_IN_SQL, (key, op.agent)).rowcount == 1
        except sqlite3.Error:
            if call.error is None:
                raise  # the engine's own error (busy: run again by execute)
            failed = call.error  # fn's error, or the list to write: raised out of the handler
            wrote = False
        finally:
            self._writer.release()
            local.update = None
        if failed is not None:
            if failed is not _LIST_RESULT:
                raise failed
            old = KeyState(call.old, call.version, None)
            written = self._with_retries(self._put_list_at, key, call.new, op.agent, old)
            return _DECLINED if written is _DECLINED else call.new
        if not wrote:
            return self._update_read_first(op)
        self._versions[key] = call.version + 1
        return call.new

    def _call_update(self, text: str, version: int) -> str:
        """``racefree_update(value, version)``: the new JSON text of the row being updated."""
        local = self._local
        call: _UpdateCall | None = local.update
        if call is None:  # not from _update's statement: refuse, so that nothing is written
            raise UsageError("racefree_update() is called only by the store's own update.")
        try:
            old = loads(text)
            local.in_user_code = True
            try:
                new = to_json(call.fn(old))
            finally:
                local.in_user_code = False
            if type(new) is list:
                call.old, call.new, call.version = old, new, version
                call.error = _LIST_RESULT
                raise _LIST_RESULT
            call.new, call.version = new, version
            return dumps(new)
        except BaseException as exc:
            if call.error is None:
                call.error = exc
            raise

    def _update_read_first(self, op: Op) -> Any:
        """Read, decide, then write only if the key is still at the version read.

        Two statements and the write lock held for the second only, as
        ``compare_and_set`` would; when the version moved (another writer
        came between), ``_DECLINED``: the op then runs again under the write
        lock (``BEGIN IMMEDIATE``), so ``fn`` runs at most twice. While
        another thread of this process holds or waits for the write lock,
        ``_DECLINED`` at once: the op goes straight to that lock.
        """
        if not self._writer.idle():
            # Another thread of this process writes now: its write would very
            # likely move the version under this read, and the op run twice.
            return _DECLINED
        key: str = op.keys[0]  # type: ignore[index]
        row = self._connection().execute(_GET, (key,)).fetchone()
        if row is None:
            state = EMPTY
        elif row[0] == _LIST:
            return _DECLINED
        else:
            state = KeyState(loads(row[1]), row[2], None)  # the writer: not needed to decide
        self._local.in_user_code = True
        try:
            decision = decide(op, [state])
        finally:
            self._local.in_user_code = False
        value = decision.result
        if type(value) is list:  # rows of racefree_items: a transaction, fn not run again
            written = self._with_retries(self._put_list_at, key, value, op.agent, state)
        else:
            written = self._replace(key, value, op.agent, state.version)
        return _DECLINED if written is _DECLINED else value

    def _put_list_at(self, key: str, value: list[Any], writer: str | None, old: KeyState) -> Any:
        """Store a list as ``key``'s value only if the key is still at ``old``'s version."""
        conn = self._connection()
        self._take_turn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(_GET, (key,)).fetchone()
                if (0 if row is None else row[2]) != old.version:
                    conn.execute("ROLLBACK")
                    return _DECLINED
                self._write(conn, PUT, key, value, old, writer)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            self._writer.release()
        return old.version + 1

    def _take_turn(self) -> None:
        """Wait for this process's turn to write (the writer lock of the file)."""
        if not self._writer.acquire(self._timeout):
            raise BackendUnavailableError(
                f"The SQLite store {self._shown} was kept busy for {self._timeout:g} s by the "
                "other threads of this process, each waiting its turn to write. Nothing was "
                "written; use fewer writing threads, or raise the wait with ?timeout=SECONDS "
                "in the URL."
            )

    def session(self) -> _Session | None:
        """A transaction's reads and commit in one SQLite transaction (see :class:`_Session`).

        ``None`` while a history is recorded: then every read is its own
        ``BEGIN IMMEDIATE`` transaction, so that events are recorded in the
        order the writes were applied.
        """
        return _Session(self) if self._history is None else None

    def _transaction(self, op: Op, begin: str) -> Any:
        conn = self._connection()
        conn.execute(begin)
        try:
            result = self._run(conn, op)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _run(self, conn: sqlite3.Connection, op: Op) -> Any:
        idempotency_key = op.idempotency_key
        if idempotency_key is not None:
            row = conn.execute(
                "SELECT record FROM racefree_done WHERE idem = ?", (idempotency_key,)
            ).fetchone()
            if row is not None:
                return replay(op, loads_record(row[0]))
        if op.keys is None:
            everything = self._load_all(conn)
            decision = decide_all(op, everything)
            keys: Sequence[str] = tuple(everything)
            states: list[KeyState] = list(everything.values())
        else:
            keys = op.keys
            if op.name in _APPENDS and self._history is None:
                result = self._fast_extend(conn, op)
                if idempotency_key is not None:
                    self._remember(conn, op, result)
                return result
            states = [
                self._load(conn, key, items)
                for key, items in zip(keys, needs_items(op), strict=True)
            ]
            if op.name in RUNS_USER_CODE:
                self._local.in_user_code = True
                try:
                    decision = decide(op, states)
                finally:
                    self._local.in_user_code = False
            else:
                decision = decide(op, states)
        if self._history is not None:
            for event in describe_events(op, keys, states, decision):
                self._history.record(**event)
        if decision.effects:
            by_key = dict(zip(keys, states, strict=True))
            for kind, key, payload in decision.effects:
                self._write(conn, kind, key, payload, by_key[key], op.agent)
        if idempotency_key is not None:
            self._remember(conn, op, decision.result)
        return decision.result

    def _remember(self, conn: sqlite3.Connection, op: Op, result: Any) -> None:
        conn.execute(
            "INSERT INTO racefree_done (idem, record) VALUES (?, ?)",
            (op.idempotency_key, record_text(op, result)),
        )

    def _load(self, conn: sqlite3.Connection, key: str, items: bool = True) -> KeyState:
        """A key's state; without ``items`` a list is given as ``[]`` (see ``needs_items``)."""
        row = conn.execute(
            "SELECT kind, value, version, writer FROM racefree_keys WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return EMPTY
        kind, text, version, writer = row
        if kind == _LIST and not items:
            return KeyState([], version, writer)
        if kind == _LIST:
            rows = conn.execute(
                "SELECT item FROM racefree_items WHERE key = ? ORDER BY idx", (key,)
            ).fetchall()
            return KeyState(loads_list([item for (item,) in rows]), version, writer)
        return KeyState(loads(text), version, writer)

    def _load_all(self, conn: sqlite3.Connection) -> dict[str, KeyState]:
        items: dict[str, list[str]] = {}
        for key, item in conn.execute("SELECT key, item FROM racefree_items ORDER BY key, idx"):
            items.setdefault(key, []).append(item)
        states = {}
        for key, kind, text, version, writer in conn.execute(
            "SELECT key, kind, value, version, writer FROM racefree_keys ORDER BY key"
        ):
            value = loads_list(items.get(key, [])) if kind == _LIST else loads(text)
            states[key] = KeyState(value, version, writer)
        return states

    def _fast_extend(self, conn: sqlite3.Connection, op: Op) -> int:
        """append, extend, append_turn without reading the list: insert the new items' rows."""
        key = op.keys[0]  # type: ignore[index]
        items: list[Any] = op.args[0]
        if _RETURNING:  # the key's row grown in place, unless it holds no list
            row = conn.execute(_GROW, (key, len(items), op.agent)).fetchone()
            if row is not None:
                self._insert_items(conn, key, row[0], items)
                result: int = row[0]
                return result
        row = conn.execute(
            "SELECT kind, value, length, version, writer FROM racefree_keys WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            start = 0
            conn.execute(
                "INSERT INTO racefree_keys (key, kind, value, length, version, writer) "
                "VALUES (?, ?, NULL, ?, 1, ?)",
                (key, _LIST, len(items), op.agent),
            )
        else:
            kind, text, length, version, writer = row
            if kind == _LIST:
                start = length
            elif text == "null":
                start = 0
            else:  # the decision raises the same WrongTypeError as every backend
                decide(op, [KeyState(loads(text), version, writer)])
                raise AssertionError("unreachable: extending a non-list must raise")
            conn.execute(
                "UPDATE racefree_keys SET kind = ?, value = NULL, length = ?, version = ?, "
                "writer = ? WHERE key = ?",
                (_LIST, start + len(items), version + 1, op.agent, key),
            )
        self._insert_items(conn, key, start, items)
        return start

    @staticmethod
    def _insert_items(conn: sqlite3.Connection, key: str, start: int, items: Sequence[Any]) -> None:
        """The items' rows, up to ``_ROWS_PER_INSERT`` per statement (one for a short list)."""
        SQLiteBackend._insert_texts(conn, key, start, [dumps(item) for item in items])

    @staticmethod
    def _insert_texts(conn: sqlite3.Connection, key: str, start: int, texts: list[str]) -> None:
        """The rows of items given as JSON texts (see ``_insert_items``)."""
        for first in range(0, len(texts), _ROWS_PER_INSERT):
            chunk = texts[first : first + _ROWS_PER_INSERT]
            values: list[Any] = []
            for i, text in enumerate(chunk, start + first):
                values += (key, i, text)
            conn.execute(_insert_rows(len(chunk)), values)

    def _write(
        self,
        conn: sqlite3.Connection,
        kind: int,
        key: str,
        payload: Any,
        old: KeyState,
        writer: str | None,
    ) -> None:
        version = old.version + 1
        if kind == EXTEND:
            # The stored length, not len(old.value): the list may not have been read.
            (start,) = conn.execute(
                "SELECT length FROM racefree_keys WHERE key = ?", (key,)
            ).fetchone()
            self._insert_items(conn, key, start, payload)
            conn.execute(
                "UPDATE racefree_keys SET length = length + ?, version = ?, writer = ? "
                "WHERE key = ?",
                (len(payload), version, writer, key),
            )
            return
        if type(old.value) is list:
            conn.execute("DELETE FROM racefree_items WHERE key = ?", (key,))
        if type(payload) is list:
            row: tuple[Any, ...] = (key, _LIST, None, len(payload), version, writer)
            self._insert_items(conn, key, 0, payload)
        else:
            row = (key, _JSON, dumps(payload), 0, version, writer)
        conn.execute(
            "INSERT INTO racefree_keys (key, kind, value, length, version, writer) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, "
            "value = excluded.value, length = excluded.length, version = excluded.version, "
            "writer = excluded.writer",
            row,
        )


# A write that writes nothing: it makes SQLite take the write lock, which it
# refuses (SQLITE_BUSY_SNAPSHOT) when the transaction's snapshot is out of date.
_CHECK_SNAPSHOT = "DELETE FROM racefree_done WHERE 0"


class _Session:
    """One store transaction's reads and commit in one SQLite transaction of its own.

    The first read begins a deferred transaction on a connection of the
    session's own (in WAL mode a snapshot that blocks no writer), so every key
    it reads comes from one instant. The commit writes in that same
    transaction: its first write takes the write lock, and SQLite refuses it
    (``SQLITE_BUSY_SNAPSHOT``) when another connection committed since the
    snapshot; the commit then runs as an ordinary op (``BEGIN IMMEDIATE``,
    versions compared), which raises ``ConflictError`` when a key read has
    changed, as on every backend. A key read a second time is read afresh,
    outside the snapshot, so that a change fails at once (as the store
    promises).
    """

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend
        self._conn: sqlite3.Connection | None = None
        # What the reads saw; a value is shared with the caller, which may
        # change it: the commit's decision depends only on a value's kind
        # and on numbers, which no caller can change in place.
        self._states: dict[str, KeyState] = {}

    def execute(self, op: Op) -> Any:
        """A read (``get``) in the snapshot, or the commit (see the class docstring)."""
        backend = self._backend
        if backend._local.in_user_code:
            raise reentrant_call_error(op)
        if op.name == "commit":
            return self._commit(op)
        key: str = op.keys[0]  # type: ignore[index]
        if key in self._states:
            return backend.execute(op)
        return backend._with_retries(self._read, key)

    def _read(self, key: str) -> list[Any]:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._backend._take()
        if not conn.in_transaction:
            conn.execute("BEGIN")
        state = self._backend._load(conn, key)
        self._states[key] = state
        return [state.value, state.version]

    def _commit(self, op: Op) -> Any:
        backend = self._backend
        conn = self._conn
        if conn is None or not conn.in_transaction:  # nothing read: an ordinary op
            self.close()
            return backend.execute(op)
        backend._take_turn()
        try:
            try:
                result = self._write(conn, op)
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if not _is_busy(exc):
                    raise backend._unavailable(exc) from exc
                # Another connection wrote since the snapshot: decide on the current state.
                return backend._with_retries(backend._transaction, op, "BEGIN IMMEDIATE")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            backend._writer.release()
            self.close()
        return result

    def _write(self, conn: sqlite3.Connection, op: Op) -> Any:
        backend = self._backend
        keys: tuple[str, ...] = op.keys  # type: ignore[assignment]
        states = [
            self._states.get(key) or backend._load(conn, key, items)
            for key, items in zip(keys, needs_items(op), strict=True)
        ]
        try:
            decision = decide(op, states)
        except StoreError:
            conn.execute(_CHECK_SNAPSHOT)  # refused on what was read: only if it is current
            raise
        if decision.effects:
            by_key = dict(zip(keys, states, strict=True))
            for kind, key, payload in decision.effects:
                backend._write(conn, kind, key, payload, by_key[key], op.agent)
        else:
            conn.execute(_CHECK_SNAPSHOT)
        conn.execute("COMMIT")
        return decision.result

    def close(self) -> None:
        """Roll the database transaction back (it wrote nothing) and give the connection back."""
        conn, self._conn = self._conn, None
        self._states = {}
        if conn is not None:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                return  # closed with the store: nothing to give back
            self._backend._give(conn)

    def __del__(self) -> None:
        # A transaction dropped without commit or abandon: end it all the same.
        if self._conn is not None:
            self.close()


class _AsyncSession:
    """:class:`_Session` for asyncio: its reads and its commit run in a worker thread."""

    def __init__(self, sync: _Session) -> None:
        self._sync = sync

    async def execute(self, op: Op) -> Any:
        return await asyncio.to_thread(self._sync.execute, op)

    def close(self) -> None:
        self._sync.close()  # a rollback of reads: it never waits for a lock


class AsyncSQLiteBackend(AsyncBackend):
    """The SQLite backend for asyncio: each op runs in a worker thread (``asyncio.to_thread``)."""

    schemes = ("sqlite",)
    guarantee = GUARANTEE
    optimistic = False

    def __init__(self, url: str, *, history: History | None = None) -> None:
        self._sync = SQLiteBackend(url, history=history)

    @property
    def history(self) -> History | None:
        """The history that :meth:`execute` records events into, or ``None``."""
        return self._sync.history

    async def execute(self, op: Op) -> Any:
        """Carry out one op in a worker thread, without blocking the event loop."""
        return await asyncio.to_thread(self._sync.execute, op)

    def session(self) -> _AsyncSession | None:
        """The sync backend's session (see ``SQLiteBackend.session``), awaited."""
        sync = self._sync.session()
        return _AsyncSession(sync) if sync is not None else None

    async def aclose(self) -> None:
        """Close every connection."""
        self._sync.close()


def open_sync(url: str, *, history: History | None) -> SQLiteBackend:
    """Open (creating it if needed) the SQLite store at ``url``."""
    return SQLiteBackend(url, history=history)


def open_async(url: str, *, history: History | None) -> AsyncSQLiteBackend:
    """Open the SQLite store at ``url`` for asyncio."""
    return AsyncSQLiteBackend(url, history=history)
