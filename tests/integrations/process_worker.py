"""One run of a framework app in its own process, for the cross-process tests.

``python -m tests.integrations.process_worker FRAMEWORK URL TEXT``: the run
loads the shared session, waits until every worker has loaded it (a counter
in the store: a barrier on state, not on time), then saves. It prints one
JSON line: how many of its saves were refused.
"""

from __future__ import annotations

import asyncio
import json
import operator
import sys
import time
from typing import Annotated, Any, TypedDict

import racefree

WORKERS = 2


def wait_for_everyone(url: str) -> None:
    """Count this worker in, then wait until every worker has counted itself in."""
    store = racefree.open_store(url)
    store.increment("arrived")
    deadline = time.monotonic() + 60
    while store.get("arrived", 0) < WORKERS:
        if time.monotonic() > deadline:
            raise SystemExit("the other worker never arrived")
        time.sleep(0.01)
    store.close()


class Chat(TypedDict):
    messages: Annotated[list[str], operator.add]


def langgraph(url: str, text: str, mode: str = "refuse") -> int:
    """``refuse``: both load before either saves, the stale one is refused and retried.

    ``lease``: LangGraph's default durability (a save per step) and one run per
    thread_id at a time; the node counts the runs inside it at once (``overlap``).
    """
    from langgraph.graph import END, START, StateGraph

    from racefree.errors import ConflictError
    from racefree.integrations.langgraph import StoreCheckpointer

    def chatbot(state: Chat) -> dict[str, list[str]]:
        if mode == "refuse":
            wait_for_everyone(url)  # both runs have loaded the thread before either saves
        else:
            store = racefree.open_store(url)
            if store.increment("inside") > 1:
                store.increment("overlap")
            store.increment("arrived")
            deadline = time.monotonic() + 2  # the other worker tries to get in meanwhile
            while store.get("arrived", 0) < WORKERS and time.monotonic() < deadline:
                time.sleep(0.01)
            store.increment("inside", -1)
            store.close()
        return {"messages": [f"answer to {state['messages'][-1]}"]}

    builder = StateGraph(Chat)
    builder.add_node("chatbot", chatbot)
    builder.add_edge(START, "chatbot")
    builder.add_edge("chatbot", END)
    checkpointer = StoreCheckpointer(url, one_run_per_thread=mode == "lease")
    graph = builder.compile(checkpointer=checkpointer)
    config: Any = {"configurable": {"thread_id": "ann"}}
    refused = 0
    while True:
        try:
            if mode == "refuse":
                graph.invoke({"messages": [text]}, config, durability="exit")
            else:
                graph.invoke({"messages": [text]}, config)
            break
        except ConflictError:
            refused += 1
    checkpointer.close()
    return refused


def adk(url: str, text: str) -> int:
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions

    from racefree.integrations.adk import StoreSessionService

    async def run() -> None:
        service = StoreSessionService(url, reducers={"cart": "append", "count": "add"})
        session = await service.get_session(app_name="shop", user_id="ann", session_id="s1")
        assert session is not None
        wait_for_everyone(url)
        event = Event(author="shopper", invocation_id=f"e-{text}")
        delta = {"cart": [*session.state["cart"], text], "count": session.state["count"] + 1}
        event.actions = EventActions(state_delta=delta)
        await service.append_event(session, event)
        await service.aclose()

    asyncio.run(run())
    return 0


def openai_agents(url: str, text: str, sqlite_file: str | None = None) -> int:
    from agents import Agent, Runner, SQLiteSession

    from racefree.integrations.openai_agents import StoreSession, scripted_model

    def reply(question: str) -> str:
        wait_for_everyone(url)  # both runs are inside their turn before either answers
        return f"answer to {question}"

    async def run() -> None:
        # The SDK's own SQLiteSession on a file (the bug), or the fix on the store.
        session: Any = (
            SQLiteSession("table", sqlite_file) if sqlite_file else StoreSession("table", url)
        )
        agent = Agent(name="Concierge", model=scripted_model(reply, latency=0))
        await Runner.run(agent, text, session=session)
        if not sqlite_file:
            await session.aclose()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    framework, url, text, *extra = sys.argv[1:]
    runs = {"langgraph": langgraph, "adk": adk, "openai-agents": openai_agents}
    print(json.dumps({"refused": runs[framework](url, text, *extra)}))
