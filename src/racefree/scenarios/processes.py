"""Agents as separate OS processes sharing one store: the lost update, then the fix.

Lesson 01's bug does not need threads. Here every agent is its own process
(started with "spawn": a fresh interpreter, as on another host) and the
session lives in a store that all of them open by URL (``sqlite:///demo.db``
for processes of one machine, ``redis://host:port/0`` for many machines).

* ``broken_process_agent`` reads the whole session with ``get``, calls the
  model, and writes its copy back with ``set``: each process's copy was taken
  before the others wrote, so the last writer erases them. A Python lock could
  not help: each process would have its own.
* ``fixed_process_agent`` calls the model, then hands the store a delta with
  ``apply``; the store merges it through each key's reducer (the same
  reducers as lesson 02) in one atomic step, with an idempotency key so a
  retried write counts once.

Each run writes under keys of its own (``demo-<id>/...``), so a database
file can be reused across runs.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from dataclasses import dataclass
from typing import Any

from racefree.agent import agent
from racefree.errors import UsageError
from racefree.scenarios.llm import SimulatedLLM
from racefree.scenarios.result import ScenarioResult
from racefree.state import open_store

__all__ = [
    "CONCURRENCY_NOT_RATE",
    "SIMULATED_TIMEOUT",
    "LostAnswer",
    "ProcessRun",
    "broken_process_agent",
    "fixed_process_agent",
    "limited_agent",
    "retried_append",
    "run_broken_processes",
    "run_concurrency_limited",
    "run_fixed_processes",
    "run_processes",
]

HISTORY = "conversation_history"
SESSION_REDUCERS = {
    HISTORY: "append",
    "total_tokens": "add",
    "completed": "add",
    "agent_results": "merge",
}
"""How the store merges each agent's delta into the session's keys (as in lesson 02)."""
EMPTY_SESSION: dict[str, Any] = {
    HISTORY: [],
    "total_tokens": 0,
    "completed": 0,
    "agent_results": {},
}


def broken_process_agent(
    name: str, url: str, prefix: str, seed: int, time_scale: float, start: Any
) -> None:
    """The bug across processes: read the session, call the model, write the copy back."""
    store = open_store(url)
    llm = SimulatedLLM(seed, time_scale)
    start.wait()  # every process is up: now they all work at once
    with agent(name):
        session = store.get(prefix + "session")  # 1. read: a copy, in this process
        reply = llm.call(name)  # 2. 1 to 3 s, while every other process runs too
        session[HISTORY].append({"agent": name, "content": reply.text})
        session["total_tokens"] += reply.tokens
        session["completed"] += 1
        session["agent_results"][name] = reply.text
        store.set(prefix + "session", session)  # 3. write: our copy replaces theirs
    store.close()


def fixed_process_agent(
    name: str, url: str, prefix: str, seed: int, time_scale: float, start: Any
) -> None:
    """The fix: call the model, then let the store merge this agent's delta atomically."""
    reducers = {prefix + key: reducer for key, reducer in SESSION_REDUCERS.items()}
    store = open_store(url, reducers=reducers, max_attempts=1_000)
    llm = SimulatedLLM(seed, time_scale)
    start.wait()
    with agent(name):
        reply = llm.call(name)
        store.apply(
            {
                prefix + HISTORY: [{"agent": name, "content": reply.text}],
                prefix + "total_tokens": reply.tokens,
                prefix + "completed": 1,
                prefix + "agent_results": {name: reply.text},
            },
            idempotency_key=f"{prefix}{name}",  # a retry of this write counts once
        )
    store.close()


def _check_url(url: str) -> None:
    if url.split("://", 1)[0].lower() == "memory":
        raise UsageError(
            "A memory:// store is private to one process, so separate processes cannot share "
            "it. Use --store sqlite:///demo.db (one machine) or --store redis://host:port/0."
        )


def _run(target: Any, names: list[str], url: str, prefix: str, seed: int, scale: float) -> float:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(names))
    processes = [
        context.Process(target=target, args=(name, url, prefix, seed, scale, start), name=name)
        for name in names
    ]
    began = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [p.name for p in processes if p.exitcode != 0]
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
    names: list[str], url: str, *, seed: int, time_scale: float
) -> ScenarioResult:
    """Each agent a process running ``broken_process_agent``; returns what survived."""
    _check_url(url)
    prefix = f"demo-{uuid.uuid4().hex[:8]}/"
    with open_store(url) as store:
        store.set(prefix + "session", EMPTY_SESSION)
    wall = _run(broken_process_agent, names, url, prefix, seed, time_scale)
    with open_store(url) as store:
        session = store.get(prefix + "session")
    return _result(
        "processes_broken", "processes, get + set", names, seed, time_scale, wall, session
    )


def run_fixed_processes(
    names: list[str], url: str, *, seed: int, time_scale: float
) -> ScenarioResult:
    """Each agent a process running ``fixed_process_agent``; returns what survived."""
    _check_url(url)
    prefix = f"demo-{uuid.uuid4().hex[:8]}/"
    wall = _run(fixed_process_agent, names, url, prefix, seed, time_scale)
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


def run_processes(names: list[str], url: str, *, seed: int, time_scale: float) -> ProcessRun:
    """The broken agents, then the fixed ones, each as one process per agent on ``url``."""
    broken = run_broken_processes(names, url, seed=seed, time_scale=time_scale)
    fixed = run_fixed_processes(names, url, seed=seed, time_scale=time_scale)
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
    "the script drops its answer on purpose, as a network timeout would. The agent "
    "cannot tell whether the write happened, so it sends the same write again."
)


def retried_append(url: str, *, use_key: bool, attempts: int = 3) -> dict[str, Any]:
    """An agent appends its reply; the first answer is lost, so it retries the same write.

    The lost answer is simulated: the first ``append`` succeeds, then this
    function raises :class:`LostAnswer` itself, as a timeout would (reported
    as ``dropped_answers``). Without an idempotency key each retry appends
    again (a duplicate); with one, the store applies the write once and
    answers every retry with the first result.
    """
    _check_url(url)
    key = f"retries-{uuid.uuid4().hex[:8]}/history"
    message = {"agent": "Writer", "content": "drafted the opening section"}
    answers: list[int] = []
    dropped = 0
    with open_store(url) as store:
        for attempt in range(attempts):
            try:
                index = store.append(
                    key, message, idempotency_key="writer-reply-1" + key if use_key else None
                )
                if attempt == 0:  # simulated: the write succeeded, its answer is dropped
                    dropped += 1
                    raise LostAnswer("no answer within the timeout")
                answers.append(index)
                break
            except LostAnswer:
                continue  # the agent cannot know whether the write happened: retry
        stored = store.get(key)
    return {
        "idempotency_key": use_key,
        "attempts": attempt + 1,
        "dropped_answers": dropped,
        "stored": stored,
        "answers": answers,
    }


def limited_agent(
    name: str, url: str, prefix: str, seed: int, time_scale: float, start: Any
) -> None:
    """Call the model only while holding one of the shared slots (a concurrency limit).

    The slots have no expiry: if this process died between ``claim`` and the
    release, its slot would stay taken forever (a production version gives
    each claim a lease that expires unless renewed).
    """
    store = open_store(url)
    llm = SimulatedLLM(seed, time_scale)
    slots = store.get(prefix + "slots")
    start.wait()
    with agent(name):
        while True:  # find a free slot; claim() is true for exactly one caller
            slot = next((s for s in range(slots) if store.claim(f"{prefix}slot:{s}", name)), None)
            if slot is not None:
                break
            time.sleep(0.01 * time_scale)  # all taken: wait a little, then look again
        store.append(prefix + "log", ["start", name])
        llm.call(name)
        store.append(prefix + "log", ["end", name])
        store.set(f"{prefix}slot:{slot}", None)  # release
    store.close()


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
    names: list[str], url: str, *, slots: int, seed: int, time_scale: float
) -> dict[str, Any]:
    """Every agent a process; at most ``slots`` model calls in flight across all of them."""
    _check_url(url)
    prefix = f"limit-{uuid.uuid4().hex[:8]}/"
    with open_store(url) as store:
        store.set(prefix + "slots", slots)
    wall = _run(limited_agent, names, url, prefix, seed, time_scale)
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
