"""The store and tracked objects are scheduling points: the explorer can switch
agents between two of their accesses, with no hook in the user's code."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

import racefree
from racefree.explore import explore


def _two_threads(body: Any) -> None:
    threads = [threading.Thread(target=body, args=(n,), name=n) for n in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def store_get_then_set() -> dict[str, Any]:
    store = racefree.open_store()

    def agent(name: str) -> None:
        count = store.get("count", 0)  # no sleep, no model call: only the store in between
        store.set("count", count + 1)

    _two_threads(agent)
    return {"count": store.get("count")}


def store_increment() -> dict[str, Any]:
    store = racefree.open_store()
    _two_threads(lambda name: store.increment("count"))
    return {"count": store.get("count")}


def tracked_read_modify_write() -> dict[str, Any]:
    state = racefree.track({"count": 0})

    def agent(name: str) -> None:
        count = state["count"]
        state["count"] = count + 1

    _two_threads(agent)
    return {"count": state["count"]}


def counted_twice(state: dict[str, Any]) -> bool:
    return bool(state["count"] == 2)


@pytest.mark.parametrize("workflow", [store_get_then_set, tracked_read_modify_write])
def test_a_lost_update_between_two_accesses_is_found(workflow: Any) -> None:
    result = explore(
        workflow, strategy="exhaustive", schedules=200, invariants=[counted_twice], save_dir=None
    )
    assert not result.ok
    assert result.failure is not None
    # The timeline names the shared key, which only the hooks tell the explorer.
    assert re.search(r"reads? count", result.report())


def test_an_atomic_store_operation_passes_every_ordering() -> None:
    result = explore(
        store_increment,
        strategy="exhaustive",
        schedules=200,
        invariants=[counted_twice],
        save_dir=None,
    )
    assert result.ok, "\n".join(result.summary())
    assert any("all" in line and "orderings explored" in line for line in result.summary())


def test_outside_an_exploration_the_hooks_change_nothing() -> None:
    assert store_increment() == {"count": 2}
    assert tracked_read_modify_write()["count"] in (1, 2)  # real threads: either can happen


def write_then_put_against_read_then_size() -> dict[str, Any]:
    """A writes x then puts on a queue; C reads x then looks at the queue's size."""
    import queue

    from racefree.explore import hooks

    shared: dict[str, Any] = {"x": 0}
    box: queue.Queue[int] = queue.Queue()
    seen: dict[str, Any] = {}

    def writer() -> None:
        hooks.point("write", "x")
        shared["x"] = 1
        box.put(1)

    def reader() -> None:
        hooks.point("read", "x")
        seen["pair"] = (shared["x"], box.qsize())

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


def test_a_queue_operation_is_still_a_scheduling_point() -> None:
    # Only a switch between the writer's write and its put lets the reader see x
    # written but the queue still empty.
    result = explore(
        write_then_put_against_read_then_size,
        strategy="exhaustive",
        schedules=500,
        invariants=[lambda seen: seen["pair"] != (1, 0)],
        save_dir=None,
    )
    assert not result.ok


FIRST_STORE_INSIDE = """
import sys
assert "racefree.state.backends.memory" not in sys.modules
from racefree.explore import explore
from tests.explore.test_shared_state_hooks import counted_twice, store_increment

result = explore(store_increment, strategy="exhaustive", invariants=[counted_twice], save_dir=None)
print(result.visible_steps, result.distinct, result.ok)
"""


def test_a_store_first_imported_inside_an_exploration_is_explored_as_one_imported_before() -> None:
    # The module binds its lock factory at import; inside a run threading's is the
    # explorer's, and every store's lock would be a switch point of its own beside the
    # store's hooks, for the rest of the process (a LangGraph search went from 1,002
    # orderings to past 10,000).
    import subprocess
    import sys
    from pathlib import Path

    racefree.open_store()  # imported here, outside any exploration
    here = explore(
        store_increment, strategy="exhaustive", invariants=[counted_twice], save_dir=None
    )
    done = subprocess.run(
        [sys.executable, "-c", FIRST_STORE_INSIDE],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split("\n")[0] == f"{here.visible_steps} {here.distinct} {here.ok}"
