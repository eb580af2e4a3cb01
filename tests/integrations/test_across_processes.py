"""The fixes across real processes: two workers on one SQLite file or one Redis.

Each worker (``process_worker.py``) loads the shared session, waits until
both have loaded it, then saves: the interleaving that loses a turn, forced
by a barrier on the store's state, every time.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import racefree

ROOT = Path(__file__).resolve().parents[2]


def run_workers(framework: str, url: str, texts: tuple[str, str], *extra: str) -> list[int]:
    """Start one worker per text at once; return each one's count of refused saves."""
    env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integrations.process_worker", framework, url, t, *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for t in texts
    ]
    refused = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        refused.append(json.loads(out.strip().splitlines()[-1])["refused"])
    return refused


def test_langgraph_one_run_is_refused_and_its_retry_keeps_both_turns(shared_url: str) -> None:
    pytest.importorskip("langgraph")
    from racefree.integrations.langgraph import StoreCheckpointer

    refused = run_workers("langgraph", shared_url, ("hi", "bye"), "refuse")
    assert sorted(refused) == [0, 1]
    reader = StoreCheckpointer(shared_url)
    latest = reader.get_tuple({"configurable": {"thread_id": "ann"}})
    reader.close()
    assert latest is not None
    messages = latest.checkpoint["channel_values"]["messages"]
    assert sorted(messages) == ["answer to bye", "answer to hi", "bye", "hi"]


def test_langgraph_runs_of_two_processes_take_the_thread_in_turn(shared_url: str) -> None:
    pytest.importorskip("langgraph")
    from racefree.integrations.langgraph import StoreCheckpointer

    # Per-step saves (LangGraph's default), one run per thread_id at a time: the second
    # process's run waits for the first's lease, so nothing is refused or asked twice.
    assert run_workers("langgraph", shared_url, ("hi", "bye"), "lease") == [0, 0]
    reader = StoreCheckpointer(shared_url)
    latest = reader.get_tuple({"configurable": {"thread_id": "ann"}})
    overlap = reader.store.get("overlap", 0)
    reader.close()
    assert latest is not None
    messages = latest.checkpoint["channel_values"]["messages"]
    assert sorted(messages) == ["answer to bye", "answer to hi", "bye", "hi"]
    assert messages[1] == f"answer to {messages[0]}"  # each answer follows its question
    assert overlap == 0  # never were both runs inside the graph at once


def test_adk_both_processes_items_are_merged(shared_url: str) -> None:
    pytest.importorskip("google.adk")
    from racefree.integrations.adk import StoreSessionService

    async def create() -> None:
        service = StoreSessionService(shared_url)
        await service.create_session(
            app_name="shop", user_id="ann", session_id="s1", state={"cart": [], "count": 0}
        )
        await service.aclose()

    async def read() -> dict[str, Any]:
        service = StoreSessionService(shared_url)
        session = await service.get_session(app_name="shop", user_id="ann", session_id="s1")
        await service.aclose()
        assert session is not None
        return dict(session.state)

    asyncio.run(create())
    assert run_workers("adk", shared_url, ("milk", "eggs")) == [0, 0]
    state = asyncio.run(read())
    assert sorted(state["cart"]) == ["eggs", "milk"] and state["count"] == 2


def turns(items: list[Any]) -> list[tuple[str, str]]:
    return [
        ("user", i["content"])
        if i.get("role") == "user"
        else ("assistant", i["content"][0]["text"])
        for i in items
    ]


def test_openai_agents_sqlite_session_interleaves_and_store_session_does_not(
    shared_url: str, tmp_path: Path
) -> None:
    agents = pytest.importorskip("agents")
    from racefree.integrations.openai_agents import StoreSession

    sdk_file = str(tmp_path / "sdk-sessions.db")
    run_workers("openai-agents", shared_url, ("hi", "bye"), sdk_file)
    seen = turns(asyncio.run(agents.SQLiteSession("table", sdk_file).get_items()))
    assert [role for role, _ in seen] == ["user", "user", "assistant", "assistant"]

    with racefree.open_store(shared_url) as store:
        store.set("arrived", 0)  # the barrier again, for the fix
    run_workers("openai-agents", shared_url, ("hi", "bye"))

    async def read() -> list[Any]:
        session = StoreSession("table", shared_url)
        items: list[Any] = await session.get_items()
        await session.aclose()
        return items

    fixed = turns(asyncio.run(read()))
    assert len(fixed) == 4
    for (role, question), (other, answer) in zip(fixed[::2], fixed[1::2], strict=True):
        assert (role, other, answer) == ("user", "assistant", f"answer to {question}")
