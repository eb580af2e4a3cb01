"""gather_await_first.py: the asyncio fix that needs no lock. Await first, then update.

The race in gather_race.py comes from reading the session BEFORE the await
and writing it AFTER. Here each agent awaits the model first, and only then
reads, modifies and writes the session, with no await in between. A task is
switched out only at an await, so no other task can run between this read and
this write: nothing is lost, and the agents still wait for the model in
parallel. The agent is `await_first_agent` in src/racefree/scenarios/lesson02.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson02
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson02.run_gather_await_first,
        intro=lambda args: (
            f"{len(args.names)} async agents under asyncio.gather; each awaits the model, "
            "then updates with no await in between."
        ),
        closing=lambda result: [
            f"Total time {result.wall_seconds:.2f} s, about the slowest call "
            f"({result.latency_max:.2f} s); no lock anywhere."
        ],
    )
