"""race_condition_demo.py: four races forced to happen on every run, step by step.

Real threads, real shared dicts and lists; a Choreography (threading.Condition)
only picks the order in which the agents take their steps, so the bad
interleaving that natural timing shows once in a while happens every time:
(a) a counter read before a model call and written after it;
(b) a history copied, extended and reassigned;
(c) check-then-act: every agent sees a task free and claims it;
(d) turns whose two appends interleave although each append is atomic.
Then 8 threads call list.append 100,000 times each, unforced: nothing is lost.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.report.terminal import Printer, show_forced
from racefree.scenarios import lesson01
from racefree.scenarios.script import parse_lesson_args, print_json


def main() -> None:
    # The order is forced, so latency changes nothing here but the run time:
    # the default scale is 0.1 (0.1 to 0.3 s per model call).
    args = parse_lesson_args(__doc__, min_agents=2, default_time_scale=0.1)
    seed = args.seed if args.seed is not None else 0
    results = lesson01.run_race_condition_demo(args.names, seed=seed, time_scale=args.time_scale)
    if args.json:
        print_json(lesson01.combine("race_condition_demo", results))
        return
    out = Printer()
    for result in results:
        show_forced(out, result)
    out.line()
    out.line(
        "Each lost update above is the same shape: read, do something slow, write a value "
        "computed from the read. A lock around the whole read-modify-write, or an atomic "
        "operation that does it in one step, prevents all four (see simple_fix.py)."
    )


if __name__ == "__main__":
    main()
