"""fix_actor.py: fix 4, a single writer thread fed by a queue.Queue.

The agents never touch the session: they call the model and put their reply
on a queue. One writer thread owns the session and applies the replies one at
a time, in arrival order, with no lock, because nobody else writes. This is
the actor pattern: ordering and validation live in one place. The code is
`actor_agent` and `session_writer` in src/racefree/scenarios/lesson03.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson03
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson03.run_actor,
        intro=lambda args: f"{len(args.names)} agents in threads; one writer owns the session.",
        closing=lambda result: [
            f"Total time {result.wall_seconds:.2f} s, about the slowest call "
            f"({result.latency_max:.2f} s)."
        ],
    )
