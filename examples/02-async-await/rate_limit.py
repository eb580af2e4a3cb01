"""rate_limit.py: all agents gathered, at most N model calls in flight (asyncio.Semaphore).

Model providers cap concurrent requests (and requests per minute). An
`asyncio.Semaphore(N)` lets N agents into the model call at once; the others
wait (dots in the timeline) until a slot frees. The run takes about as long
as the calls packed into N lanes. A Semaphore limits how many run at once; it
does not make an update safe. Here the update is safe for another reason: it
happens after the await, with no await inside (as in gather_await_first.py).
A limit per minute needs a token bucket on top; this script shows the cap on
calls in flight.
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


async def agent(name, session, slots, llm):
    """Take a slot for the model call; update the session after it, with no await."""
    async with slots:  # at most N agents inside; the others wait here
        reply = await llm.acall(name)

    session["conversation_history"].append({"agent": name, "content": reply.text})
    session["metadata"]["total_tokens"] += reply.tokens
    session["metadata"]["completed"] += 1
    session["agent_results"][name] = reply.text


async def run(names, session, llm, limit=2):
    """One task per agent, all gathered at once, sharing a Semaphore of `limit` slots."""
    slots = watched(asyncio.Semaphore(limit), session, key=None)  # draws the waits
    await asyncio.gather(
        *(asyncio.create_task(agent(n, session, slots, llm), name=n) for n in names)
    )


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        new_session,
        extra={"limit": (2, "at most N model calls at once")},
        intro=lambda args: (
            f"{len(args.names)} async agents, at most {args.extra['limit']} model calls at a time."
        ),
        closing=lambda result: [
            f"At most {result.extra['calls_at_once']} calls were in flight at once "
            f"(limit {result.extra['limit']}; counted from the recorded calls).",
            result.timing(),
        ],
        json_extra=lambda result: {"max_in_flight": result.extra["calls_at_once"]},
    )
