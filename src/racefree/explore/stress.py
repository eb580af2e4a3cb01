"""stress(): the baseline. Real threads, real timing, many runs at once, each checked
against the invariants (the workflow's result; there is no recorded history to give
the checker unless the workflow records one itself).

No scheduler, no patches: the workflow runs exactly as in production, with
``parallel`` runs going at the same time to add contention. What it finds
depends on luck and load, which is the point of comparing the explorer with
it; it is also the only tool for code the explorer cannot serialise (work
inside a database server, C extensions).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from racefree.errors import UsageError
from racefree.explore.runner import Failure, _call, _invariant_failures, workflow_name

__all__ = ["StressResult", "stress"]


@dataclass
class StressResult:
    """What a stress test saw: runs, failing runs, time to the first failure."""

    workflow: str
    runs: int
    failed: int
    wall_seconds: float
    first_failure_seconds: float | None
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> list[str]:
        first = (
            f"first failure after {self.first_failure_seconds:.3f} s"
            if self.first_failure_seconds is not None
            else "no failure seen"
        )
        verdict = (
            "A clean stress test proves nothing: explore it to cover the orderings its "
            "timing never produced."
            if self.failed == 0
            else "Explore it to get a failing run you can replay exactly."
        )
        return [
            f"{self.workflow}: {self.runs:,} real runs, {self.failed:,} failing, {first}, "
            f"{self.wall_seconds:.3f} s wall. {verdict}"
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "runs": self.runs,
            "failed": self.failed,
            "wall_seconds": round(self.wall_seconds, 4),
            "first_failure_seconds": self.first_failure_seconds,
            "failures": [f.to_json() for f in self.failures[:5]],
        }


def stress(
    workflow: Callable[[], Any],
    *,
    runs: int = 100,
    parallel: int = 4,
    invariants: Iterable[Callable[[Any], Any]] = (),
    stop_at_first: bool = False,
    on_run: Callable[[int, int, int], None] | None = None,
    name: str | None = None,
) -> StressResult:
    """Run ``workflow`` ``runs`` times for real, ``parallel`` at once, checking each run.

    ``name`` is how the summary names the workflow (the CLI passes ``FILE.py:NAME`` as
    typed); by default, where the function is defined."""
    if runs < 1 or parallel < 1:
        raise UsageError(f"runs and parallel must be at least 1, not {runs} and {parallel}.")
    checks = tuple(invariants)
    call = _call(workflow)
    failures: list[Failure] = []
    first: list[float] = []
    done = [0]
    counting = threading.Lock()  # the runs finish in several threads at once
    start = time.perf_counter()

    def one(_: int) -> None:
        if stop_at_first and first:
            return
        try:
            found = _invariant_failures(checks, call())
        except Exception as exc:
            found = [Failure("exception", f"{type(exc).__name__}: {exc}", [], type(exc).__name__)]
        with counting:
            done[0] += 1
            if found:
                failures.extend(found[:1])
                if not first:
                    first.append(time.perf_counter() - start)
            if on_run is not None:
                on_run(done[0], runs, len(failures))

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="stress") as pool:
        list(pool.map(one, range(runs)))
    wall = time.perf_counter() - start
    return StressResult(
        name or workflow_name(workflow),
        done[0],
        len(failures),
        wall,
        first[0] if first else None,
        failures,
    )
