"""broken_sequential.py: agents take turns on one shared session. Safe, and slow.

Each agent reads the session, waits for a (simulated) model call, and writes
back its copy plus its own entry. One at a time, that is correct: every agent
reads what the previous one wrote. The total time is the sum of all the model
calls. broken_parallel.py runs the very same agent; the only difference is
where the main thread waits for the agents (join).
"""

import threading

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

from racefree.scenarios.course import flow_script


def new_session():
    """The state every agent shares."""
    return {
        "conversation_history": [],
        "agent_results": {},
        "metadata": {"total_tokens": 0, "completed": 0},
    }


def agent(name, session, llm):
    """Read the session, call the model, write back the copy plus our part."""
    history = list(session["conversation_history"])  # 1. read: take copies
    tokens = session["metadata"]["total_tokens"]
    completed = session["metadata"]["completed"]

    reply = llm.call(name)  # 2. wait 1 to 3 s for the model

    history.append({"agent": name, "content": reply.text})  # 3. write the copies back
    session["conversation_history"] = history
    session["metadata"]["total_tokens"] = tokens + reply.tokens
    session["metadata"]["completed"] = completed + 1
    session["agent_results"][name] = reply.text


def run(names, session, llm):
    """One thread per agent, and each must finish before the next one starts."""
    for name in names:
        thread = threading.Thread(target=agent, args=(name, session, llm), name=name)
        thread.start()
        thread.join()  # wait here: the next agent starts from what this one wrote


if __name__ == "__main__":
    # The helper parses the options, hands `run` a session that records every read
    # and write (for the timeline and --history), and prints what happened.
    flow_script(
        __doc__,
        run,
        new_session,
        intro=lambda args: (
            f"{len(args.names)} agents, one after another; each model call takes 1-3 s"
            f" x {args.time_scale}."
        ),
        closing=lambda result: [
            result.timing(),
            f"Seed {result.seed}: add --seed {result.seed} to get the same latencies again.",
        ],
    )
