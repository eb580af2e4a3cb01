"""gather_race.py: the same async agents under asyncio.gather. Fast, and the race is back.

asyncio runs one task at a time, and people conclude that it cannot race.
It can: a task gives way to the others wherever it awaits something that
really suspends, such as the model's reply (here asyncio.sleep, as a network
read would). The agent awaits the model between reading the session and
writing it back, so every other agent reads the same stale session
meanwhile, exactly as threads did in lesson 01.

For contrast, the script then runs 1,000 tasks that each do
`completed = completed + 1` around an await twice: once awaiting a coroutine
that returns without suspending (no other task runs, nothing is lost), once
awaiting asyncio.sleep(0), which does suspend (every increment but one is lost).
"""

import asyncio

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

from racefree.scenarios.course import flow_script


def new_session():
    """The state every agent shares (lesson 01's session)."""
    return {
        "conversation_history": [],
        "agent_results": {},
        "metadata": {"total_tokens": 0, "completed": 0},
    }


async def agent(name, session, llm):
    """Read the session, await the model, write back the copy plus our part."""
    history = list(session["conversation_history"])  # 1. read: take copies
    tokens = session["metadata"]["total_tokens"]
    completed = session["metadata"]["completed"]

    reply = await llm.acall(name)  # 2. suspends until the reply: the others read now

    history.append({"agent": name, "content": reply.text})
    session["conversation_history"] = history  # 3. LOST: replaces what others wrote
    session["metadata"]["total_tokens"] = tokens + reply.tokens
    session["metadata"]["completed"] = completed + 1
    session["agent_results"][name] = reply.text


async def run(names, session, llm):
    """One task per agent (named after it), all gathered at once."""
    await asyncio.gather(*(asyncio.create_task(agent(n, session, llm), name=n) for n in names))


async def cached_answer():
    """A coroutine that returns at once: awaiting it runs it like a plain call."""
    return "cached"


async def increment(state, pause):
    completed = state["completed"]
    await pause()  # switches tasks only if `pause` really suspends
    state["completed"] = completed + 1


async def contrast(pause, tasks=1000):
    state = {"completed": 0}
    await asyncio.gather(*(increment(state, pause) for _ in range(tasks)))
    return state["completed"]


def closing(result):
    kept = asyncio.run(contrast(cached_answer))
    slept = asyncio.run(contrast(lambda: asyncio.sleep(0)))
    lines = [
        result.timing(),
        "Fast, and wrong." if result.lost_agents else "This run lost nothing.",
        "",
        "Contrast: 1,000 tasks each read completed, await, and write completed + 1.",
        f"  await cached_answer() (returns without suspending): {kept} of 1000 arrived.",
        f"  await asyncio.sleep(0) (suspends): {slept} of 1000 arrived.",
        "Only an await that really suspends lets another task run in between.",
    ]
    return lines


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        new_session,
        min_agents=2,
        intro=lambda args: f"{len(args.names)} async agents under asyncio.gather.",
        closing=closing,
    )
