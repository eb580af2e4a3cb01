"""sequential_awaits.py: async agents awaited one after another. Correct, and slow.

Each agent is an asyncio task, and the main coroutine awaits each task before
it creates the next: every agent starts only when the previous one has
finished, so each reads what the previous one wrote. Being async changes
nothing by itself: the total is still the sum of the model calls.
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
    """Lesson 01's agent with await: read, await the model, write back the copy."""
    history = list(session["conversation_history"])  # 1. read: take copies
    tokens = session["metadata"]["total_tokens"]
    completed = session["metadata"]["completed"]

    reply = await llm.acall(name)  # 2. the await: here the task suspends

    history.append({"agent": name, "content": reply.text})  # 3. write the copies back
    session["conversation_history"] = history
    session["metadata"]["total_tokens"] = tokens + reply.tokens
    session["metadata"]["completed"] = completed + 1
    session["agent_results"][name] = reply.text


async def run(names, session, llm):
    """One task per agent (named after it), each awaited before the next is created."""
    for name in names:
        await asyncio.create_task(agent(name, session, llm), name=name)


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        new_session,
        intro=lambda args: f"{len(args.names)} async agents, awaited one after another.",
        closing=lambda result: [
            result.timing(),
            "Nothing ran concurrently, so nothing was lost.",
        ],
    )
