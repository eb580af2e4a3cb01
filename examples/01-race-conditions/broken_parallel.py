"""broken_parallel.py: the same agents in parallel threads. Fast, and work is lost.

This runs exactly the agent code of broken_sequential.py (`unsafe_agent` in
src/racefree/scenarios/lesson01.py) in a ThreadPoolExecutor. Every agent reads
the session before its model call and writes its copy back after it, so each
write replaces the writes that landed while it was waiting. Every run loses
work; which agent's work survives depends on who finishes last.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.report.terminal import Printer, show_flow
from racefree.scenarios import lesson01
from racefree.scenarios.script import parse_lesson_args, print_json


def main() -> None:
    args = parse_lesson_args(__doc__, min_agents=2)
    if not args.json:
        print(f"{len(args.names)} agents in parallel threads; each model call takes 1-3 s")
        print(f"x {args.time_scale}. Running...")
    result = lesson01.run_broken_parallel(args.names, seed=args.seed, time_scale=args.time_scale)
    if args.json:
        print_json(result.to_json())
        return
    out = Printer()
    show_flow(out, result)
    out.line(
        f"agent_results still has all {result.actual['results']} entries: each agent set its own "
        "key with one assignment and no one wrote that dict back from a copy."
    )
    out.line(
        f"Total time {result.wall_seconds:.2f} s: about the slowest call "
        f"({result.latency_max:.2f} s), not the sum ({result.latency_sum:.2f} s)."
    )
    out.line(
        f"Seed {result.seed}. Run again without --seed: another agent may be the one that survives."
    )


if __name__ == "__main__":
    main()
