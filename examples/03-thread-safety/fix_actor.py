"""fix_actor.py: fix 4, a single writer thread fed by a queue.Queue.

The agents never touch the session: they call the model and put their reply
on a queue. One writer thread owns the session and applies the replies one at
a time, in arrival order, with no lock, because nobody else writes. This is
the actor pattern: ordering and validation live in one place.
"""

import queue
import threading

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

from racefree.scenarios.course import flow_script


def new_session():
    """The state every agent shares (lesson 01's session)."""
    return {
        "conversation_history": [],
        "agent_results": {},
        "metadata": {"total_tokens": 0, "completed": 0},
    }


def agent(name, llm, inbox):
    """Call the model and send the reply; never touch the session."""
    inbox.put((name, llm.call(name)))


def writer(session, inbox):
    """The one thread that owns the session: apply each reply in arrival order until None."""
    while (message := inbox.get()) is not None:
        name, reply = message
        session["conversation_history"].append({"agent": name, "content": reply.text})
        session["metadata"]["total_tokens"] += reply.tokens
        session["metadata"]["completed"] += 1
        session["agent_results"][name] = reply.text


def run(names, session, llm):
    """The writer thread, then one thread per agent; None tells the writer to stop."""
    inbox = queue.Queue()
    owner = threading.Thread(target=writer, args=(session, inbox), name="writer")
    owner.start()
    threads = [threading.Thread(target=agent, args=(n, llm, inbox), name=n) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    inbox.put(None)  # the writer drains what is queued, then stops
    owner.join()


if __name__ == "__main__":
    flow_script(
        __doc__,
        run,
        new_session,
        intro=lambda args: f"{len(args.names)} agents in threads; one writer owns the session.",
        closing=lambda result: [result.timing()],
    )
