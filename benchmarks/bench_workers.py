"""Exploration on every core: the same exploration with 1 and 2 worker processes.

    .venv/bin/python benchmarks/bench_workers.py [--repeat 2]

Prints one table (figures in docs/benchmarks.md; nothing here is a test): for
each workflow and strategy, the wall time of ``explore()`` in this process
(``workers=1``) and with ``workers=2`` (two fresh interpreters, one CPU each,
the parent replaying nothing: these workflows pass), the speedup, and a
check that both ran the same number of runs and distinct orderings (the
split must change the speed, not the result). Wall time includes starting
the workers (a new interpreter importing racefree and the workflow), which
is why short explorations gain little. Best of ``--repeat`` for every cell
(one and two workers alternated), on a machine that may be shared (the load
average is printed).

Workflows: lesson 01's fix (3 agents; ``racefree.explore.lessons:locked``)
and the same script with 24 agents, defined here at module level so that a
worker can load it from this script (a worker loads a workflow by name).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from racefree.explore import Exploration, explore, lessons
from racefree.scenarios import lesson01
from racefree.scenarios.course import play_script
from racefree.scenarios.llm import agent_names

AGENTS_24 = agent_names(24)


def fix_24_agents() -> Any:
    """Lesson 01's fix (simple_fix.py) with 24 agents: every one keeps its reply."""
    return play_script(lesson01.LESSON, "simple_fix", AGENTS_24, seed=1)


def timed(
    workflow: Callable[[], Any], target: str, workers: int, **options: Any
) -> tuple[float, float, Exploration]:
    """Wall seconds, CPU seconds of every process involved, and the result."""
    start, cpu = time.perf_counter(), _cpu()
    result = explore(workflow, workers=workers, target=target, save_dir=None, **options)
    return time.perf_counter() - start, _cpu() - cpu, result


def _cpu() -> float:
    """CPU seconds of this process and of its ended children (the workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    repeat = parser.parse_args().repeat
    script = Path(__file__).resolve().as_posix()  # a worker loads fix_24_agents from here
    lesson = ("lesson 01 fix, 3 agents", lessons.locked, "racefree.explore.lessons:locked")
    checked = {"invariants": [lessons.nothing_lost]}
    cases: list[tuple[str, Callable[[], Any], str, dict[str, Any]]] = [
        (*lesson, {"strategy": name, "schedules": budget, **checked})
        for name, budget in (
            ("random", 4000),
            ("pct", 4000),
            ("exhaustive", 20_000),
            ("auto", 4000),
        )
    ]
    cases.append(
        (
            "lesson 01 fix, 24 agents",
            fix_24_agents,
            f"{script}:fix_24_agents",
            {"strategy": "random", "schedules": 1000, **checked},
        )
    )
    print(
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; best of {repeat}.\n"
    )
    print(
        "| workflow | strategy | runs | 1 worker s | 2 workers s | speedup "
        "| CPU s, 1 worker | CPU s, 2 workers | same counts |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for label, workflow, target, options in cases:
        ones, twos = [], []
        for _ in range(repeat):  # alternated, so that both see the same load on the machine
            ones.append(timed(workflow, target, 1, **options))
            twos.append(timed(workflow, target, 2, **options))
        one, two = min(ones, key=first), min(twos, key=first)
        counts = [(r.runs, r.distinct, r.ok) for r in (one[2], two[2])]
        same = counts[0] == counts[1]
        print(
            f"| {label} | {options['strategy']} | {one[2].runs:,} | {one[0]:.2f} | {two[0]:.2f} "
            f"| {one[0] / two[0]:.2f}x | {min(o[1] for o in ones):.2f} "
            f"| {min(t[1] for t in twos):.2f} | {'yes' if same else 'NO'} |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def first(measured: tuple[float, float, Exploration]) -> float:
    return measured[0]


if __name__ == "__main__":
    main()
