"""gather_with_lock.py: when the update must span an await, hold an asyncio.Lock.

Sometimes the read cannot move after the await: the agent's prompt must
include the conversation so far, so it reads the history, awaits the model
with it, and writes the reply back. Then only a lock held from the read to
the write keeps the others out: `async with lock:` around all three steps.
Correct, but the lock is held for the whole model call, so the agents take
turns (dots in the timeline are agents waiting for the lock) and the run is
as slow as one after another. Use `asyncio.Lock` here: a `threading.Lock`
held across an await deadlocks as soon as a second task tries to take it,
because its acquire() blocks the event loop's only thread and the holder can
never resume to release it.
"""

import asyncio

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

from racefree.scenarios.course import flow_script, watched


def new_session():
    """The state every agent shares (lesson 01's session)."""
    return {
        "conversation_history": [],
        "agent_results": {},
        "metadata": {"total_tokens": 0, "completed": 0},
    }


async def agent(name, session, lock, llm):
    """Hold the lock from the read, across the model call, to the write."""
    async with lock:  # every other agent waits here until we are done
        history = list(session["conversation_history"])  # 1. read
        tokens = session["metadata"]["total_tokens"]
        completed = session["metadata"]["completed"]

        reply = await llm.acall(name)  # 2. the prompt would include `history`

        history.append({"agent": name, "content": reply.text})  # 3. write: nobody else
        session["conversation_history"] = history  # wrote since our read
        session["metadata"]["total_tokens"] = tokens + reply.tokens
        session["metadata"]["completed"] = completed + 1
        session["agent_results"][name] = reply.text


async def run(names, session, llm):
    """One task per agent, all gathered at once, sharing one asyncio.Lock."""
    lock = watched(asyncio.Lock(), session)  # records when it is held, for `racefree check`
    await asyncio.gather(
        *(asyncio.create_task(agent(n, session, lock, llm), name=n) for n in names)
    )


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        new_session,
        intro=lambda args: (
            f"{len(args.names)} async agents; each holds an asyncio.Lock from its read, "
            "across the model call, to its write."
        ),
        closing=lambda result: [
            result.timing(),
            "Correct, but the lock made the agents take turns. Keep awaits out of a lock "
            "when you can (gather_await_first.py).",
        ],
    )
