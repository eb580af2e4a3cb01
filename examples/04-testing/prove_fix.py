"""prove_fix.py: exhaustive search runs every distinct ordering of the fixed agents.

The fixed agents call the model with no lock held, then append under a
threading.Lock. Exhaustive search with partial-order reduction runs each
ordering of their scheduling points once (orderings that differ only by
swapping steps that touch different state count once) and checks every run.
"All N distinct orderings explored" with no failure is a proof for this
workflow, these checks and these steps (see the README for what a step is),
not a lucky streak. Then the same search on the broken agents, for contrast:
it fails at once.
"""

import sys
import threading

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

import racefree
from racefree.scenarios.script import parse_lesson_args, print_json

args = parse_lesson_args(__doc__, min_agents=2, max_agents=4, default_time_scale=1.0)


def fixed_agent(name, session, lock, llm):
    """The fix: call the model, then append under the lock (one indivisible step)."""
    reply = llm.call(name)
    with lock:
        session["conversation_history"].append({"agent": name, "content": reply.text})


def broken_agent(name, session, lock, llm):
    """The bug, for contrast: read, call the model, write back the copy plus ours."""
    history = list(session["conversation_history"])
    reply = llm.call(name)
    session["conversation_history"] = [*history, {"agent": name, "content": reply.text}]


def agents(agent):
    """A workflow: ``agent`` in one thread per name, on a tracked session."""

    def workflow():
        state = {"conversation_history": []}
        session, lock = racefree.track(state), threading.Lock()
        llm = racefree.SimulatedLLM(args.seed or 0, args.time_scale)
        threads = [
            threading.Thread(target=agent, args=(n, session, lock, llm), name=n) for n in args.names
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return state

    return workflow


def every_reply_kept(state):
    """Every agent's reply is in the conversation history."""
    kept = {entry["agent"] for entry in state["conversation_history"]}
    assert kept == set(args.names), f"lost: {sorted(set(args.names) - kept)}"


def search(agent):
    return racefree.explore(
        agents(agent),
        strategy="exhaustive",
        schedules=200_000,
        invariants=[every_reply_kept],
        save_dir=None,
    )


proof, contrast = search(fixed_agent), search(broken_agent)
proven = proof.ok and proof.complete
if args.json:
    print_json({**proof.to_json(), "contrast": contrast.to_json()})
else:
    print("\n".join(proof.summary()))
    verdict = "every ordering passes" if proven else "NOT proven"
    print(f"\n{len(args.names)} locked agents: {verdict}.")
    found = "no failure" if contrast.ok else f"a failure on run {contrast.failure.found_after}"
    print(f"Contrast, the same search on the broken agents: {found}.")
sys.exit(0 if proven and not contrast.ok else 1)
