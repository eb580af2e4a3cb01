"""fix_reducers.py: fix 2, atomic deltas merged by the store's reducers.

Each agent hands the store what it adds (its history entry, its tokens, one
completed, its result) and `Store.apply` merges the whole delta in one atomic
step, using the reducer declared per key: append, add, merge. The agent never
reads the session, so nothing can go stale.
"""

import threading

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

import racefree
from racefree.scenarios.course import flow_script

REDUCERS = {
    "conversation_history": "append",
    "total_tokens": "add",
    "completed": "add",
    "agent_results": "merge",
}


def agent(name, store, llm):
    """Call the model, then hand the store a delta; its reducers merge it atomically."""
    reply = llm.call(name)
    store.apply(
        {
            "conversation_history": [{"agent": name, "content": reply.text}],
            "total_tokens": reply.tokens,
            "completed": 1,
            "agent_results": {name: reply.text},
        }
    )


def run(names, llm, history):
    """One thread per agent on one in-memory store; returns the store's final values."""
    store = racefree.open_store("memory://", history=history, reducers=REDUCERS)
    threads = [threading.Thread(target=agent, args=(n, store, llm), name=n) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {key: item.value for key, item in store.snapshot().items()}


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        None,
        intro=lambda args: f"{len(args.names)} agents in threads; deltas merged by reducers.",
        closing=lambda result: [result.timing()],
    )
