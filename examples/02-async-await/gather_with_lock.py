"""gather_with_lock.py: asyncio.gather with an asyncio.Lock around the update.

The model call is awaited with no lock held, so the agents still wait in
parallel. The update of the session (append, add to the counters) happens
inside `async with lock:` and contains no other await, so no task can touch
the session between this agent's read and its write. Use `asyncio.Lock` in
async code: a `threading.Lock` held across an `await` would block the whole
event loop. The agent is `locked_async_agent` in src/racefree/scenarios/lesson02.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson02
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson02.run_gather_with_lock,
        intro=lambda args: f"{len(args.names)} async agents, updates under an asyncio.Lock.",
        closing=lambda result: [
            f"Total time {result.wall_seconds:.2f} s against {result.latency_sum:.2f} s one "
            f"after another: {result.latency_sum / result.wall_seconds:.1f}x faster, "
            "nothing lost.",
        ],
    )
