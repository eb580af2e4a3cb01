"""Checker time against history length: is it linear, and is 1,000,000 events under 10 s?

    .venv/bin/python benchmarks/bench_checker.py [--sizes 10000 100000 1000000] [--repeat 1]

Each history is a realistic mix from 16 agents interleaved at random
(seeded): read-call-overwrite of shared keys (some of them lost updates and
race windows), user/assistant turns appended to conversations, store-style
gets, increments, claims and tool-call messages. Only ``racefree.check``
is timed, not building the events; one core, the best of ``--repeat`` runs.
Figures are recorded in docs/benchmarks.md; nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections.abc import Iterator

import racefree
from racefree import Event

AGENTS = [f"agent-{i}" for i in range(16)]


def _steps(rng: random.Random, name: str) -> Iterator[tuple[str, str | None, object, dict]]:
    """One agent's endless script: (op, key, value, meta) tuples."""
    n = 0
    while True:
        n += 1
        choice = rng.random()
        if choice < 0.35:  # the lesson-01 bug: read, think, overwrite
            key = f"doc-{rng.randrange(2000)}"
            yield "read", key, None, {}
            yield "call", None, "llm", {}
            yield "write", key, f"{name} draft {n}", {}
        elif choice < 0.6:  # a turn on one of a few conversations
            chat = f"chat-{rng.randrange(50)}"
            yield "append", chat, {"role": "user", "content": f"q{n}"}, {}
            yield "call", None, "llm", {}
            yield "append", chat, {"role": "assistant", "content": f"a{n}"}, {}
        elif choice < 0.8:  # store-style atomic ops
            yield "get", "stats", None, {}
            yield "increment", "completed", n, {}
            yield "claim", f"task-{n}-{name}", name, {}
        else:  # a tool call and its result, one atomic turn
            call_id = f"{name}-{n}"
            message = {"role": "assistant", "tool_calls": [{"id": call_id}]}
            result = {"role": "tool", "tool_call_id": call_id}
            yield "append_turn", f"tools-{name}", [message, result], {}


def build(size: int, seed: int = 0) -> list[Event]:
    """``size`` events from the agents, interleaved at random."""
    rng = random.Random(seed)
    scripts = {name: _steps(random.Random(f"{seed}:{name}"), name) for name in AGENTS}
    versions: dict[str, int] = {}
    events = []
    for seq in range(size):
        name = AGENTS[rng.randrange(len(AGENTS))]
        op, key, value, meta = next(scripts[name])
        version_read = version_written = None
        if key is not None:
            version_read = versions.get(key, 0)
            if op not in ("read", "get"):
                version_written = version_read + 1
                versions[key] = version_written
        events.append(
            Event(seq, seq * 1e-5, name, op, key, version_read, version_written, value, meta)
        )
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    print(
        f"racefree {racefree.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, nproc {os.cpu_count()}, one core"
    )
    rows = []
    for size in args.sizes:
        events = build(size)
        best = float("inf")
        report = None
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = racefree.check(events)
            best = min(best, time.perf_counter() - start)
        assert report is not None
        rows.append(
            (
                f"{size:,}",
                f"{best:.2f}",
                f"{size / best:,.0f}",
                f"{best / size * 1e6:.2f}",
                f"{len(report.errors):,}",
                f"{len(report.warnings):,}",
            )
        )
        sys.stdout.flush()
    headers = ("events", "seconds", "events/s", "us/event", "errors", "warnings")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * (w - 1) + ":" for w in widths) + " |")
    for row in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
