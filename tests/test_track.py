from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import MutableMapping, MutableSequence
from typing import Any

import pytest

from racefree import History, UsageError, agent, check, history_of, suspension, track


def _ops(history: History) -> list[tuple[str, str, str | None]]:
    return [(e.agent, e.op, e.key) for e in history.events]


def test_reads_and_writes_become_events_with_dotted_keys_and_the_agent() -> None:
    session: dict[str, Any] = {"metadata": {"completed": 0}, "history": []}
    shared = track(session, name="session")
    with agent("Analyzer"):
        done = shared["metadata"]["completed"]
        shared["metadata"]["completed"] = done + 1
        shared["history"].append("hi")
    history = history_of(shared)
    assert _ops(history) == [
        ("Analyzer", "read", "session.metadata.completed"),
        ("Analyzer", "write", "session.metadata.completed"),
        ("Analyzer", "append", "session.history"),
    ]
    read, write, append = history.events
    assert (read.value, read.version_read) == (0, 0)
    assert (write.value, write.version_read, write.version_written) == (1, 0, 1)
    assert append.value == "hi"
    assert session == {"metadata": {"completed": 1}, "history": ["hi"]}  # the original changed


def test_the_wrapper_behaves_like_the_original_for_normal_use() -> None:
    data: dict[str, Any] = {"a": 1, "items": [1, 2, {"x": 3}]}
    shared = track(data)
    assert isinstance(shared, MutableMapping)
    assert isinstance(shared["items"], MutableSequence)
    assert shared == data and shared["items"] == [1, 2, {"x": 3}]
    assert len(shared) == 2 and sorted(shared) == ["a", "items"] and "a" in shared
    assert dict(shared)["a"] == 1 and shared.get("missing", 5) == 5
    assert list(shared["items"])[:2] == [1, 2]
    assert shared["items"][2]["x"] == 3
    assert shared["items"][-1] == {"x": 3}
    assert copy.copy(shared["items"]) == [1, 2, {"x": 3}]
    assert type(copy.copy(shared)) is dict
    shared["items"] += [4]
    shared["items"].extend([5, 6])
    assert data["items"][3:] == [4, 5, 6]
    assert shared["items"].pop() == 6
    del shared["a"]
    assert data == {"items": [1, 2, {"x": 3}, 4, 5]}
    assert repr(shared) == repr(data)


def test_list_changes_are_atomic_ops_on_the_list_key() -> None:
    shared = track([], name="log")
    shared.append(1)
    shared.extend([2, 3])
    shared += [4]
    shared.insert(0, 0)
    shared.remove(4)
    shared.clear()
    ops = [(e.op, e.key, e.value) for e in history_of(shared).events]
    assert ops == [
        ("append", "log", 1),
        ("extend", "log", [2, 3]),
        ("extend", "log", [4]),
        ("insert", "log", 0),
        ("remove", "log", 4),
        ("write", "log", []),
    ]


def test_write_values_are_copies_not_live_references() -> None:
    shared = track({})
    mine = ["a"]
    shared["k"] = mine
    mine.append("b")
    assert history_of(shared).events[0].value == ["a"]


def test_the_agent_is_the_thread_or_task_name_without_an_explicit_one() -> None:
    shared = track({"n": 0})

    def work() -> None:
        shared["n"] = 1

    thread = threading.Thread(target=work, name="worker-7")
    thread.start()
    thread.join()

    async def task() -> None:
        shared["n"] = 2

    async def main() -> None:
        await asyncio.create_task(task(), name="planner")

    asyncio.run(main())
    assert [e.agent for e in history_of(shared).events] == ["worker-7", "planner"]


def test_a_read_modify_write_split_by_threads_is_found_by_the_checker() -> None:
    shared = track({"count": 0}, name="state")
    both_read = threading.Barrier(2)

    def increment(name: str) -> None:
        with agent(name):
            count = shared["count"]
            both_read.wait()
            if name == "B":  # A writes first, then B from its stale copy
                wrote.wait()
            shared["count"] = count + 1
            if name == "A":
                wrote.set()

    wrote = threading.Event()
    threads = [threading.Thread(target=increment, args=(n,)) for n in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [finding] = check(history_of(shared)).findings
    assert (finding.kind, finding.agents, finding.keys) == (
        "lost-update",
        ("B", "A"),
        ("state.count",),
    )


def test_suspension_marks_a_race_window() -> None:
    shared = track({"plan": "draft"})
    with agent("A"):
        plan = shared["plan"]
        suspension(shared, "llm")
    with agent("B"):
        suspension(shared, "llm")
    with agent("A"):
        shared["plan"] = plan + " v2"
    [finding] = check(history_of(shared)).findings
    assert finding.kind == "race-window"
    assert history_of(shared).events[1].op == "call"
    assert history_of(shared).events[1].value == "llm"


def test_track_refuses_what_it_cannot_wrap() -> None:
    with pytest.raises(UsageError, match=r"^track\(\) wraps a dict or a list, not str\. "):
        track("text")
    with pytest.raises(UsageError, match=r"^history_of\(\) takes an object returned by track"):
        history_of({})


def test_tracking_twice_gives_the_same_wrapper_and_history() -> None:
    history = History()
    shared = track({}, history=history)
    assert track(shared) is shared
    assert history_of(shared) is history
