"""broken_sequential.py: agents take turns on one shared session. Safe, and slow.

Each agent reads the session, waits for a (simulated) model call, and writes
back its copy plus its own entry. One at a time, that is correct: every agent
reads what the previous one wrote. The total time is the sum of all the model
calls. The agent code is `unsafe_agent` in src/racefree/scenarios/lesson01.py;
broken_parallel.py runs the very same code in threads.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.report.terminal import Printer, show_flow
from racefree.scenarios import lesson01
from racefree.scenarios.script import parse_lesson_args, print_json


def main() -> None:
    args = parse_lesson_args(__doc__)
    if not args.json:
        print(f"{len(args.names)} agents, one after another; each model call takes 1-3 s")
        print(f"x {args.time_scale}. Running...")
    result = lesson01.run_sequential(args.names, seed=args.seed, time_scale=args.time_scale)
    if args.json:
        print_json(result.to_json())
        return
    out = Printer()
    show_flow(out, result)
    out.line(
        f"Total time {result.wall_seconds:.2f} s: about the sum of the model calls "
        f"({result.latency_sum:.2f} s), because each agent waited for the previous one."
    )
    out.line(f"Seed {result.seed}: add --seed {result.seed} to get the same latencies again.")


if __name__ == "__main__":
    main()
