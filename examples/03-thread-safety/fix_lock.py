"""fix_lock.py: fix 1, a threading.Lock around each read-modify-write.

The model call runs with no lock held; only the update of the session is
inside `with lock:`. Simple and fast while the locked part is short. Its
limits: it protects one process only, and a lock held across a model call
would make the agents run one at a time.
"""

import threading

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

from racefree.scenarios.course import flow_script, watched


def new_session():
    """The state every agent shares (lesson 01's session)."""
    return {
        "conversation_history": [],
        "agent_results": {},
        "metadata": {"total_tokens": 0, "completed": 0},
    }


def agent(name, session, lock, llm):
    """Call the model with no lock held; then update the session under the lock."""
    reply = llm.call(name)
    with lock:  # read, modify and write as one step
        session["conversation_history"].append({"agent": name, "content": reply.text})
        session["metadata"]["total_tokens"] += reply.tokens
        session["metadata"]["completed"] += 1
        session["agent_results"][name] = reply.text


def run(names, session, llm):
    """One thread per agent, all at once, sharing one lock."""
    lock = watched(threading.Lock(), session)  # records when it is held, for `racefree check`
    threads = [threading.Thread(target=agent, args=(n, session, lock, llm), name=n) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        new_session,
        intro=lambda args: f"{len(args.names)} agents in threads; updates under one lock.",
        closing=lambda result: [result.timing()],
    )
