"""fix_optimistic.py: fix 3, optimistic versions with retry.

Each agent reads the whole session together with its version, calls the
model, and saves with `compare_and_set(expected_version=...)`. If another
agent saved first, the version moved on: the save is refused with a
ConflictError, and the agent re-reads the session and redoes its update on
top of it. Nobody waits for a lock, but every conflict costs a retry.
"""

import threading

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

import racefree
from racefree.scenarios.course import flow_script


def new_session():
    """The state every agent shares (lesson 01's session)."""
    return {
        "conversation_history": [],
        "agent_results": {},
        "metadata": {"total_tokens": 0, "completed": 0},
    }


def with_reply(session, name, reply):
    """A new session: ``session`` plus this agent's reply (the input is left alone)."""
    metadata = session["metadata"]
    return {
        "conversation_history": [
            *session["conversation_history"],
            {"agent": name, "content": reply.text},
        ],
        "agent_results": {**session["agent_results"], name: reply.text},
        "metadata": {
            "total_tokens": metadata["total_tokens"] + reply.tokens,
            "completed": metadata["completed"] + 1,
        },
    }


def agent(name, store, llm, retries):
    """Read with a version, call the model, save only if nobody saved meanwhile."""
    session, version = store.get_versioned("session")
    reply = llm.call(name)
    while True:
        try:
            store.compare_and_set(
                "session", with_reply(session, name, reply), expected_version=version
            )
            return
        except racefree.ConflictError:  # someone saved first: redo it on their session
            retries.append(name)
            session, version = store.get_versioned("session")


def run(names, llm, history):
    """One thread per agent on one in-memory store; returns the session and the retries."""
    store = racefree.open_store("memory://", history=history)
    store.set("session", new_session())
    retries = []  # list.append is atomic: a safe way for threads to report
    threads = [threading.Thread(target=agent, args=(n, store, llm, retries), name=n) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return store.get("session"), {"retries": len(retries)}


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        None,
        intro=lambda args: f"{len(args.names)} agents in threads; compare-and-set with retry.",
        closing=lambda result: [
            f"{result.extra['retries']} save(s) were refused because another agent had saved "
            "first; each re-read the session and saved again.",
            result.timing(),
        ],
    )
