"""Lesson 03: four ways to make the lesson-01 agents safe, on the same workload.

The agents are in ``examples/03-thread-safety/fix_*.py``; this module runs
those scripts (loaded by path) and holds what the comparison says about them.

1. **A lock** around each read-modify-write (``fix_lock.py``).
2. **Atomic deltas with reducers**: each agent hands the store what it adds;
   the store merges it in one step (``Store.apply``).
3. **Optimistic versions with retry**: read the session with its version,
   call the model, save only if the version is unchanged
   (``Store.compare_and_set``); on a conflict, re-read and redo the update.
4. **A single writer fed by a queue** (an actor): agents only send their
   replies; one thread owns the session and applies them in order.

Every fix runs the model calls in parallel; they differ in what they cost and
where they fit, which :data:`FIXES` spells out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from racefree.scenarios.course import load, new_seed, run_script
from racefree.scenarios.result import ScenarioResult

__all__ = [
    "FIXES",
    "LESSON",
    "Fix",
    "code_lines",
    "compare_fixes",
    "comparison_json",
    "run_actor",
    "run_fix",
    "run_lock",
    "run_optimistic",
    "run_reducers",
]

LESSON = "03-thread-safety"


def _runner(script: str, title: str) -> Callable[..., ScenarioResult]:
    def run(
        names: list[str], *, seed: int | None = None, time_scale: float = 1.0
    ) -> ScenarioResult:
        return run_script(LESSON, script, names, seed=seed, time_scale=time_scale, title=title)

    run.__name__ = f"run_{script.removeprefix('fix_')}"
    run.__doc__ = f"``{script}.py``: {title}."
    return run


run_lock = _runner("fix_lock", "a lock")
run_reducers = _runner("fix_reducers", "atomic deltas")
run_optimistic = _runner("fix_optimistic", "versions + retry")
run_actor = _runner("fix_actor", "single writer")


@dataclass(frozen=True)
class Fix:
    """One fix: how to run it, its agent code, what it costs and where it fits."""

    name: str
    run: Callable[..., ScenarioResult]
    script: str
    agent_code: tuple[str | Callable[..., Any], ...]  # names in the script, or functions
    cost: str
    fits: str

    def module(self) -> ModuleType:
        """The fix's lesson script, loaded by path."""
        return load(LESSON, self.script)


FIXES = (
    Fix(
        "a lock",
        run_lock,
        "fix_lock",
        ("agent",),
        "Agents queue for the lock; hold it across a model call and they run one at a time. "
        "Works only inside one process.",
        "Small shared state in one process, updates that are quick and local.",
    ),
    Fix(
        "atomic deltas",
        run_reducers,
        "fix_reducers",
        ("agent",),
        "Every update must be expressible as a delta with a merge rule (append, add, merge).",
        "Agents that each contribute a part: histories, counters, per-agent results.",
    ),
    Fix(
        "versions + retry",
        run_optimistic,
        "fix_optimistic",
        ("agent", "with_reply"),
        "No waiting, but every conflict means re-reading and redoing the update; under heavy "
        "contention the retries pile up.",
        "Rare conflicts, or a whole document that must be checked before it is saved.",
    ),
    Fix(
        "single writer",
        run_actor,
        "fix_actor",
        ("agent", "writer"),
        "One more thread and a queue; readers see a reply only once the writer applied it.",
        "Many producers, one consumer; ordering and validation in one place.",
    ),
)
"""The four fixes, in the order the lesson presents them."""


def run_fix(
    fix: Fix, names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """Run one of :data:`FIXES` on the lesson-01 workload."""
    return fix.run(names, seed=seed, time_scale=time_scale)


def code_lines(fix: Fix) -> int:
    """Lines of the fix's agent code: signatures and statements.

    Docstrings and comments are not counted (nor any ``something.record(...)``
    statement, which would only draw a timeline): they are not part of the fix.
    """
    import ast
    import inspect
    import textwrap

    total = 0
    for name in fix.agent_code:
        part = getattr(fix.module(), name) if isinstance(name, str) else name
        function = ast.parse(textwrap.dedent(inspect.getsource(part))).body[0]
        assert isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        body = function.body
        lines = set(range(function.lineno, body[0].lineno))  # the signature
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        for statement in ast.walk(ast.Module(body=body, type_ignores=[])):
            if not isinstance(statement, ast.stmt) or _records(statement):
                continue
            if isinstance(statement, (ast.With, ast.While, ast.If, ast.Try, ast.For)):
                lines.add(statement.lineno)  # its body's statements count themselves
                continue
            lines.update(range(statement.lineno, (statement.end_lineno or statement.lineno) + 1))
        total += len(lines)
    return total


def _records(statement: Any) -> bool:
    """True for a ``something.record(...)`` statement."""
    import ast

    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Call)
        and isinstance(statement.value.func, ast.Attribute)
        and statement.value.func.attr == "record"
    )


def compare_fixes(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> list[tuple[Fix, ScenarioResult]]:
    """Every fix on the same agents and the same latencies (one seed for all)."""
    chosen = new_seed(seed)
    return [(fix, run_fix(fix, names, seed=chosen, time_scale=time_scale)) for fix in FIXES]


def comparison_json(runs: list[tuple[Fix, ScenarioResult]]) -> dict[str, Any]:
    """The comparison as one JSON object (the lesson README documents the keys)."""
    results = [result for _, result in runs]
    return {
        "scenario": "compare_fixes",
        "agents": results[0].agents,
        "seed": results[0].seed,
        "time_scale": results[0].time_scale,
        "wall_seconds": round(sum(r.wall_seconds for r in results), 4),
        "expected": {fix.name: r.expected for fix, r in runs},
        "actual": {fix.name: r.actual for fix, r in runs},
        "lost_updates": sum(r.lost_updates for r in results),
        "consistent": all(r.consistent for r in results),
        "fixes": [
            {
                "fix": fix.name,
                "agent_code_lines": code_lines(fix),
                "retries": result.extra.get("retries", 0),
                "cost": fix.cost,
                "fits": fix.fits,
                **result.to_json(),
            }
            for fix, result in runs
        ],
    }
