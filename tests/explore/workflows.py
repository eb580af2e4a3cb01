"""Small workflows with planted races, shared by the explorer's tests.

Each returns its final state; the invariant next to it says what a correct
run keeps. Accesses are announced with ``hooks.point`` as the store will do.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from racefree.explore import hooks


def run_threads(*bodies: Any) -> None:
    threads = [threading.Thread(target=b, name=f"agent-{i}") for i, b in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# depth 1: a usually-slow agent answering first ------------------------------------------


async def slow_agent_first() -> dict[str, Any]:
    """The summary must come after the research; it does only when the model is slow."""
    state: dict[str, Any] = {"log": []}

    async def researcher() -> None:
        await asyncio.sleep(0.5)  # a quick tool call
        hooks.point("append", "log")
        state["log"].append("research")

    async def summarizer() -> None:
        await asyncio.sleep(3.0)  # a slow model call: it "always" comes second
        hooks.point("append", "log")
        state["log"].append("summary")

    await asyncio.gather(researcher(), summarizer())
    return state


def research_before_summary(state: dict[str, Any]) -> bool:
    return state["log"] == ["research", "summary"]


# depth 2: two agents claiming one task ---------------------------------------------------


def double_claim() -> dict[str, Any]:
    board: dict[str, Any] = {"owner": None, "runs": []}

    def agent(name: str) -> None:
        hooks.point("read", "owner")
        owner = board["owner"]
        if owner is None:
            hooks.point("write", "owner")
            board["owner"] = name
            hooks.point("append", "runs")
            board["runs"].append(name)

    run_threads(lambda: agent("A"), lambda: agent("B"))
    return board


def claimed_once(board: dict[str, Any]) -> bool:
    return len(board["runs"]) == 1


# depth 2: interleaved turns ---------------------------------------------------------------


def interleaved_turns() -> list[str]:
    conversation: list[str] = []

    def agent(name: str) -> None:
        hooks.point("append", "conversation")
        conversation.append(f"{name}:user")
        time.sleep(1.0)  # the model call
        hooks.point("append", "conversation")
        conversation.append(f"{name}:assistant")

    run_threads(lambda: agent("A"), lambda: agent("B"))
    return conversation


def turns_intact(conversation: list[str]) -> bool:
    return all(
        conversation[i].split(":")[0] == conversation[i + 1].split(":")[0]
        for i in range(0, len(conversation), 2)
    )


# depth 2: a lost update hidden among unrelated agents ----------------------------------------


def hidden_lost_update(noise: int = 3) -> dict[str, int]:
    state = {"counter": 0, **{f"own{i}": 0 for i in range(noise)}}

    def counter_agent() -> None:
        hooks.point("read", "counter")
        seen = state["counter"]
        hooks.point("call")  # the model call between read and write
        hooks.point("write", "counter")
        state["counter"] = seen + 1

    def unrelated(i: int) -> Any:
        def body() -> None:
            for _ in range(2):
                hooks.point("read", f"own{i}")
                value = state[f"own{i}"]
                hooks.point("write", f"own{i}")
                state[f"own{i}"] = value + 1

        return body

    run_threads(counter_agent, *(unrelated(i) for i in range(noise)), counter_agent)
    return state


def counted_twice(state: dict[str, int]) -> bool:
    return state["counter"] == 2


# depth 3: a plan replaced between two reads -------------------------------------------------


def plan_replaced() -> dict[str, Any]:
    """The executor reads the plan twice; the planner may replace it in between."""
    state: dict[str, Any] = {"plan": "v1", "seen": []}

    def executor() -> None:
        hooks.point("read", "plan")
        first = state["plan"]
        hooks.point("read", "plan")
        second = state["plan"]
        state["seen"] = [first, second]

    def planner() -> None:  # replaces the plan once the review asks for it
        hooks.point("read", "review")
        if state.get("review") == "rework":
            hooks.point("write", "plan")
            state["plan"] = "v2"

    def reviewer() -> None:
        hooks.point("write", "review")
        state["review"] = "rework"

    run_threads(executor, reviewer, planner)
    return state


def plan_consistent(state: dict[str, Any]) -> bool:
    return len(set(state["seen"])) == 1


# correct: asyncio read-modify-write with no await inside --------------------------------------


async def no_await_between() -> dict[str, int]:
    state = {"completed": 0}

    async def agent(delay: float) -> None:
        await asyncio.sleep(delay)
        hooks.point("read", "completed")
        value = state["completed"]
        hooks.point("write", "completed")
        state["completed"] = value + 1

    await asyncio.gather(*(agent(d) for d in (1.0, 2.0, 3.0)))
    return state


def all_completed(state: dict[str, int]) -> bool:
    return state["completed"] == 3


# a first run that sets up what later runs reuse -------------------------------------------

#: What the first run in a process builds and later runs reuse (a client, as an SDK keeps).
CLIENTS: dict[str, object] = {}


async def warms_a_client_first() -> list[str]:
    """The first run in a process makes a client (one more await), later runs reuse it;
    then a researcher and a summarizer append to one log (two orders)."""
    if "model" not in CLIENTS:
        await asyncio.sleep(0.01)  # connecting
        CLIENTS["model"] = object()
    log: list[str] = []

    async def agent(name: str, latency: float) -> None:
        await asyncio.sleep(latency)
        hooks.point("append", "log")
        log.append(name)

    await asyncio.gather(agent("research", 1.0), agent("summary", 1.5))
    return log
