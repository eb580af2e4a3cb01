"""gather_with_store.py: asyncio.gather with the racefree store. No lock in sight.

Each agent returns its part as a delta (its history entry, its tokens, one
completed, its result) and the store merges it in one atomic operation,
through the reducer declared for each key: append for the history, add for
the counters, merge for the results. Nobody reads and writes back, so there
is nothing to go stale. The agent is `store_async_agent` in
src/racefree/scenarios/lesson02.py: compare its length with the lock version.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson02
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson02.run_gather_with_store,
        intro=lambda args: f"{len(args.names)} async agents sharing an AsyncStore (in memory).",
        closing=lambda result: [
            f"Total time {result.wall_seconds:.2f} s; the same calls one after another would "
            f"take {result.latency_sum:.2f} s (their sum).",
        ],
    )
