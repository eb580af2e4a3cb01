"""``racefree demo``: lesson 01's four scenarios in one go, with a summary."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from racefree.scenarios import lesson01
from racefree.scenarios.result import ScenarioResult

__all__ = ["DemoRun", "run_demo", "run_process_demo"]

#: With this scale a 3-agent demo takes a few seconds; the issue's budget is 20 s.
DEMO_TIME_SCALE = 0.25
PARALLEL_REPEATS = 5


@dataclass
class DemoRun:
    """Everything ``racefree demo`` ran, in order."""

    seed: int
    time_scale: float
    sequential: ScenarioResult
    parallel: list[ScenarioResult]
    fixed: ScenarioResult
    forced: list[ScenarioResult]
    outcomes: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def results(self) -> list[ScenarioResult]:
        """Every result, in the order of the summary table."""
        return [self.sequential, *self.parallel, self.fixed, *self.forced]

    @property
    def distinct_parallel_outcomes(self) -> int:
        """How many different sets of surviving agents the parallel runs ended with."""
        return len(set(self.outcomes))

    def to_json(self) -> dict[str, Any]:
        """The same as the printed summary, as JSON."""
        return {
            "scenario": "demo",
            "seed": self.seed,
            "time_scale": self.time_scale,
            "wall_seconds": round(sum(r.wall_seconds for r in self.results), 4),
            "distinct_parallel_outcomes": self.distinct_parallel_outcomes,
            "results": [r.to_json() for r in self.results],
        }


def run_demo(
    names: list[str],
    *,
    seed: int | None = None,
    time_scale: float = DEMO_TIME_SCALE,
    repeats: int = PARALLEL_REPEATS,
) -> DemoRun:
    """Sequential, ``repeats`` unsafe parallel runs (seeds ``seed``, ``seed + 1``, ...), the fix,
    and the forced interleavings."""
    base = seed if seed is not None else random.SystemRandom().randrange(10**6)
    sequential = lesson01.run_sequential(names, seed=base, time_scale=time_scale)
    parallel = []
    for run in range(repeats):
        result = lesson01.run_broken_parallel(names, seed=base + run, time_scale=time_scale)
        result.title = f"parallel, unsafe #{run + 1}"
        parallel.append(result)
    fixed = lesson01.run_simple_fix(names, seed=base, time_scale=time_scale)
    forced = lesson01.run_race_condition_demo(names, seed=base, time_scale=time_scale * 0.1)
    outcomes = [tuple(sorted(set(names) - set(result.lost_agents))) for result in parallel]
    return DemoRun(base, time_scale, sequential, parallel, fixed, forced, outcomes)


def run_process_demo(
    names: list[str], url: str, *, seed: int | None = None, time_scale: float = DEMO_TIME_SCALE
) -> Any:
    """``racefree demo --store URL``: the broken and the fixed agents as separate processes."""
    from racefree.scenarios.processes import run_processes

    base = seed if seed is not None else random.SystemRandom().randrange(10**6)
    return run_processes(names, url, seed=base, time_scale=time_scale)
