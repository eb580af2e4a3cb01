"""rate_limit.py: at most N model calls in flight across all worker processes.

A semaphore in one process limits only that process. Here the limit lives in
the shared store: N slot keys, and claim() gives each slot to exactly one
worker at a time (check-then-act made safe); a worker releases its slot with
set(slot, None) after its model call. The store's log shows the peak.

    python rate_limit.py --agents 6 --slots 2 --store sqlite:///agents.db
"""

import _lesson

from racefree.scenarios.processes import run_rate_limited
from racefree.scenarios.script import parse_lesson_args, print_json

if __name__ == "__main__":
    url = _lesson.store_from_argv()
    args = parse_lesson_args(
        __doc__,
        min_agents=2,
        max_agents=16,
        default_time_scale=0.1,
        extra={"slots": (2, "model calls allowed in flight at once")},
    )
    seed = 0 if args.seed is None else args.seed
    run = run_rate_limited(
        args.names, url, slots=args.extra["slots"], seed=seed, time_scale=args.time_scale
    )
    if args.json:
        print_json(run)
    else:
        print(
            f"{len(args.names)} worker processes, {run['slots']} slots: at most "
            f"{run['peak_in_flight']} model calls were in flight at once "
            f"({run['calls']} calls, {run['wall_seconds']:.2f} s)."
        )
