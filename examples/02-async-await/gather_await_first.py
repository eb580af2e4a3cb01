"""gather_await_first.py: the asyncio fix that needs no lock. Await first, then update.

The race in gather_race.py comes from reading the session BEFORE the await
and writing it AFTER. Here each agent awaits the model first, and only then
reads, modifies and writes the session, with no await in between. A task
gives way to others only where it awaits something that suspends, so no
other task can run between this read and this write: nothing is lost, and
the agents still wait for the model in parallel.
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
    """Await the model first; then read-modify-write with no await in between."""
    reply = await llm.acall(name)  # the only await: the other agents run here

    # From here to the end there is no await: no other task can run in between.
    session["conversation_history"].append({"agent": name, "content": reply.text})
    session["metadata"]["total_tokens"] += reply.tokens
    session["metadata"]["completed"] += 1
    session["agent_results"][name] = reply.text


async def run(names, session, llm):
    """One task per agent (named after it), all gathered at once."""
    await asyncio.gather(*(asyncio.create_task(agent(n, session, llm), name=n) for n in names))


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        new_session,
        intro=lambda args: (
            f"{len(args.names)} async agents under asyncio.gather; each awaits the model, "
            "then updates with no await in between."
        ),
        closing=lambda result: [
            result.timing(),
            "No lock anywhere.",
        ],
    )
