"""workers.py: agents as separate worker processes sharing one store: lost updates, then the fix.

Every agent is its own OS process (on paper, its own host). The broken agents
read the session with get(), call the model, and write their copy back with
set(): a lock inside one process cannot help, each process has its own. The
fixed agents hand the store a delta with apply(): reducers merge it in one
atomic step on the server (Redis) or the file (SQLite), with an idempotency key.

    python workers.py --agents 4 --store redis://127.0.0.1:6379/0
    python workers.py --agents 4 --store sqlite:///agents.db
"""

import _lesson

from racefree.scenarios.processes import run_processes
from racefree.scenarios.script import parse_lesson_args, print_json

if __name__ == "__main__":
    args = parse_lesson_args(
        __doc__,
        min_agents=2,
        max_agents=16,
        default_time_scale=0.25,
        extra_text=_lesson.STORE_OPTION,
    )
    seed = 0 if args.seed is None else args.seed
    with (
        _lesson.script_errors(),
        _lesson.shared_store(args.extra_text["store"], quiet=args.json) as url,
    ):
        run = run_processes(args.names, url, seed=seed, time_scale=args.time_scale)
    if args.json:
        print_json(run.to_json())
    else:
        for text, _ in run.lines(header="workers.py (lesson 05)"):
            print(text)
