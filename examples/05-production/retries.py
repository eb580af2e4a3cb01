"""retries.py: a write whose answer times out is retried; an idempotency key makes it count once.

A worker appends its reply; the store applies it, but the answer is lost on
the way back (a timeout, a dropped connection). The worker cannot know
whether the write happened, so it retries. Without an idempotency key the
retry appends a duplicate; with one, the store (SQLite or Redis) recorded
the first result in the same atomic step and answers the retry with it.

    python retries.py --store redis://127.0.0.1:6379/0
"""

import _lesson

from racefree.scenarios.processes import retried_append
from racefree.scenarios.script import parse_lesson_args, print_json

if __name__ == "__main__":
    url = _lesson.store_from_argv()
    args = parse_lesson_args(__doc__)
    runs = [retried_append(url, use_key=False), retried_append(url, use_key=True)]
    if args.json:
        print_json({"scenario": "retries", "runs": runs})
    else:
        for run in runs:
            how = "with an idempotency key" if run["idempotency_key"] else "without a key"
            print(
                f"{how}: {run['attempts']} attempts, {len(run['stored'])} entr"
                f"{'y' if len(run['stored']) == 1 else 'ies'} stored"
                + ("" if len(run["stored"]) == 1 else "  <- a duplicate")
            )
