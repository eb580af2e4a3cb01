"""fix_reducers.py: fix 2, atomic deltas merged by the store's reducers.

Each agent returns what it adds (its history entry, its tokens, one
completed, its result) and `Store.apply` merges the whole delta in one atomic
step, using the reducer declared per key: append, add, merge. The agent never
reads the session, so nothing can go stale; it is also the shortest agent.
The agent is `reducer_agent` in src/racefree/scenarios/lesson03.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson03
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson03.run_reducers,
        intro=lambda args: f"{len(args.names)} agents in threads; deltas merged by reducers.",
        closing=lambda result: [
            f"Total time {result.wall_seconds:.2f} s, about the slowest call "
            f"({result.latency_max:.2f} s)."
        ],
    )
