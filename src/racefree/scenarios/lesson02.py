"""Lesson 02: the lesson-01 agents on asyncio.

asyncio runs one task at a time and switches only where a task awaits. That
removes races between two lines with no ``await`` between them, and keeps
every race that spans an ``await``: a model call is an ``await``, so the
read-call-write agent of lesson 01 loses work here exactly as it did in
threads. The fixes: await the model first and then read-modify-write with no
``await`` in between (no lock needed); hold an ``asyncio.Lock`` from the read
to the write when the update must span an ``await`` (correct, and the agents
take turns); or hand deltas to a store whose operations are atomic. A
``Semaphore`` limits how many model calls run at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from racefree.agent import agent
from racefree.history import History
from racefree.scenarios.lesson01 import (
    HISTORY,
    Session,
    add_reply,
    flow_result,
    new_seed,
    new_session,
    read_session,
    write_back,
)
from racefree.scenarios.llm import SimulatedLLM
from racefree.scenarios.result import ScenarioResult
from racefree.state import AsyncStore, open_async_store

__all__ = [
    "FlowRunner",
    "await_first_agent",
    "locked_async_agent",
    "no_await_between",
    "rate_limited_agent",
    "run_gather_await_first",
    "run_gather_unsafe",
    "run_gather_with_lock",
    "run_gather_with_store",
    "run_rate_limited",
    "run_sequential_awaits",
    "session_from_store",
    "store_async_agent",
    "unsafe_async_agent",
]


FlowRunner = Callable[..., ScenarioResult]
"""A lesson run: ``run(names, *, seed=None, time_scale=1.0) -> ScenarioResult``."""


# --- The agents -------------------------------------------------------------


async def unsafe_async_agent(
    name: str, session: Session, llm: SimulatedLLM, history: History
) -> None:
    """Lesson 01's bug with ``await``: read, await the model, write back the copy."""
    session["agent_status"][name] = "running"
    seen = read_session(name, session, history)  # 1. read: take copies
    history.record("call", agent=name)
    reply = await llm.acall(name)  # 2. the await: every other task runs here
    write_back(name, session, seen, reply, history)  # 3. write: our copy replaces theirs


async def await_first_agent(
    name: str, session: Session, llm: SimulatedLLM, history: History
) -> None:
    """The asyncio fix without a lock: await the model first, then update with no await."""
    history.record("call", agent=name)
    reply = await llm.acall(name)
    # From here to the end there is no await: no other task can run in between.
    add_reply(name, session, reply, history, how="with no await in between")


async def locked_async_agent(
    name: str, session: Session, lock: asyncio.Lock, llm: SimulatedLLM, history: History
) -> None:
    """When the model must see the current history, hold an asyncio.Lock across the await.

    Correct, but only one agent at a time can be between its read and its
    write, and here that span is the whole model call: the agents take turns.
    """
    history.record("wait", agent=name)
    async with lock:  # held across the await: every other agent waits here
        seen = read_session(name, session, history)
        history.record("call", agent=name)
        reply = await llm.acall(name)  # the prompt would include seen.conversation
        write_back(name, session, seen, reply, history)


SESSION_REDUCERS = {
    HISTORY: "append",
    "total_tokens": "add",
    "completed": "add",
    "agent_results": "merge",
}
"""How the store merges each agent's delta into the session's keys."""


async def store_async_agent(name: str, store: AsyncStore, llm: SimulatedLLM) -> None:
    """The fix with the store: await the model, then hand the store a delta to merge."""
    reply = await llm.acall(name)
    await store.apply(
        {
            HISTORY: [{"agent": name, "content": reply.text}],
            "total_tokens": reply.tokens,
            "completed": 1,
            "agent_results": {name: reply.text},
        }
    )


async def rate_limited_agent(
    name: str,
    session: Session,
    limit: asyncio.Semaphore,
    llm: SimulatedLLM,
    history: History,
    in_flight: list[int],
) -> None:
    """The await-first agent, with at most ``limit``'s worth of model calls in flight at once."""
    history.record("wait", agent=name)
    async with limit:  # a slot in the rate limit; the others wait here
        in_flight[0] += 1  # no await between read and write: safe in asyncio
        in_flight[1] = max(in_flight[1], in_flight[0])
        history.record("call", agent=name)
        reply = await llm.acall(name)
        in_flight[0] -= 1
    add_reply(name, session, reply, history, how="with no await in between")


# --- The lesson's runs ------------------------------------------------------------


def _timed(main: Callable[[], Awaitable[None]]) -> float:
    async def run() -> float:
        start = time.perf_counter()
        await main()
        return time.perf_counter() - start

    return asyncio.run(run())


def run_sequential_awaits(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """The unsafe agent awaited one task after another: slow, nothing lost."""
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()

    async def main() -> None:
        for name in names:
            await unsafe_async_agent(name, session, llm, history)

    wall = _timed(main)
    return flow_result("sequential_awaits", "awaited in turn", names, llm, session, history, wall)


def run_gather_unsafe(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """The unsafe agent under ``asyncio.gather``: fast, and the race is back."""
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()

    async def main() -> None:
        await asyncio.gather(*(unsafe_async_agent(n, session, llm, history) for n in names))

    wall = _timed(main)
    return flow_result("gather_unsafe", "gather, unsafe", names, llm, session, history, wall)


def run_gather_await_first(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """The await-first agent under ``asyncio.gather``: fast, nothing lost, no lock."""
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()

    async def main() -> None:
        await asyncio.gather(*(await_first_agent(n, session, llm, history) for n in names))

    wall = _timed(main)
    return flow_result(
        "gather_await_first", "gather, await first", names, llm, session, history, wall
    )


def run_gather_with_lock(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """The locked agent under ``asyncio.gather``: nothing lost, and as slow as taking turns."""
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()

    async def main() -> None:
        lock = asyncio.Lock()
        await asyncio.gather(*(locked_async_agent(n, session, lock, llm, history) for n in names))

    wall = _timed(main)
    return flow_result("gather_with_lock", "gather, locked", names, llm, session, history, wall)


def session_from_store(values: dict[str, Any]) -> Session:
    """The store's keys in the shape of lesson 01's session dict."""
    session = new_session()
    session[HISTORY] = values.get(HISTORY) or []
    session["agent_results"] = values.get("agent_results") or {}
    session["agent_status"] = {name: "done" for name in session["agent_results"]}
    session["metadata"]["total_tokens"] = values.get("total_tokens") or 0
    session["metadata"]["completed"] = values.get("completed") or 0
    return session


def run_gather_with_store(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """The store agent under ``asyncio.gather``: no lock in sight, nothing lost."""
    llm, history = SimulatedLLM(new_seed(seed), time_scale), History()
    store = open_async_store("memory://", history=history, reducers=SESSION_REDUCERS)
    values: dict[str, Any] = {}

    async def main() -> None:
        async def run(name: str) -> None:
            with agent(name):  # the store records who acted
                history.record("call")
                await store_async_agent(name, store, llm)

        await asyncio.gather(*(run(n) for n in names))
        values.update({key: item.value for key, item in (await store.snapshot()).items()})

    wall = _timed(main)
    session = session_from_store(values)
    return flow_result("gather_with_store", "gather, store", names, llm, session, history, wall)


def run_rate_limited(
    names: list[str],
    *,
    limit: int = 2,
    seed: int | None = None,
    time_scale: float = 1.0,
) -> ScenarioResult:
    """All agents gathered, at most ``limit`` model calls at a time."""
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()
    in_flight = [0, 0]  # now, most ever

    async def main() -> None:
        semaphore = asyncio.Semaphore(limit)
        await asyncio.gather(
            *(rate_limited_agent(n, session, semaphore, llm, history, in_flight) for n in names)
        )

    wall = _timed(main)
    result = flow_result(
        "rate_limited", f"gather, {limit} at a time", names, llm, session, history, wall
    )
    result.extra.update({"limit": limit, "max_in_flight": in_flight[1]})
    return result


def no_await_between(count: int = 1000) -> ScenarioResult:
    """``completed = completed + 1`` in ``count`` tasks, with no await inside: nothing lost.

    A task runs undisturbed from one ``await`` to the next, so a read and a
    write with no ``await`` between them cannot interleave with other tasks.
    """
    names = [f"task-{i}" for i in range(count)]
    metadata: dict[str, Any] = {"completed": 0}

    async def task() -> None:
        await asyncio.sleep(0)  # every task starts, then all resume in turn
        completed = metadata["completed"]
        metadata["completed"] = completed + 1

    async def main() -> None:
        await asyncio.gather(*(task() for _ in names))

    wall = _timed(main)
    lost = count - metadata["completed"]
    return ScenarioResult(
        scenario="no_await_between",
        title=f"read-modify-write, no await, {count} tasks",
        agents=names,
        seed=None,
        time_scale=0.0,
        wall_seconds=wall,
        expected={"completed": count},
        actual={"completed": metadata["completed"]},
        measure="completed",
        lost_updates=lost,
        lost_agents=[],
        consistent=lost == 0,
        final_state={"metadata": metadata},
        story=[
            f"{count} tasks each read completed and wrote completed + 1 with no await in "
            f"between: {metadata['completed']} of {count} increments arrived. A task is only "
            "switched out at an await, so this read-modify-write cannot interleave in asyncio "
            "(in threads it could)."
        ],
    )
