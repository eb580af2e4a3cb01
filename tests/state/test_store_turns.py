"""Conversation turns: a multi-message turn lands contiguously, never interleaved."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import racefree
from racefree import UsageError


def test_append_turn_adds_all_messages_and_returns_the_first_index(any_store: Any) -> None:
    any_store.append("history", {"role": "system", "content": "be brief"})
    turn = [
        {"role": "assistant", "tool_call": {"name": "search", "id": "c1"}},
        {"role": "tool", "tool_call_id": "c1", "content": "found"},
    ]
    assert any_store.append_turn("history", turn) == 1
    assert any_store.get("history")[1:] == turn
    assert any_store.version("history") == 2  # one write


@pytest.mark.parametrize("messages", [[], ["text"], "text", [{"role": "user"}, 3]])
def test_a_turn_must_be_a_non_empty_list_of_message_dicts(any_store: Any, messages: Any) -> None:
    with pytest.raises(UsageError, match=r"^append_turn\(\) takes a"):
        any_store.append_turn("history", messages)
    assert any_store.versions() == {}


def turn_of(agent: str, n: int) -> list[dict[str, Any]]:
    return [
        {"agent": agent, "turn": n, "part": 0, "role": "user"},
        {"agent": agent, "turn": n, "part": 1, "role": "assistant"},
        {"agent": agent, "turn": n, "part": 2, "role": "tool"},
    ]


def assert_turns_contiguous(history: list[dict[str, Any]], agents: int, turns: int) -> None:
    assert len(history) == agents * turns * 3
    for start in range(0, len(history), 3):
        block = history[start : start + 3]
        assert [m["part"] for m in block] == [0, 1, 2]
        assert len({(m["agent"], m["turn"]) for m in block}) == 1
    for name in {m["agent"] for m in history}:
        mine = [m["turn"] for m in history if m["agent"] == name and m["part"] == 0]
        assert mine == list(range(turns))


def test_turns_of_concurrent_threads_never_interleave(store_url: str) -> None:
    store = racefree.open_store(store_url)
    start = threading.Barrier(8)

    def talk(name: str) -> None:
        start.wait()
        for n in range(300):
            store.append_turn("history", turn_of(name, n))

    threads = [threading.Thread(target=talk, args=(f"agent-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_turns_contiguous(store.get("history"), agents=8, turns=300)


def test_turns_of_concurrent_tasks_never_interleave(store_url: str) -> None:
    async def main() -> list[Any]:
        store = racefree.open_async_store(store_url)

        async def talk(name: str) -> None:
            for n in range(50):
                await store.append_turn("history", turn_of(name, n))
                await asyncio.sleep(0)  # let the other agents run

        await asyncio.gather(*(talk(f"agent-{i}") for i in range(20)))
        history: list[Any] = await store.get("history")
        await store.aclose()
        return history

    assert_turns_contiguous(asyncio.run(main()), agents=20, turns=50)
