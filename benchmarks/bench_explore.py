"""Explorer benchmark: schedules per second, time to find a race, against stress testing.

Prints a table; not a timed test. Run it from a clone:

    .venv/bin/python benchmarks/bench_explore.py

Rows:
- schedules/s exploring the 3-agent lesson-01 workflow (threads, thread pool,
  simulated model calls), per strategy, checker off and on;
- time until the explorer reports the lesson-01 lost update;
- time until stress testing (real threads, real sleeps at 1/100 of the model
  latency, 4 runs at once) sees the same race;
- the same two for a race that natural timing hides (a slow model call that
  "always" answers last).
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from racefree.explore import explore, lessons
from racefree.explore.stress import stress
from racefree.scenarios import lesson01

SCHEDULES = 2000


def rate(workflow: Any, strategy: str, check: bool) -> float:
    result = explore(
        workflow,
        schedules=SCHEDULES,
        strategy=strategy,
        check=check,
        keep_going=True,
        shrink=False,
        save_dir=None,
    )
    return result.runs / result.wall_seconds


def time_to_find(workflow: Any, invariant: Any, repeat: int = 3) -> float:
    """Best of ``repeat`` (the first exploration of a process also loads the lesson)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = explore(workflow, invariants=[invariant], shrink=False, save_dir=None)
        assert result.failure is not None
        times.append(time.perf_counter() - start)
    return min(times)


def real_lesson01() -> dict[str, Any]:
    return lesson01.run_broken_parallel(lessons.NAMES, seed=1, time_scale=0.01).final_state


async def hidden() -> list[str]:
    """The summary must follow the research; a slow model makes it look as if it always does."""
    log: list[str] = []

    async def researcher() -> None:
        await asyncio.sleep(0.005)
        log.append("research")

    async def summarizer() -> None:
        await asyncio.sleep(0.030)
        log.append("summary")

    await asyncio.gather(researcher(), summarizer())
    return log


def in_order(log: list[str]) -> bool:
    return log == ["research", "summary"]


def stress_time(workflow: Any, invariant: Any, runs: int) -> str:
    result = stress(workflow, runs=runs, parallel=4, invariants=[invariant], stop_at_first=True)
    if result.first_failure_seconds is None:
        return f"not found in {result.runs} runs ({result.wall_seconds:.2f} s)"
    return f"{result.first_failure_seconds * 1000:.1f} ms"


def main() -> None:
    rows = [
        (
            f"schedules/s, lesson 01 broken (3 agents), random, checker off ({SCHEDULES:,} runs)",
            f"{rate(lessons.unsafe, 'random', False):,.0f}",
        ),
        ("schedules/s, same, pct (depth 3)", f"{rate(lessons.unsafe, 'pct', False):,.0f}"),
        (
            "schedules/s, lesson 01 fixed (3 agents), random, checker on",
            f"{rate(lessons.locked, 'random', True):,.0f}",
        ),
        (
            "explorer: time to find the lesson-01 lost update",
            f"{time_to_find(lessons.unsafe, lessons.nothing_lost) * 1000:.1f} ms",
        ),
        (
            "stress (real threads, sleeps x0.01): same race",
            stress_time(real_lesson01, lessons.nothing_lost, 40),
        ),
        (
            "explorer: time to find a slow agent answering first",
            f"{time_to_find(hidden, in_order) * 1000:.1f} ms",
        ),
        ("stress: same race", stress_time(hidden, in_order, 200)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  ------")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(
        f"\nPython {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}"
    )


if __name__ == "__main__":
    main()
