"""Lesson 03: four ways to make the lesson-01 agents safe, on the same workload.

1. **A lock** around each read-modify-write (lesson 01's ``locked_agent``).
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

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from racefree.agent import agent
from racefree.errors import ConflictError
from racefree.history import History
from racefree.scenarios.lesson01 import (
    HISTORY,
    Session,
    add_reply,
    flow_result,
    locked_agent,
    new_seed,
    new_session,
)
from racefree.scenarios.lesson02 import SESSION_REDUCERS, session_from_store
from racefree.scenarios.llm import LLMReply, SimulatedLLM
from racefree.scenarios.result import ScenarioResult
from racefree.state import Store, open_store

__all__ = [
    "FIXES",
    "Fix",
    "actor_agent",
    "code_lines",
    "compare_fixes",
    "comparison_json",
    "optimistic_agent",
    "reducer_agent",
    "run_actor",
    "run_fix",
    "run_lock",
    "run_optimistic",
    "run_reducers",
    "session_writer",
]

SESSION = "session"


# --- The agents -------------------------------------------------------------


def reducer_agent(name: str, store: Store, llm: SimulatedLLM) -> None:
    """Fix 2: call the model, then hand the store a delta; its reducers merge it atomically."""
    reply = llm.call(name)
    store.apply(
        {
            HISTORY: [{"agent": name, "content": reply.text}],
            "total_tokens": reply.tokens,
            "completed": 1,
            "agent_results": {name: reply.text},
        }
    )


def optimistic_agent(name: str, store: Store, llm: SimulatedLLM, history: History) -> int:
    """Fix 3: read with a version, call the model, save only if nobody saved meanwhile.

    Returns how many saves were refused (each one a retry).
    """
    session, version = store.get_versioned(SESSION)
    reply = llm.call(name)
    refused = 0
    while True:
        updated = _with_reply(session, name, reply)
        try:
            store.compare_and_set(SESSION, updated, expected_version=version)
            return refused
        except ConflictError as conflict:  # someone saved first: redo it on their session
            history.record("conflict", SESSION, version_read=conflict.expected)
            refused += 1
            session, version = store.get_versioned(SESSION)


def _with_reply(session: Session, name: str, reply: LLMReply) -> Session:
    """A new session: ``session`` plus this agent's reply (the input is left alone)."""
    metadata = session["metadata"]
    return {
        HISTORY: [*session[HISTORY], {"agent": name, "content": reply.text}],
        "agent_results": {**session["agent_results"], name: reply.text},
        "agent_status": {**session["agent_status"], name: "done"},
        "metadata": {
            "total_tokens": metadata["total_tokens"] + reply.tokens,
            "completed": metadata["completed"] + 1,
        },
    }


def actor_agent(
    name: str, llm: SimulatedLLM, inbox: queue.Queue[tuple[str, LLMReply] | None]
) -> None:
    """Fix 4: call the model and send the reply; never touch the session."""
    inbox.put((name, llm.call(name)))


def session_writer(
    session: Session, inbox: queue.Queue[tuple[str, LLMReply] | None], history: History
) -> None:
    """The one thread that owns the session: apply each reply in arrival order until None."""
    while (message := inbox.get()) is not None:
        name, reply = message
        add_reply(name, session, reply, history, how="through the single writer")


# --- The runs -----------------------------------------------------------------


def _pool(names: list[str], work: Callable[[str], object]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="agent") as pool:
        for future in [pool.submit(work, name) for name in names]:
            future.result()
    return time.perf_counter() - start


def _as_agent(history: History, work: Callable[[str], None]) -> Callable[[str], None]:
    def run(name: str) -> None:
        with agent(name):
            history.record("call")
            work(name)

    return run


def run_lock(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """Fix 1: lesson 01's locked agent."""
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()
    lock = threading.Lock()
    wall = _pool(names, lambda name: locked_agent(name, session, lock, llm, history))
    return flow_result("fix_lock", "a lock", names, llm, session, history, wall)


def run_reducers(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """Fix 2: atomic deltas merged by reducers."""
    llm, history = SimulatedLLM(new_seed(seed), time_scale), History()
    store = open_store("memory://", history=history, reducers=SESSION_REDUCERS)
    wall = _pool(names, _as_agent(history, lambda name: reducer_agent(name, store, llm)))
    session = session_from_store({key: item.value for key, item in store.snapshot().items()})
    return flow_result("fix_reducers", "atomic deltas", names, llm, session, history, wall)


def run_optimistic(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """Fix 3: optimistic versions with retry; ``extra["retries"]`` counts the conflicts."""
    llm, history = SimulatedLLM(new_seed(seed), time_scale), History()
    store = open_store("memory://", history=history)
    store.set(SESSION, new_session())
    retries: list[int] = []
    wall = _pool(
        names,
        _as_agent(history, lambda n: retries.append(optimistic_agent(n, store, llm, history))),
    )
    result = flow_result(
        "fix_optimistic", "versions + retry", names, llm, store.get(SESSION), history, wall
    )
    result.extra["retries"] = sum(retries)
    return result


def run_actor(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """Fix 4: one writer thread owns the session; agents send replies through a queue."""
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()
    inbox: queue.Queue[tuple[str, LLMReply] | None] = queue.Queue()
    writer = threading.Thread(target=session_writer, args=(session, inbox, history))
    writer.start()
    try:
        wall = _pool(names, _as_agent(history, lambda name: actor_agent(name, llm, inbox)))
    finally:
        inbox.put(None)  # the writer drains what is queued, then stops
        writer.join()
    return flow_result("fix_actor", "single writer", names, llm, session, history, wall)


@dataclass(frozen=True)
class Fix:
    """One fix: how to run it, its agent code, what it costs and where it fits."""

    name: str
    run: Callable[..., ScenarioResult]
    agent_code: tuple[Callable[..., Any], ...]
    cost: str
    fits: str


FIXES = (
    Fix(
        "a lock",
        run_lock,
        (locked_agent, add_reply),
        "Agents queue for the lock; hold it across a model call and they run one at a time. "
        "Works only inside one process.",
        "Small shared state in one process, updates that are quick and local.",
    ),
    Fix(
        "atomic deltas",
        run_reducers,
        (reducer_agent,),
        "Every update must be expressible as a delta with a merge rule (append, add, merge).",
        "Agents that each contribute a part: histories, counters, per-agent results.",
    ),
    Fix(
        "versions + retry",
        run_optimistic,
        (optimistic_agent, _with_reply),
        "No waiting, but every conflict means re-reading and redoing the update; under heavy "
        "contention the retries pile up.",
        "Rare conflicts, or a whole document that must be checked before it is saved.",
    ),
    Fix(
        "single writer",
        run_actor,
        (actor_agent, session_writer, add_reply),
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

    Docstrings, comments and the ``history.record(...)`` calls that draw the
    lesson's timeline are not counted: they are not part of the fix.
    """
    import ast
    import inspect
    import textwrap

    total = 0
    for part in fix.agent_code:
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
