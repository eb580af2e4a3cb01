"""rate_limit.py: a concurrency limit across worker processes: at most N model calls in flight.

A semaphore in one process limits only that process. Here the limit lives in
the shared store: N slot keys, and claim() gives each slot to exactly one
worker at a time (check-then-act made safe); a worker releases its slot with
set(slot, None) after its model call. The store's log shows the peak.

This caps calls in flight at once (concurrency), not calls per minute (a rate
limit), and its slots never expire: a worker that crashes holding a slot
keeps it forever. A production version gives each slot a lease that expires.

    python rate_limit.py --agents 6 --slots 2 --store sqlite:///agents.db
"""

import sys
import time

import _lesson
from workers import start_processes  # noqa: F401  (starts the agents: see workers.py)

import racefree
from racefree.scenarios.processes import CONCURRENCY_NOT_RATE, run_concurrency_limited
from racefree.scenarios.script import parse_lesson_args, print_json


def limited_agent(name, url, prefix, seed, time_scale, start):
    """Call the model only while holding one of the shared slots."""
    store = racefree.open_store(url)
    llm = racefree.SimulatedLLM(seed, time_scale)
    slots = store.get(prefix + "slots")
    start.wait()
    while True:  # find a free slot; claim() is true for exactly one caller
        slot = next((s for s in range(slots) if store.claim(f"{prefix}slot:{s}", name)), None)
        if slot is not None:
            break
        time.sleep(0.01 * time_scale)  # all taken: wait a little, then look again
    store.append(prefix + "log", ["start", name])
    llm.call(name)
    store.append(prefix + "log", ["end", name])
    store.set(f"{prefix}slot:{slot}", None)  # release; if we crashed first, it stays taken
    store.close()


if __name__ == "__main__":
    args = parse_lesson_args(
        __doc__,
        min_agents=2,
        max_agents=16,
        default_time_scale=0.1,
        extra={"slots": (2, "model calls allowed in flight at once")},
        extra_text=_lesson.STORE_OPTION,
    )
    seed = 0 if args.seed is None else args.seed
    with (
        _lesson.script_errors(),
        _lesson.shared_store(args.extra_text["store"], quiet=args.json) as url,
    ):
        run = run_concurrency_limited(
            args.names,
            url,
            slots=args.extra["slots"],
            seed=seed,
            time_scale=args.time_scale,
            script=sys.modules[__name__],  # this script's own agent
        )
    if args.json:
        print_json(run)
    else:
        print(
            f"Concurrency limit: {len(args.names)} worker processes, {run['slots']} slots: at "
            f"most {run['peak_in_flight']} model calls were in flight at once "
            f"({run['calls']} calls, {run['wall_seconds']:.2f} s)."
        )
        print(CONCURRENCY_NOT_RATE)
