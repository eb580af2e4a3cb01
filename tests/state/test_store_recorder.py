"""The history recorder: every operation as an event, in effect order; off by default."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import racefree
from racefree import History, agent


def rows(history: History) -> list[tuple[Any, ...]]:
    return [
        (e.seq, e.agent, e.op, e.key, e.version_read, e.version_written, e.value) for e in history
    ]


def test_each_operation_records_agent_op_key_versions_and_value(store_url: str) -> None:
    history = History()
    store = racefree.open_store(store_url, history=history, reducers={"log": "append"})
    with agent("Researcher"):
        store.set("plan", {"steps": 1})
        store.append("log", "found")
        store.get("plan")
    with agent("Writer"):
        store.get_versioned("plan")
        store.apply({"log": ["wrote"], "plan": "done"})
        store.increment("count")
        store.claim("lock", "Writer")
        store.claim("lock", "Other")
    assert rows(history) == [
        (0, "Researcher", "set", "plan", 0, 1, {"steps": 1}),
        (1, "Researcher", "append", "log", 0, 1, "found"),
        (2, "Researcher", "get", "plan", 1, None, {"steps": 1}),
        (3, "Writer", "get", "plan", 1, None, {"steps": 1}),
        (4, "Writer", "apply", "log", 1, 2, ["wrote"]),
        (5, "Writer", "apply", "plan", 1, 2, "done"),
        (6, "Writer", "increment", "count", 0, 1, 1),
        (7, "Writer", "claim", "lock", 0, 1, "Writer"),
        (8, "Writer", "claim", "lock", 1, None, "Writer"),
    ]


def test_snapshot_versions_update_and_commit_are_recorded(store_url: str) -> None:
    history = History()
    store = racefree.open_store(store_url, history=history)
    with agent("A"):
        store.set("a", 1)
        store.update("a", lambda v: v + 1)
        store.snapshot()
        store.versions()
        with store.transaction() as tx:
            tx.get("a")
            tx.append("b", "x")
    assert rows(history)[1:] == [
        (1, "A", "update", "a", 1, 2, 2),
        (2, "A", "snapshot", "a", 2, None, 2),
        (3, "A", "versions", "a", 2, None, None),
        (4, "A", "get", "a", 2, None, 2),
        (5, "A", "commit", "a", 2, None, 2),
        (6, "A", "commit", "b", 0, 1, ["x"]),
    ]


def test_apply_and_commit_events_say_whether_they_extended_or_replaced(store_url: str) -> None:
    history = History()
    store = racefree.open_store(store_url, history=history, reducers={"log": "append"})
    with agent("A"):
        store.append("log", "zero")
        store.apply({"log": ["one"], "plan": "draft"})
        with store.transaction() as tx:
            tx.append("log", "two")
            tx.set("plan", "final")
        store.append("log", "three")
    effects = [(e.op, e.key, e.meta.get("effect")) for e in history]
    assert effects == [
        ("append", "log", None),
        ("apply", "log", "extend"),
        ("apply", "plan", "put"),
        ("commit", "log", "extend"),
        ("commit", "plan", "put"),
        ("append", "log", None),
    ]


def test_recorded_values_are_copies(store_url: str) -> None:
    history = History()
    store = racefree.open_store(store_url, history=history)
    store.set("a", [1])
    store.append("a", 2)
    assert history.events[0].value == [1]


def test_an_operation_that_fails_records_nothing(store_url: str) -> None:
    history = History()
    store = racefree.open_store(store_url, history=history)
    store.set("a", 1)
    with pytest.raises(racefree.ConflictError):
        store.compare_and_set("a", 2, expected_version=0)
    assert [e.op for e in history] == ["set"]


def test_seq_order_is_effect_order_under_concurrency(store_url: str) -> None:
    history = History()
    store = racefree.open_store(store_url, history=history)
    start = threading.Barrier(4)

    def work(name: str) -> None:
        with agent(name):
            start.wait()
            for _ in range(500):
                store.append("log", name)

    threads = [threading.Thread(target=work, args=(f"A{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = history.events
    assert [e.version_written for e in events] == list(range(1, 2001))
    assert [e.agent for e in events] == store.get("log")


def test_asyncio_tasks_are_recorded_under_their_task_names(store_url: str) -> None:
    history = History()

    async def main() -> None:
        store = racefree.open_async_store(store_url, history=history)

        async def step(n: int) -> None:
            await store.append("log", n)

        await asyncio.gather(*(asyncio.create_task(step(n), name=f"agent-{n}") for n in range(3)))
        await store.aclose()

    asyncio.run(main())
    assert sorted(e.agent for e in history) == ["agent-0", "agent-1", "agent-2"]


def test_the_recorder_is_off_by_default_and_records_nothing(
    monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("History.record was called with the recorder off")

    monkeypatch.setattr(History, "record", refuse)
    store = racefree.open_store(store_url, reducers={"log": "append"})
    assert store.history is None
    store.set("a", 1)
    store.append("log", 1)
    store.apply({"log": [2]})
    store.update("a", lambda v: v + 1)
    store.snapshot()
    with store.transaction() as tx:
        tx.increment("a")
    assert store.get("a") == 3
