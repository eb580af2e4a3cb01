"""Strategy benchmark: which strategy finds which shape of bug, and how fast.

Prints a table; not a timed test. Run it from a clone:

    .venv/bin/python benchmarks/bench_strategies.py

For each bug shape and each strategy, over five seeds: the median number of
schedules until the first failure (or how many seeds found nothing within the
budget) and the median wall time to it. For correct workflows: schedules per
second and whether the search was complete. The default strategy ("auto")
was chosen from this table.

Shapes (tests/explore/shapes.py and the lessons):
- lesson 01 broken: three agents load, call, save (a lost update);
- depth 1 behind 20 steps: a reviewer's single look must come after a
  worker's 20 tool calls;
- lost update among noise: two counters race early, four unrelated agents
  then write one busy key many times;
- slow agent first (asyncio, untracked list): a 3 s call must answer before
  a 0.5 s one;
- polling waiter (correct): an agent polls until a slower one answers.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.explore.shapes

from tests.explore import shapes
from tests.explore.test_strategies_on_real_shapes import (
    invisible_order,
    polling_waiter,
    summarised,
)

from racefree.explore import explore, lessons

BUDGET = 1000
SEEDS = range(5)
STRATEGIES = ("auto", "random", "pct", "exhaustive")


def research_first(log: list[str]) -> bool:
    return log == ["research", "summary"]


BUGS: list[tuple[str, Callable[[], Any], Callable[[Any], bool]]] = [
    ("lesson 01 broken (3 agents)", lessons.unsafe, lessons.nothing_lost),
    ("depth 1 behind 20 steps", shapes.long_sequence_then_look, shapes.one_report),
    ("lost update among noise (6 agents)", shapes.lost_update_among_noise, shapes.both_counted),
    ("slow agent first (asyncio, untracked)", invisible_order, research_first),
]


def find(workflow: Callable[[], Any], invariant: Callable[[Any], bool], strategy: str) -> str:
    found: list[int] = []
    seconds: list[float] = []
    ran = 0
    complete = False
    for seed in SEEDS:
        start = time.perf_counter()
        result = explore(
            workflow,
            strategy=strategy,
            seed=seed,
            schedules=BUDGET,
            invariants=[invariant],
            shrink=False,
            save_dir=None,
        )
        ran, complete = max(ran, result.runs), result.complete
        if result.failure is not None:
            found.append(result.failure.found_after)
            seconds.append(time.perf_counter() - start)
    if not found:
        if complete:
            return f"not found: search complete after {ran:,} run(s) (it sees no shared access)"
        return f"not found in {BUDGET:,} (any seed)"
    missed = len(SEEDS) - len(found)
    text = f"{statistics.median(found):,.0f} runs, {statistics.median(seconds) * 1000:.1f} ms"
    return text + (f" ({missed} of {len(SEEDS)} seeds missed)" if missed else "")


def clean(workflow: Callable[[], Any], invariant: Callable[[Any], bool], strategy: str) -> str:
    result = explore(
        workflow, strategy=strategy, schedules=BUDGET, invariants=[invariant], save_dir=None
    )
    verdict = (
        "ok" if result.ok else f"FAILED: {result.failure.failure.title if result.failure else ''}"
    )
    complete = ", complete" if result.complete else ""
    return f"{verdict}{complete}, {result.runs / result.wall_seconds:,.0f} schedules/s"


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    for label, workflow, invariant in BUGS:
        for strategy in STRATEGIES:
            rows.append((label, strategy, find(workflow, invariant, strategy)))
    for strategy in STRATEGIES:
        rows.append(
            ("polling waiter (correct)", strategy, clean(polling_waiter, summarised, strategy))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"{'shape':<{widths[0]}}  {'strategy':<{widths[1]}}  first failure (median of 5 seeds)")
    print(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 34}")
    for shape, strategy, value in rows:
        print(f"{shape:<{widths[0]}}  {strategy:<{widths[1]}}  {value}")
    print(
        f"\nBudget {BUDGET:,} schedules per exploration. Python {platform.python_version()} on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    )


if __name__ == "__main__":
    main()
