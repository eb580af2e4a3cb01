"""simple_fix.py: parallel and safe. A lock makes each read-modify-write one step.

The model call, the slow part, still runs in parallel with no lock held. Only
the update of the shared session (append to the history, add to the counters)
happens under a threading.Lock, so no agent can read between another's read
and write. The agents report progress through a queue.Queue that the main
thread prints: output from many threads is shared state too. The agent code is
`locked_agent` in src/racefree/scenarios/lesson01.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)

from racefree.report.terminal import Printer, show_flow
from racefree.scenarios import LLMReply, lesson01
from racefree.scenarios.script import parse_lesson_args, print_json


def main() -> None:
    args = parse_lesson_args(__doc__, history=True)
    out = Printer()

    def progress(agent: str, reply: LLMReply, elapsed: float) -> None:
        if not args.json:
            out.line(f"  {elapsed:6.2f} s  {agent} finished ({reply.tokens} tokens)")

    if not args.json:
        print(f"{len(args.names)} agents in parallel threads, updates under a lock. Running...")
    result = lesson01.run_simple_fix(
        args.names, seed=args.seed, time_scale=args.time_scale, on_progress=progress
    )
    speedup = result.latency_sum / result.wall_seconds
    if args.history is not None:
        result.history.to_jsonl(args.history)
    if args.json:
        print_json({**result.to_json(), "speedup": round(speedup, 2)})
        return
    show_flow(out, result)
    out.line(
        f"Total time {result.wall_seconds:.2f} s against {result.latency_sum:.2f} s for the same "
        f"calls one after another (their sum): {speedup:.1f}x faster."
    )
    if args.history is not None:
        out.line(f"History saved to {args.history}: check it with `racefree check {args.history}`.")


if __name__ == "__main__":
    main()
