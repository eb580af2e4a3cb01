"""find_race.py: the explorer finds lesson 01's lost update on its first schedule.

The agents are lesson 01's `unsafe_agent` in a thread pool, unchanged. The
explorer runs them one at a time, choosing who goes next at every read, model
call and write; model calls cost no wall time (virtual time). Every run is
checked: here by the invariant below, and by racefree's checker. The report
ends with the command that replays the failing run exactly.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

import racefree
from racefree.scenarios import lesson01
from racefree.scenarios.script import parse_lesson_args, print_json

args = parse_lesson_args(__doc__, min_agents=2, default_time_scale=1.0)


def workflow():
    """Lesson 01, broken: every agent reads the session, calls the model, writes back."""
    return lesson01.run_broken_parallel(
        args.names, seed=args.seed or 0, time_scale=args.time_scale
    ).final_state


def every_reply_kept(session):
    """Every agent's reply is in the conversation history."""
    kept = {entry["agent"] for entry in session["conversation_history"]}
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
