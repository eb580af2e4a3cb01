"""The SQLite backend's fast path and its known versions behave exactly like the general path.

Without a history, an exploration or an idempotency key, the SQLite store
sends ``get``, ``append`` and ``extend`` straight to the backend
(``FastPath``: the same statements, no op built and dispatched), and a
``set`` of a key whose version this process knows is an ``UPDATE ... WHERE
version = ?`` without ``RETURNING``. These tests run the same seeded
sequences through a store that uses both and one that does not (each on
its own file), and compare every result, every refusal (type and message),
and the rows the file then holds: values, versions and writers. Versions
stay right when other processes write the same key.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import racefree
from racefree.state.backends import sqlite as sqlite_backend
from tests.state import workers
from tests.state.test_memory_fast_path import REDUCERS, _outcome, _random_ops

SPAWN = multiprocessing.get_context("spawn")


def _rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        keys = conn.execute(
            "SELECT key, kind, value, length, version, writer FROM racefree_keys ORDER BY key"
        ).fetchall()
        items = conn.execute(
            "SELECT key, idx, item FROM racefree_items ORDER BY key, idx"
        ).fetchall()
    finally:
        conn.close()
    return keys + items


def _open(path: Path, *, fast: bool) -> racefree.Store:
    store = racefree.open_store(f"sqlite:///{path}", reducers=REDUCERS)
    assert store._fast is not None  # a SQLite store without history has one
    if not fast:
        store._fast = None  # every op built and dispatched
        store._backend._versions = _Forgetful()  # type: ignore[attr-defined]
    return store


class _Forgetful(dict[str, int]):
    """A versions map that keeps nothing: every set is the upsert."""

    def __setitem__(self, key: str, value: int) -> None:
        return None


@pytest.mark.parametrize("seed", range(8))
def test_a_random_sequence_gives_the_same_results_and_rows_on_both_paths(
    seed: int, tmp_path: Path
) -> None:
    fast, general = _open(tmp_path / "fast.db", fast=True), _open(tmp_path / "gen.db", fast=False)
    try:
        for number, op in enumerate(_random_ops(seed, 80)):
            with racefree.agent(f"agent-{number % 3}"):
                got, expected = _outcome(op, fast), _outcome(op, general)
            assert got == expected, f"seed {seed}, op {number}"
        assert _rows(tmp_path / "fast.db") == _rows(tmp_path / "gen.db")
    finally:
        fast.close()
        general.close()


def test_the_fast_path_checks_keys_and_values_and_writes_nothing_on_bad_input(
    tmp_path: Path,
) -> None:
    store = _open(tmp_path / "bad.db", fast=True)
    store.set("text", "x")
    before = _rows(tmp_path / "bad.db")
    with pytest.raises(racefree.InvalidKeyError):
        store.get(3)  # type: ignore[arg-type]
    with pytest.raises(racefree.InvalidKeyError):
        store.append("", 1)
    with pytest.raises(racefree.NotSerializableError):
        store.append("log", {"s": {1, 2}})
    with pytest.raises(racefree.NotSerializableError):
        store.extend("log", [1, object()])
    with pytest.raises(racefree.NotSerializableError):
        store.set("text", float("nan"))
    with pytest.raises(racefree.WrongTypeError, match="append"):
        store.append("text", 1)  # not a list: the decision's own error, naming the op
    with pytest.raises(racefree.WrongTypeError, match="extend"):
        store.extend("text", [1])
    assert _rows(tmp_path / "bad.db") == before
    store.close()


def test_the_fast_path_steps_aside_while_a_history_records(tmp_path: Path) -> None:
    history = racefree.History()
    store = racefree.open_store(f"sqlite:///{tmp_path / 'h.db'}", history=history)
    assert store._fast is None
    store.append("log", 1)
    store.get("log")
    assert [(e.op, e.key) for e in history.events][-2:] == [("append", "log"), ("get", "log")]
    store.close()


def test_without_returning_there_is_no_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "_RETURNING", False)
    store = racefree.open_store(f"sqlite:///{tmp_path / 'old.db'}")
    assert store._fast is None
    assert store.append("log", 1) == 0
    store.close()


def test_sets_from_4_processes_get_every_version_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'versions.db'}"
    processes_n, count = 4, 150
    with racefree.open_store(url) as store:
        store.set("shared", 0)
    start = SPAWN.Barrier(processes_n)
    pipes = [SPAWN.Pipe(duplex=False) for _ in range(processes_n)]
    pool = [
        SPAWN.Process(target=workers.set_many, args=(url, i, count, start, pipes[i][1]))
        for i in range(processes_n)
    ]
    for process in pool:
        process.start()
    answers = [receive.recv() for receive, _ in pipes]
    for process in pool:
        process.join()
    assert [process.exitcode for process in pool] == [0] * processes_n
    every = sorted(v for versions, _ in answers for v in versions)
    assert every == list(range(2, 2 + processes_n * count))  # each version returned once
    for versions, _ in answers:
        assert versions == sorted(versions)  # one process's writes in its own order
    with racefree.open_store(url) as store:
        value, version = store.get_versioned("shared")
    assert version == 1 + processes_n * count
    last = next(i for i, (versions, _) in enumerate(answers) if versions[-1] == version)
    assert value in ([last, count - 1], {"w": last, "n": count - 1})
