"""sequential_awaits.py: async agents awaited one after another. Correct, and slow.

`await agent(...)` for each agent in turn: every agent starts only when the
previous one has finished, so each reads what the previous one wrote. Being
async changes nothing by itself: the total is still the sum of the model
calls. The agent is `unsafe_async_agent` in src/racefree/scenarios/lesson02.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson02
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson02.run_sequential_awaits,
        intro=lambda args: f"{len(args.names)} async agents, awaited one after another.",
        closing=lambda result: [
            f"Total time {result.wall_seconds:.2f} s: the sum of the model calls "
            f"({result.latency_sum:.2f} s). Nothing ran concurrently, so nothing was lost.",
        ],
    )
