"""gather_with_store.py: asyncio.gather with the racefree store. No lock in sight.

Each agent hands the store what it adds (its history entry, its tokens, one
completed, its result) and the store merges the whole delta in one atomic
operation, through the reducer declared for each key: append for the
history, add for the counters, merge for the results. Nobody reads and
writes back, so there is nothing to go stale.
"""

import asyncio

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

import racefree
from racefree.scenarios.course import flow_script

REDUCERS = {
    "conversation_history": "append",
    "total_tokens": "add",
    "completed": "add",
    "agent_results": "merge",
}


async def agent(name, store, llm):
    """Await the model, then hand the store a delta to merge."""
    reply = await llm.acall(name)
    await store.apply(
        {
            "conversation_history": [{"agent": name, "content": reply.text}],
            "total_tokens": reply.tokens,
            "completed": 1,
            "agent_results": {name: reply.text},
        }
    )


async def run(names, llm, history):
    """One task per agent on one in-memory AsyncStore; returns the store's final values."""
    store = racefree.open_async_store("memory://", history=history, reducers=REDUCERS)
    await asyncio.gather(*(asyncio.create_task(agent(n, store, llm), name=n) for n in names))
    return {key: item.value for key, item in (await store.snapshot()).items()}


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        None,
        intro=lambda args: f"{len(args.names)} async agents sharing an AsyncStore (in memory).",
        closing=lambda result: [
            result.timing(),
        ],
    )
