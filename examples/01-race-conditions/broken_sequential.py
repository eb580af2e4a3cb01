"""broken_sequential.py: agents take turns on one shared session. Safe, and slow.

Each agent reads the session, waits for a (simulated) model call, and writes
back its copy plus its own entry. One at a time, that is correct: every agent
reads what the previous one wrote. The total time is the sum of all the model
calls. The agent code is `unsafe_agent` in src/racefree/scenarios/lesson01.py;
broken_parallel.py runs the very same code in threads.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson01
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson01.run_sequential,
        intro=lambda args: (
            f"{len(args.names)} agents, one after another; each model call takes 1-3 s"
            f" x {args.time_scale}."
        ),
        closing=lambda result: [
            f"Total time {result.wall_seconds:.2f} s: about the sum of the model calls "
            f"({result.latency_sum:.2f} s), because each agent waited for the previous one.",
            f"Seed {result.seed}: add --seed {result.seed} to get the same latencies again.",
        ],
    )
