"""prove_fix.py: exhaustive search runs every distinct ordering of the fixed agents.

The agents are lesson 01's `locked_agent` (the model call outside the lock, the
read-modify-write inside it). Exhaustive search with partial-order reduction
runs each ordering of their steps once (orderings that differ only by steps
that touch different state count once) and checks every run. "All N distinct
orderings explored" with no failure is a proof for this workflow, not a lucky
streak. Then the same search on the broken agents, for contrast.
"""

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

import racefree
from racefree.scenarios import lesson01
from racefree.scenarios.llm import SimulatedLLM
from racefree.scenarios.script import parse_lesson_args, print_json

args = parse_lesson_args(__doc__, min_agents=2, max_agents=4, default_time_scale=1.0)


def fixed():
    """The fix: each agent appends under one lock after its model call."""
    llm = SimulatedLLM(args.seed or 0, args.time_scale)
    session, history, lock = lesson01.new_session(), racefree.History(), threading.Lock()
    with ThreadPoolExecutor(max_workers=len(args.names)) as pool:
        for future in [
            pool.submit(lesson01.locked_agent, name, session, lock, llm, history)
            for name in args.names
        ]:
            future.result()
    return session


def every_reply_kept(session):
    """Every agent's reply is in the conversation history."""
    kept = {entry["agent"] for entry in session["conversation_history"]}
    assert kept == set(args.names), f"lost: {sorted(set(args.names) - kept)}"


proof = racefree.explore(
    fixed, strategy="exhaustive", schedules=200_000, invariants=[every_reply_kept], save_dir=None
)
if args.json:
    print_json(proof.to_json())
else:
    print("\n".join(proof.summary()))
    verdict = "every ordering passes" if proof.ok and proof.complete else "NOT proven"
    print(f"\n{len(args.names)} locked agents: {verdict}.")
sys.exit(0 if proof.ok and proof.complete else 1)
