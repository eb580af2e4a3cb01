"""find_race.py: the explorer finds lesson 01's lost update on its first schedule.

The agents are lesson 01's broken ones, in threads, on a session wrapped by
`racefree.track`: every read and write of the tracked session is a
scheduling point, and so are the model calls (sleeps) and the thread and lock
operations. The explorer runs the agents one at a time and chooses who goes
next at each of those points; a plain, untracked dict access would not be
one. Model calls cost no wall time (virtual time). Every run is checked, here
by the invariant below and by racefree's checker, and the report ends with
the command that replays the failing run exactly.
"""

import threading

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

import racefree
from racefree.scenarios.script import parse_lesson_args, print_json

args = parse_lesson_args(__doc__, min_agents=2, default_time_scale=1.0)


def agent(name, session, llm):
    """Lesson 01's bug: read the history, call the model, write back the copy plus ours."""
    history = list(session["conversation_history"])  # read
    reply = llm.call(name)  # the others run here
    session["conversation_history"] = [*history, {"agent": name, "content": reply.text}]


def workflow():
    """The agents in one thread each, on a tracked session; returns the final state."""
    state = {"conversation_history": []}
    session = racefree.track(state)  # its reads and writes become scheduling points
    llm = racefree.SimulatedLLM(args.seed or 0, args.time_scale)
    threads = [threading.Thread(target=agent, args=(n, session, llm), name=n) for n in args.names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state


def every_reply_kept(state):
    """Every agent's reply is in the conversation history."""
    kept = {entry["agent"] for entry in state["conversation_history"]}
    missing = [name for name in args.names if name not in kept]
    assert not missing, f"lost: {', '.join(missing)}"


result = racefree.explore(
    workflow, invariants=[every_reply_kept], schedules=1000, seed=args.seed or 0, save_dir=None
)
if args.json:
    print_json(result.to_json())
else:
    print(result.report())
    print("\nLook at the timeline: every agent reads v0 before anyone writes, so each write")
    print("replaces the others. The explorer needed no luck: natural timing already does it.")
