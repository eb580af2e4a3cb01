"""rate_limit.py: all agents gathered, at most N model calls in flight (asyncio.Semaphore).

Model providers cap concurrent requests (and requests per minute). An
`asyncio.Semaphore(N)` lets N agents into the model call at once; the others
wait (dots in the timeline) until a slot frees. The run takes about as long
as the calls packed into N lanes. A Semaphore limits how many run at once; it
does not make an update safe. Here the update is safe for another reason: it
happens after the await, with no await inside (as in gather_await_first.py).
A limit per minute needs a token bucket on top; this script shows the cap on
calls in flight.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.scenarios import lesson02
from racefree.scenarios.script import flow_script

if __name__ == "__main__":
    flow_script(
        __doc__,
        lesson02.run_rate_limited,
        extra={"limit": (2, "at most N model calls at once")},
        intro=lambda args: (
            f"{len(args.names)} async agents, at most {args.extra['limit']} model calls at a time."
        ),
        closing=lambda result: [
            f"At most {result.extra['max_in_flight']} calls were in flight at once "
            f"(limit {result.extra['limit']}).",
            f"Total time {result.wall_seconds:.2f} s: between the slowest call "
            f"({result.latency_max:.2f} s) and the sum ({result.latency_sum:.2f} s).",
        ],
    )
