"""The memory backend's fast path behaves exactly like the general path.

Without a history, an exploration or an idempotency key, the memory store
sends ``get``, ``append``, ``extend`` and a transaction's reads and commit
straight to the backend (``FastPath``) instead of building and dispatching
an op. These tests run the same seeded sequences of operations through a
store that uses it and one that does not, and compare every result, every
refusal (type and message), and the stored values, versions and writers.
They also check that the fast path steps aside whenever something watches:
a history records every operation, and an exploration's scheduler sees
every access.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import racefree
from racefree import hooks
from racefree.history import History
from racefree.state._core import KeyState
from tests.state.conftest import AsyncFacade

KEYS = ("history", "profile", "counter", "owner", "fresh", "log")
REDUCERS = {"log": "append"}


def _deep(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


class Tagged(str):
    """A str subclass: accepted as a value (stored as a plain str)."""


# Values an op may be given: storable ones and every kind the store refuses.
VALUES: list[Callable[[], Any]] = [
    lambda: {"role": "assistant", "content": "The answer is 42.", "tokens": 7},
    lambda: {"role": "user", "content": "hi", "meta": {"ids": [1, 2, (3, 4)], "ok": True}},
    lambda: [1, 2.5, None, "x", {"k": [False]}],
    lambda: ("a", "tuple"),
    lambda: "text",
    lambda: 3,
    lambda: 2.5,
    lambda: None,
    lambda: True,
    lambda: Tagged("tagged"),
    lambda: {"nested": {"deeper": {"deepest": [1, [2, [3]]]}}},
    lambda: _deep(99),
    lambda: _deep(101),  # too deep
    lambda: {"when": math.nan},  # not finite
    lambda: {"n": 10**5000},  # too many digits
    lambda: {1: "int key"},
    lambda: {Tagged("k"): "str-subclass key"},
    lambda: {"s": {1, 2}},  # a set
    lambda: object(),
]


def _outcome(op: Callable[[Any], Any], store: Any) -> tuple[str, Any]:
    try:
        return "ok", op(store)
    except racefree.RacefreeError as exc:
        return type(exc).__name__, str(exc)


def _transaction_body(rng: random.Random) -> Callable[[Any], Any]:
    steps = [
        (rng.choice(("get", "get_versioned", "set", "append", "extend", "increment")), key, value)
        for key, value in ((rng.choice(KEYS), rng.choice(VALUES)) for _ in range(rng.randint(1, 4)))
    ]

    def writes(tx: Any, name: str, key: str, value: Callable[[], Any]) -> None:
        if name == "increment":
            tx.increment(key, 2)
        elif name == "extend":
            tx.extend(key, [value(), value()])
        else:
            getattr(tx, name)(key, value())

    def body(tx: Any) -> list[Any]:
        seen = []
        for name, key, value in steps:
            if name in ("get", "get_versioned"):
                seen.append(getattr(tx, name)(key))
            else:
                writes(tx, name, key, value)
        return seen

    async def async_body(tx: Any) -> list[Any]:
        seen = []
        for name, key, value in steps:
            if name in ("get", "get_versioned"):
                seen.append(await getattr(tx, name)(key))
            else:
                writes(tx, name, key, value)
        return seen

    def run(store: Any) -> Any:
        if isinstance(store, AsyncFacade):
            return store._loop.run_until_complete(store._store.transaction(async_body))
        return store.transaction(body)

    return run


def _random_ops(seed: int, count: int) -> list[Callable[[Any], Any]]:
    """``count`` operations, each a function of a store, chosen with ``seed``."""
    rng = random.Random(seed)
    ops: list[Callable[[Any], Any]] = []
    for _ in range(count):
        key = rng.choice(KEYS)
        value = rng.choice(VALUES)
        kind = rng.randrange(12)
        if kind == 0:
            ops.append(lambda s, k=key, v=value: s.append(k, v()))
        elif kind == 1:
            ops.append(lambda s, k=key, v=value: s.extend(k, [v(), v()]))
        elif kind == 2:
            ops.append(lambda s, k=key, v=value: s.extend(k, v()))  # often not a list
        elif kind == 3:
            ops.append(lambda s, k=key: s.get(k, "default"))
        elif kind == 4:
            ops.append(lambda s, k=key: s.get_versioned(k))
        elif kind == 5:
            ops.append(lambda s, k=key, v=value: s.set(k, v()))
        elif kind == 6:
            ops.append(lambda s, k=key: s.increment(k, 1))
        elif kind == 7:
            ops.append(_transaction_body(rng))
        elif kind == 8:
            ops.append(lambda s, k=key, v=value: s.apply({k: [v()] if k == "log" else v()}))
        elif kind == 9:
            ops.append(lambda s, k=key: s.update(k, lambda old: [old, old]))
        elif kind == 10:
            ops.append(lambda s, k=key: s.claim(k, "agent-a"))
        else:
            retry = rng.randrange(3)  # the same idempotency key now and then: a retry
            ops.append(lambda s, k=key, i=retry: s.append(k, {"i": i}, idempotency_key=f"i{i}"))
    return ops


def _cells(store: Any) -> dict[str, tuple[Any, int, str | None]]:
    inner = store._store if isinstance(store, AsyncFacade) else store
    backend = inner._backend
    cells: dict[str, KeyState] = getattr(backend, "_sync", backend)._cells
    return {key: (state.value, state.version, state.writer) for key, state in cells.items()}


def _open(flavour: str, *, fast: bool) -> Any:
    if flavour == "sync":
        store: Any = racefree.open_store(reducers=REDUCERS)
        inner = store
    else:
        inner = racefree.open_async_store(reducers=REDUCERS)
        store = AsyncFacade(inner)
    assert (inner._fast is not None) is True  # a memory store without history has one
    if not fast:
        inner._fast = None  # the general path: every op built and dispatched
    return store


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


@pytest.mark.parametrize("seed", range(12))
def test_a_random_sequence_gives_the_same_results_and_state_on_both_paths(
    seed: int, flavour: str
) -> None:
    fast, general = _open(flavour, fast=True), _open(flavour, fast=False)
    try:
        for number, op in enumerate(_random_ops(seed, 120)):
            with racefree.agent(f"agent-{number % 3}"):
                got, expected = _outcome(op, fast), _outcome(op, general)
            assert got == expected, f"seed {seed}, op {number}"
            assert _cells(fast) == _cells(general), f"seed {seed}, op {number}"
        assert fast.snapshot() == general.snapshot()
    finally:
        fast.close()
        general.close()


def test_the_sequences_exercise_the_cases_the_fast_path_hands_on() -> None:
    # The comparison above is only worth something if both paths are really
    # taken: appends to lists, to new keys and to keys of another type,
    # refused values, and transactions that read and write.
    outcomes = []
    store = _open("sync", fast=True)
    for seed in range(12):
        for op in _random_ops(seed, 120):
            outcomes.append(_outcome(op, store))
    kinds = {kind for kind, _ in outcomes}
    assert {"ok", "NotSerializableError", "WrongTypeError", "UsageError"} <= kinds
    assert any("has the key 1" in str(text) for _, text in outcomes)
    assert any("nested more than 100 levels" in str(text) for _, text in outcomes)


def test_a_value_appended_or_read_on_the_fast_path_is_the_stores_own_copy() -> None:
    store = racefree.open_store()
    message = {"role": "user", "content": "hi", "meta": {"ids": [1]}}
    store.append("history", message)
    store.append("history", message)  # the second goes through the fast path
    message["meta"]["ids"].append(2)
    read = store.get("history")
    read[1]["meta"]["ids"].append(3)
    read.append("not stored")
    assert store.get("history") == [{"role": "user", "content": "hi", "meta": {"ids": [1]}}] * 2

    def rewrite(tx: racefree.Transaction) -> None:
        history = tx.get("history")
        history[0]["content"] = "changed in a copy"

    store.transaction(rewrite)
    assert store.get_versioned("history") == ([message | {"meta": {"ids": [1]}}] * 2, 2)


def test_a_store_with_a_history_records_every_operation_and_has_no_fast_path() -> None:
    history = History()
    store = racefree.open_store(history=history)
    assert store._fast is None
    with racefree.agent("writer"):
        store.append("history", {"n": 1})
        store.append("history", {"n": 2})
        store.get("history")

        def turn(tx: racefree.Transaction) -> None:
            tx.get("profile")
            tx.append("history", {"n": 3})

        store.transaction(turn)
    assert [(e.op, e.key, e.agent, e.version_read, e.version_written) for e in history.events] == [
        ("append", "history", "writer", 0, 1),
        ("append", "history", "writer", 1, 2),
        ("get", "history", "writer", 2, None),
        ("get", "profile", "writer", 0, None),
        ("commit", "history", "writer", 2, 3),
        ("commit", "profile", "writer", 0, None),
    ]


class RecordingScheduler:
    """Stands in for the explorer: records each scheduling point and note."""

    def __init__(self) -> None:
        self.points: list[tuple[str, str | None]] = []

    def point(self, kind: str, key: str | None) -> None:
        self.points.append((kind, key))

    def note(self, kind: str, key: str | None, event: Any = None) -> None:
        self.points.append((f"note {kind}", key))


def _read_then_append(store: Any) -> None:
    """A transaction that reads ``profile`` and appends to ``history``, on either flavour."""
    if isinstance(store, AsyncFacade):

        async def async_turn(tx: racefree.AsyncTransaction) -> None:
            await tx.get("profile")
            tx.append("history", {"n": 3})

        store._loop.run_until_complete(store._store.transaction(async_turn))
    else:

        def turn(tx: racefree.Transaction) -> None:
            tx.get("profile")
            tx.append("history", {"n": 3})

        store.transaction(turn)


def test_while_an_exploration_runs_every_access_is_announced(
    monkeypatch: pytest.MonkeyPatch, flavour: str, request: pytest.FixtureRequest
) -> None:
    store = _open(flavour, fast=True)
    request.addfinalizer(store.close)
    store.append("history", {"n": 0})  # before the exploration: not announced
    scheduler = RecordingScheduler()
    monkeypatch.setattr(hooks, "_scheduler", scheduler)
    store.append("history", {"n": 1})
    store.extend("history", [{"n": 2}])
    store.get("history")
    store.get_versioned("profile")
    _read_then_append(store)
    assert scheduler.points == [
        ("append", "history"),
        ("extend", "history"),
        ("get", "history"),
        ("get", "profile"),
        ("get", "profile"),
        ("commit", "history"),
        ("note commit", "profile"),
    ]


def test_a_store_call_from_inside_an_update_function_is_refused_on_the_fast_path() -> None:
    store = racefree.open_store()
    store.append("history", 1)
    message = (
        r"^The store was called \(append\) from inside a function the store is running "
        r"\(an update function or a custom reducer\)\. Such a function must only compute "
        r"the new value from the one it is given; do other store calls before or after\.$"
    )
    with pytest.raises(racefree.UsageError, match=message):
        store.update("counter", lambda value: store.append("history", 2))
    with pytest.raises(racefree.UsageError, match=message.replace("append", "get")):
        store.update("counter", lambda value: store.get("history"))
    assert store.get_versioned("history") == ([1], 1)
    assert store.get_versioned("counter") == (None, 0)


def test_the_async_store_takes_the_fast_path_without_blocking_its_loop() -> None:
    async def main() -> list[Any]:
        store = racefree.open_async_store()
        assert store._fast is not None
        await asyncio.gather(*(store.append("history", n) for n in range(50)))
        return list(await store.get("history"))

    assert sorted(asyncio.run(main())) == list(range(50))
