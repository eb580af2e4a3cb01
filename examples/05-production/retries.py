"""retries.py: a write whose answer times out is retried; an idempotency key makes it count once.

A worker appends its reply; the store applies it, but the answer is lost on
the way back (a timeout, a dropped connection). The worker cannot know
whether the write happened, so it sends the same write again. Without an
idempotency key the retry appends a duplicate; with one, the store (SQLite
or Redis) recorded the first result in the same atomic step as the write and
answers the retry with it.

The lost answer is simulated: the store handed to the worker really performs
its first append, then raises TimeoutError instead of answering, as a
network timeout would.

    python retries.py --store redis://127.0.0.1:6379/0
"""

import argparse
import sys

import _lesson

from racefree.scenarios.processes import SIMULATED_TIMEOUT, retried_append
from racefree.scenarios.script import print_json


def write_reply(store, key, message, idempotency_key, attempts=3):
    """Append the reply; when no answer comes back, send the very same write again."""
    for attempt in range(1, attempts + 1):
        try:
            return store.append(key, message, idempotency_key=idempotency_key), attempt
        except TimeoutError:  # did the write happen? the worker cannot tell: retry
            continue
    raise TimeoutError(f"no answer after {attempts} attempts")


if __name__ == "__main__":
    # One writer, no model calls, no randomness: only --store and --json apply here.
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    (metavar, text) = _lesson.STORE_OPTION["store"]
    parser.add_argument("--store", default=None, metavar=metavar, help=text)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    this = sys.modules[__name__]  # this script's own write_reply
    with _lesson.script_errors(), _lesson.shared_store(args.store, quiet=args.json) as url:
        runs = [
            retried_append(url, use_key=False, script=this),
            retried_append(url, use_key=True, script=this),
        ]
    if args.json:
        print_json({"scenario": "retries", "simulated": SIMULATED_TIMEOUT, "runs": runs})
    else:
        print(SIMULATED_TIMEOUT)
        for run in runs:
            how = "with an idempotency key" if run["idempotency_key"] else "without a key"
            print(
                f"{how}: {run['attempts']} attempts, {len(run['stored'])} entr"
                f"{'y' if len(run['stored']) == 1 else 'ies'} stored"
                + ("" if len(run["stored"]) == 1 else "  <- a duplicate")
            )
