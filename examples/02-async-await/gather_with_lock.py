"""gather_with_lock.py: when the update must span an await, hold an asyncio.Lock.

Sometimes the read cannot move after the await: the agent's prompt must
include the conversation so far, so it reads the history, awaits the model
with it, and writes the reply back. Then only a lock held from the read to
the write keeps the others out: `async with lock:` around all three steps.
Correct, but the lock is held for the whole model call, so the agents take
turns (dots in the timeline are agents waiting for the lock) and the run is
as slow as one after another. Use `asyncio.Lock` here: a `threading.Lock`
held across an await deadlocks, because the next task blocks the only thread
in `acquire()` and the holder can never resume. The agent is
`locked_async_agent` in src/racefree/scenarios/lesson02.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson02
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson02.run_gather_with_lock,
        intro=lambda args: (
            f"{len(args.names)} async agents; each holds an asyncio.Lock from its read, "
            "across the model call, to its write."
        ),
        closing=lambda result: [
            f"Total time {result.wall_seconds:.2f} s, about the sum of the calls "
            f"({result.latency_sum:.2f} s): correct, but the lock made the agents take turns. "
            "Keep awaits out of a lock when you can (gather_await_first.py)."
        ],
    )
