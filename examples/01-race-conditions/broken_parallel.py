"""broken_parallel.py: the same agents in parallel threads. Fast, and work is lost.

The agent below is broken_sequential.py's, unchanged. Now all the threads
start before any is joined, so every agent reads the session while the
others are still waiting for their model. Each one then writes back its own
copy, and that write replaces whatever the others wrote meanwhile: look at
the line marked LOST. Which agent's work survives depends on who finishes
last.
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

    reply = llm.call(name)  # 2. wait 1 to 3 s for the model: the others read now

    history.append({"agent": name, "content": reply.text})
    session["conversation_history"] = history  # 3. LOST: replaces what others wrote
    session["metadata"]["total_tokens"] = tokens + reply.tokens  # (and their tokens)
    session["metadata"]["completed"] = completed + 1
    session["agent_results"][name] = reply.text  # its own key: nobody else writes it


def run(names, session, llm):
    """One thread per agent, all started at once; then wait for all of them."""
    threads = [
        threading.Thread(target=agent, args=(name, session, llm), name=name) for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def closing(result):
    if not result.lost_agents:
        return [
            "This run lost nothing: no agent read the history while another was between its "
            "read and its write. With calls this short, a thread can finish before the next "
            "one starts. Run it again, or with a larger --time-scale.",
        ]
    return [
        f"agent_results still has all {result.actual['results']} entries: each agent set "
        "its own key with one assignment and no one wrote that dict back from a copy.",
        result.timing(),
        f"Seed {result.seed}. Run again without --seed: another agent may be the survivor.",
    ]


if __name__ == "__main__":
    # The helper parses the options, hands `run` a session that records every read
    # and write (for the timeline and --history), and prints what happened.
    flow_script(
        __doc__,
        run,
        new_session,
        min_agents=2,
        intro=lambda args: (
            f"{len(args.names)} agents in parallel threads; each model call takes 1-3 s"
            f" x {args.time_scale}."
        ),
        closing=closing,
    )
