"""compare_fixes.py: four fixes for lesson 01's lost updates, side by side.

The same agents, the same model latencies (one seed for all four), the same
shared session; only the way the update is protected differs:
  a lock             (fix_lock.py)
  atomic deltas      (fix_reducers.py)
  versions + retry   (fix_optimistic.py)
  single writer      (fix_actor.py)
All four keep every agent's work and the parallel speed. The table shows what
each costs: retries, lines of agent code, and where it fits.
"""

import _lesson  # noqa: F401  (lets this run from a clone with nothing installed)

from racefree.report.terminal import Printer
from racefree.scenarios import lesson03
from racefree.scenarios.script import parse_lesson_args, print_json


def main() -> None:
    args = parse_lesson_args(__doc__, default_time_scale=0.5)
    runs = lesson03.compare_fixes(args.names, seed=args.seed, time_scale=args.time_scale)
    if args.json:
        print_json(lesson03.comparison_json(runs))
        return
    out = Printer()
    first = runs[0][1]
    out.line(
        f"{len(args.names)} agents, model calls 1-3 s x {args.time_scale}, seed {first.seed}: "
        f"{first.latency_sum:.2f} s of calls in all, the slowest {first.latency_max:.2f} s."
    )
    rows = [
        (
            fix.name,
            f"{result.wall_seconds:.2f} s",
            f"{result.actual['history_entries']} of {result.expected['history_entries']}",
            "yes" if result.consistent else "NO",
            str(result.extra.get("retries", 0)),
            str(lesson03.code_lines(fix)),
        )
        for fix, result in runs
    ]
    headers = ("fix", "wall time", "entries kept", "consistent", "retries", "agent code lines")
    out.table(headers, rows, bad_column=3)
    for fix, _ in runs:
        out.line()
        out.line(fix.name, "bold")
        out.line(f"  costs: {fix.cost}")
        out.line(f"  fits:  {fix.fits}")


if __name__ == "__main__":
    main()
