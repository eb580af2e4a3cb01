"""fix_optimistic.py: fix 3, optimistic versions with retry.

Each agent reads the whole session together with its version, calls the
model, and saves with `compare_and_set(expected_version=...)`. If another
agent saved first, the version moved on: the save is refused with a
ConflictError, and the agent re-reads the session and redoes its update on
top of it. Nobody waits for a lock, but every conflict costs a retry. The
agent is `optimistic_agent` in src/racefree/scenarios/lesson03.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson03
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson03.run_optimistic,
        intro=lambda args: f"{len(args.names)} agents in threads; compare-and-set with retry.",
        closing=lambda result: [
            f"{result.extra['retries']} save(s) were refused because another agent had saved "
            "first; each re-read the session and saved again.",
            f"Total time {result.wall_seconds:.2f} s.",
        ],
    )
