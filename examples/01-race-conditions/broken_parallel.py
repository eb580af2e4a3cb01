"""broken_parallel.py: the same agents in parallel threads. Fast, and work is lost.

This runs exactly the agent code of broken_sequential.py (`unsafe_agent` in
src/racefree/scenarios/lesson01.py) in a ThreadPoolExecutor. Every agent reads
the session before its model call and writes its copy back after it, so each
write replaces the writes that landed while it was waiting. Every run loses
work; which agent's work survives depends on who finishes last.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson01
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson01.run_broken_parallel,
        min_agents=2,
        intro=lambda args: (
            f"{len(args.names)} agents in parallel threads; each model call takes 1-3 s"
            f" x {args.time_scale}."
        ),
        closing=lambda result: [
            f"agent_results still has all {result.actual['results']} entries: each agent set "
            "its own key with one assignment and no one wrote that dict back from a copy.",
            f"Total time {result.wall_seconds:.2f} s: about the slowest call "
            f"({result.latency_max:.2f} s), not the sum ({result.latency_sum:.2f} s).",
            f"Seed {result.seed}. Run again without --seed: another agent may be the survivor.",
        ],
    )
