"""Lesson 05's runs: agents as separate OS processes sharing one store.

The agents are in ``examples/05-production/*.py`` (``workers.py``:
``broken_agent`` and ``fixed_agent`` and ``start_processes``;
``rate_limit.py``: ``limited_agent``; ``retries.py``: ``write_reply``); the
functions here load those scripts, so that spawned processes can import them
too, run them on a store given by URL, and measure what survived. ``racefree
demo --store URL`` is :func:`run_processes`.

Each run writes under keys of its own (``demo-<id>/...``), so a database
file can be reused across runs.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from racefree.errors import UsageError
from racefree.scenarios.llm import SimulatedLLM
from racefree.scenarios.result import ScenarioResult
from racefree.state import open_store

__all__ = [
    "CONCURRENCY_NOT_RATE",
    "SIMULATED_TIMEOUT",
    "LostAnswer",
    "ProcessRun",
    "retried_append",
    "run_broken_processes",
    "run_concurrency_limited",
    "run_fixed_processes",
    "run_processes",
]

HISTORY = "conversation_history"
EMPTY_SESSION: dict[str, Any] = {
    HISTORY: [],
    "total_tokens": 0,
    "completed": 0,
    "agent_results": {},
}


LESSON = "05-production"


def _script(name: str, given: Any) -> Any:
    """``given``, or lesson 05's script ``name`` loaded so that spawned processes can import it."""
    from racefree.scenarios.course import load

    return given if given is not None else load(LESSON, name, importable=True)


def _check_url(url: str) -> None:
    if url.split("://", 1)[0].lower() == "memory":
        raise UsageError(
            "A memory:// store is private to one process, so separate processes cannot share "
            "it. Use --store sqlite:///demo.db (one machine) or --store redis://host:port/0."
        )


def _run(
    workers: Any, target: Any, names: list[str], url: str, prefix: str, seed: int, scale: float
) -> float:
    began = time.perf_counter()
    failed = workers.start_processes(target, names, url, prefix, seed, scale)
    if failed:
        raise UsageError(
            f"The agent process(es) {', '.join(failed)} failed (see their errors above). "
            f"Check that the store {_shown(url)} can be reached from every process."
        )
    return time.perf_counter() - began


def _shown(url: str) -> str:
    from racefree.state.backends import redact

    return redact(url)


def _result(
    scenario: str,
    title: str,
    names: list[str],
    seed: int,
    scale: float,
    wall: float,
    session: dict[str, Any],
) -> ScenarioResult:
    kept = [entry["agent"] for entry in session[HISTORY]]
    lost = [name for name in names if name not in kept]
    llm = SimulatedLLM(seed, scale)
    latencies = {name: llm.plan(name).latency for name in names}
    n = len(names)
    story = [
        f"{n} agent processes shared one store; {len(kept)} of {n} entries survived"
        + (f": {', '.join(lost)} lost." if lost else ", nothing lost.")
    ]
    return ScenarioResult(
        scenario=scenario,
        agents=names,
        seed=seed,
        time_scale=scale,
        wall_seconds=wall,
        expected={"history entries": n, "completed": n},
        actual={"history entries": len(kept), "completed": session["completed"]},
        measure="history entries",
        lost_updates=n - len(kept),
        lost_agents=lost,
        consistent=not lost and session["completed"] == n,
        title=title,
        latencies=latencies,
        final_state=session,
        story=story,
    )


def run_broken_processes(
    names: list[str], url: str, *, seed: int, time_scale: float, script: Any = None
) -> ScenarioResult:
    """Each agent a process running ``workers.py``'s ``broken_agent``; returns what survived."""
    _check_url(url)
    workers = _script("workers", script)
    prefix = f"demo-{uuid.uuid4().hex[:8]}/"
    with open_store(url) as store:
        store.set(prefix + "session", EMPTY_SESSION)
    wall = _run(workers, workers.broken_agent, names, url, prefix, seed, time_scale)
    with open_store(url) as store:
        session = store.get(prefix + "session")
    return _result(
        "processes_broken", "processes, get + set", names, seed, time_scale, wall, session
    )


def run_fixed_processes(
    names: list[str], url: str, *, seed: int, time_scale: float, script: Any = None
) -> ScenarioResult:
    """Each agent a process running ``workers.py``'s ``fixed_agent``; returns what survived."""
    _check_url(url)
    workers = _script("workers", script)
    prefix = f"demo-{uuid.uuid4().hex[:8]}/"
    wall = _run(workers, workers.fixed_agent, names, url, prefix, seed, time_scale)
    with open_store(url) as store:
        session = {key: store.get(prefix + key, EMPTY_SESSION[key]) for key in EMPTY_SESSION}
    return _result(
        "processes_fixed", "processes, apply + reducers", names, seed, time_scale, wall, session
    )


@dataclass
class ProcessRun:
    """The broken and the fixed agents, each run as separate processes on one store."""

    url: str
    broken: ScenarioResult
    fixed: ScenarioResult

    def lines(self, header: str = "racefree demo") -> list[tuple[str, str | None]]:
        """The report as (text, style) lines; style ``red`` marks lost work.

        ``header`` names what ran, at the start of the first line.
        """
        b, f = self.broken, self.fixed
        return [
            (
                f"{header}: {len(b.agents)} agents as {len(b.agents)} OS processes sharing "
                f"{_shown(self.url)} (model calls 1-3 s x {b.time_scale}, seed {b.seed})",
                "bold",
            ),
            (f"Broken (get, call the model, set), {len(b.agents)} processes:", "bold"),
            (f"  {b.story[0]}  ({b.wall_seconds:.2f} s)", "red" if b.lost_updates else None),
            (f"Fixed (call the model, then apply a delta), {len(f.agents)} processes:", "bold"),
            (f"  {f.story[0]}  ({f.wall_seconds:.2f} s)", "red" if f.lost_updates else None),
            (
                "Each process had its own copy of the session: a lock inside one process "
                "cannot protect it. The store's atomic apply does.",
                None,
            ),
        ]

    def to_json(self) -> dict[str, Any]:
        """Both results, as JSON."""
        return {
            "scenario": "processes",
            "store": _shown(self.url),
            "results": [self.broken.to_json(), self.fixed.to_json()],
        }


def run_processes(
    names: list[str], url: str, *, seed: int, time_scale: float, script: Any = None
) -> ProcessRun:
    """The broken agents, then the fixed ones, each as one process per agent on ``url``.

    ``script`` is ``workers.py`` (its agents and ``start_processes``); by
    default it is loaded from the course.
    """
    broken = run_broken_processes(names, url, seed=seed, time_scale=time_scale, script=script)
    fixed = run_fixed_processes(names, url, seed=seed, time_scale=time_scale, script=script)
    return ProcessRun(url, broken, fixed)


# ------------------------------------------------------- lesson 05: retries, concurrency limits


class LostAnswer(TimeoutError):
    """Simulated: the write reached the store and succeeded, but its answer is dropped.

    ``retried_append`` raises it on purpose after a successful write, as a
    network timeout or a dropped connection would: the agent never hears back.
    """


#: What ``retried_append`` simulates, in the words the lesson prints.
SIMULATED_TIMEOUT = (
    "Simulated timeout: the agent's first write reaches the store and succeeds, but "
    "the store the script hands it drops the answer on purpose and raises TimeoutError, "
    "as a network timeout would. The agent cannot tell whether the write happened, so "
    "it sends the same write again."
)


class _FirstAnswerLost:
    """A store whose first append really happens, then raises LostAnswer instead of answering."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.dropped = 0

    def append(self, key: str, value: Any, *, idempotency_key: str | None = None) -> int:
        index: int = self._store.append(key, value, idempotency_key=idempotency_key)
        if self.dropped == 0:  # simulated: the write succeeded, its answer is dropped
            self.dropped += 1
            raise LostAnswer("no answer within the timeout")
        return index


def retried_append(
    url: str, *, use_key: bool, attempts: int = 3, script: Any = None
) -> dict[str, Any]:
    """``retries.py``'s ``write_reply`` on a store that drops the first answer.

    The lost answer is simulated: the first ``append`` succeeds, then the
    store handed to the writer raises :class:`LostAnswer` (a ``TimeoutError``)
    instead of answering, as a timeout would (reported as
    ``dropped_answers``). Without an idempotency key each retry appends again
    (a duplicate); with one, the store applies the write once and answers
    every retry with the first result.
    """
    _check_url(url)
    retries = _script("retries", script)
    key = f"retries-{uuid.uuid4().hex[:8]}/history"
    message = {"agent": "Writer", "content": "drafted the opening section"}
    with open_store(url) as store:
        flaky = _FirstAnswerLost(store)
        index, attempt = retries.write_reply(
            flaky, key, message, "writer-reply-1" + key if use_key else None, attempts
        )
        stored = store.get(key)
    return {
        "idempotency_key": use_key,
        "attempts": attempt,
        "dropped_answers": flaky.dropped,
        "stored": stored,
        "answers": [index],
    }


#: What ``run_concurrency_limited`` is and is not, in the words the lesson prints.
CONCURRENCY_NOT_RATE = (
    "This is a concurrency limit (how many calls are in flight at once), not a rate "
    "limit (how many calls start per time window, such as 60 a minute, which needs a "
    "counter per window or a token bucket in the store). Its slots never expire: a "
    "worker that crashes while holding one keeps it forever. A production version "
    "gives each slot a lease, a claim that expires unless the worker renews it "
    "(in Redis, SET key worker NX PX 30000)."
)


def run_concurrency_limited(
    names: list[str], url: str, *, slots: int, seed: int, time_scale: float, script: Any = None
) -> dict[str, Any]:
    """Every agent a process running ``rate_limit.py``'s ``limited_agent``; at most
    ``slots`` model calls in flight across all of them."""
    _check_url(url)
    limit = _script("rate_limit", script)
    prefix = f"limit-{uuid.uuid4().hex[:8]}/"
    with open_store(url) as store:
        store.set(prefix + "slots", slots)
    wall = _run(limit, limit.limited_agent, names, url, prefix, seed, time_scale)
    with open_store(url) as store:
        log = store.get(prefix + "log")
    in_flight = peak = 0
    for kind, _ in log:
        in_flight += 1 if kind == "start" else -1
        peak = max(peak, in_flight)
    return {
        "scenario": "concurrency_limit",
        "agents": names,
        "slots": slots,
        "slot_expiry": None,
        "peak_in_flight": peak,
        "calls": len(log) // 2,
        "wall_seconds": round(wall, 4),
        "log": log,
    }
