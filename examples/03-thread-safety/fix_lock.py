"""fix_lock.py: fix 1, a threading.Lock around each read-modify-write.

The model call runs with no lock held; only the update of the session is
inside `with lock:`. Simple and fast while the locked part is short. Its
limits: it protects one process only, and a lock held across a model call
would make the agents run one at a time. The agent is `locked_agent` in
src/racefree/scenarios/lesson01.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson03
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson03.run_lock,
        intro=lambda args: f"{len(args.names)} agents in threads; updates under one lock.",
        closing=lambda result: [
            f"Total time {result.wall_seconds:.2f} s, about the slowest call "
            f"({result.latency_max:.2f} s)."
        ],
    )
