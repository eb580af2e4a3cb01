"""Lesson 01's runs: the course scripts' agents, run and measured.

The agents are in ``examples/01-race-conditions/*.py`` and nowhere else;
these functions load those scripts (:func:`racefree.scenarios.course.load`)
and run them, for ``racefree demo``, the explorer's lesson workflows and the
tests. The forced interleavings run the four agents of
``race_condition_demo.py`` under a :class:`Choreography` and count what each
lost.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from racefree.history import Event, History
from racefree.scenarios.choreography import Choreography
from racefree.scenarios.course import HISTORY, load, run_script
from racefree.scenarios.llm import SimulatedLLM
from racefree.scenarios.result import ScenarioResult

__all__ = [
    "HISTORY",
    "LESSON",
    "combine",
    "forced",
    "many_thread_appends",
    "run_broken_parallel",
    "run_race_condition_demo",
    "run_sequential",
    "run_simple_fix",
    "script",
]

LESSON = "01-race-conditions"


def script(name: str) -> ModuleType:
    """The lesson-01 script ``name`` (``"broken_parallel"``...), loaded by path."""
    return load(LESSON, name)


def run_sequential(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """``broken_sequential.py``: the agents one after another; slow, and nothing is lost."""
    return run_script(
        LESSON, "broken_sequential", names, seed=seed, time_scale=time_scale, title="one at a time"
    )


def run_broken_parallel(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """``broken_parallel.py``: the same agents in parallel threads; fast, and work is lost."""
    return run_script(
        LESSON, "broken_parallel", names, seed=seed, time_scale=time_scale, title="parallel, unsafe"
    )


def run_simple_fix(
    names: list[str],
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    say: Callable[[str], None] | None = None,
) -> ScenarioResult:
    """``simple_fix.py``: the locked agents in parallel threads; fast, and nothing is lost."""
    return run_script(
        LESSON,
        "simple_fix",
        names,
        seed=seed,
        time_scale=time_scale,
        title="parallel, locked",
        say=say,
    )


# --- Forced interleavings ---------------------------------------------------------

Agent = Callable[[str, Any, SimulatedLLM, Callable[[str], Any]], None]


def _threads(names: list[str], target: Callable[[str], None]) -> float:
    """Run ``target(name)`` in one thread per agent, named after it; re-raise an error."""
    errors: list[BaseException] = []

    def guarded(name: str) -> None:
        try:
            target(name)
        except BaseException as exc:  # surfaced below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,), name=n) for n in names]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def forced(
    case: str,
    agent: Agent,
    initial: dict[str, Any],
    names: list[str],
    *,
    seed: int = 0,
    time_scale: float = 0.01,
) -> ScenarioResult:
    """Run ``agent`` in one thread per name, every first step before any second step.

    The state is tracked, so the story and the counts come from what the
    agents really read and wrote. A step may wait for another agent's model
    call, so the patience grows with the latency scale.
    """
    from racefree.track import track

    history = History()
    llm = SimulatedLLM(seed, time_scale, history=history)
    raw = {
        key: (list(value) if isinstance(value, list) else value) for key, value in initial.items()
    }
    state = track(raw, history=history)
    patience = 30.0 + 2 * SimulatedLLM.MAX_SECONDS * time_scale
    order = [(n, "read") for n in names] + [(n, "write") for n in names]
    dance = Choreography(order, timeout=patience)
    wall = _threads(
        names, lambda name: agent(name, state, llm, functools.partial(dance.step, name))
    )
    events = [e for e in history.events if e.key is not None]
    story: list[str] = []
    for event in events:  # a copy of a list reads it twice (its length, then its items)
        if not story or story[-1] != _line(event):
            story.append(_line(event))
    counted = _COUNTS[case](names, raw, events)
    story.append(counted.pop("conclusion"))
    return ScenarioResult(
        scenario=case,
        title=_TITLES[case],
        agents=names,
        seed=seed,
        time_scale=time_scale,
        wall_seconds=wall,
        initial_state=initial,
        final_state=raw,
        story=story,
        history=history,
        **counted,
    )


def _line(event: Event) -> str:
    """One tracked access in plain words."""
    who, key, value = event.agent, event.key, event.value
    if event.op == "read":
        if value is None and key in (HISTORY, "conversation", "runs"):
            return f"{who} copies {key} at v{event.version_read}"
        return f"{who} reads {key} = {value}"
    if event.op == "append":
        what = value.get("role", value) if isinstance(value, dict) else value
        return f"{who} appends {what!r} to {key} at position {event.version_read}"
    if isinstance(value, list):
        entries = "1 entry" if len(value) == 1 else f"{len(value)} entries"
        return f"{who} writes {key} v{event.version_written} ({entries})"
    return f"{who} writes {key} = {value}"


def _overwritten(events: list[Event], key: str) -> list[str]:
    """Agents whose write of ``key`` a later write replaced, computed from a read before it."""
    last_read: dict[str, int] = {}
    writes: list[tuple[Event, int]] = []  # (write, seq of its agent's last read)
    for event in events:
        if event.key != key:
            continue
        if event.op == "read":
            last_read[event.agent] = event.seq
        elif event.op == "write":
            writes.append((event, last_read.get(event.agent, -1)))
    return [
        earlier.agent
        for i, (earlier, _) in enumerate(writes)
        if any(read < earlier.seq for _, read in writes[i + 1 :])
    ]


def _count_counter(names: list[str], state: dict[str, Any], events: list[Event]) -> dict[str, Any]:
    got, n = state["completed"], len(names)
    return {
        "expected": {"completed": n},
        "actual": {"completed": got},
        "measure": "completed",
        "lost_updates": n - got,
        "lost_agents": _overwritten(events, "completed"),
        "consistent": got == n,
        "conclusion": f"{n} agents finished but completed = {got}: {n - got} increment(s) "
        "lost, because every write was computed from a stale read.",
    }


def _count_copy(names: list[str], state: dict[str, Any], events: list[Event]) -> dict[str, Any]:
    kept = {entry["agent"] for entry in state[HISTORY]}
    lost = [name for name in names if name not in kept]
    whose = " and ".join(f"{name}'s" for name in lost)
    return {
        "expected": {"history_entries": len(names)},
        "actual": {"history_entries": len(state[HISTORY])},
        "measure": "history_entries",
        "lost_updates": len(lost),
        "lost_agents": lost,
        "consistent": not lost,
        "conclusion": f"Each agent assigned its copy of v0 plus its entry: {whose} "
        f"entr{'y is' if len(lost) == 1 else 'ies are'} lost."
        if lost
        else "Nothing lost.",
    }


def _count_claims(names: list[str], state: dict[str, Any], events: list[Event]) -> dict[str, Any]:
    runs, owner = state["runs"], state["owner"]
    return {
        "expected": {"task_runs": 1},
        "actual": {"task_runs": len(runs)},
        "measure": "task_runs",
        "lost_updates": len(runs) - 1,
        "lost_agents": [name for name in runs if name != owner],
        "consistent": len(runs) == 1,
        "extra": {"duplicate_runs": len(runs) - 1},
        "conclusion": f"The task ran {len(runs)} times ({', '.join(runs)}); the board says "
        f"{owner} owns it, so {len(runs) - 1} claim(s) were overwritten.",
    }


def _intact_turns(messages: list[dict[str, str]]) -> list[str]:
    """Agents whose user message is directly followed by their own assistant reply."""
    return [
        first["agent"]
        for first, second in itertools.pairwise(messages)
        if first["role"] == "user"
        and second["role"] == "assistant"
        and first["agent"] == second["agent"]
    ]


def _count_turns(names: list[str], state: dict[str, Any], events: list[Event]) -> dict[str, Any]:
    messages = state["conversation"]
    intact = _intact_turns(messages)
    broken = [name for name in names if name not in intact]
    return {
        "expected": {"messages": 2 * len(names), "intact_turns": len(names)},
        "actual": {"messages": len(messages), "intact_turns": len(intact)},
        "measure": "intact_turns",
        "lost_updates": 2 * len(names) - len(messages),
        "lost_agents": [],
        "consistent": not broken,
        "extra": {"interleaved_turns": len(broken)},
        "conclusion": f"All {len(messages)} messages arrived, yet {len(broken)} of "
        f"{len(names)} turns are split: a reply no longer follows the message it answers.",
    }


_COUNTS = {
    "forced_counter": _count_counter,
    "forced_history_copy": _count_copy,
    "forced_check_then_act": _count_claims,
    "forced_interleaved_turns": _count_turns,
}
_TITLES = {
    "forced_counter": "(a) counter",
    "forced_history_copy": "(b) history copy",
    "forced_check_then_act": "(c) check-then-act",
    "forced_interleaved_turns": "(d) interleaved turns",
}


def many_thread_appends(
    appends: Callable[[list[int], int], None], threads: int = 8, per_thread: int = 100_000
) -> ScenarioResult:
    """``appends(items, count)`` in ``threads`` threads at once, unforced: nothing is lost.

    ``list.append`` is atomic in CPython (the library FAQ lists ``L.append(x)``;
    free-threaded builds keep it atomic with per-object locks), so every item
    arrives. The list is not tracked: the point is the bare operation.
    """
    items: list[int] = []
    start_together = threading.Barrier(threads)
    names = [f"appender-{i}" for i in range(threads)]

    def appender(name: str) -> None:
        start_together.wait()
        appends(items, per_thread)

    wall = _threads(names, appender)
    expected = threads * per_thread
    lost = expected - len(items)
    return ScenarioResult(
        scenario="many_thread_appends",
        title=f"list.append, {threads} threads",
        agents=names,
        seed=None,
        time_scale=0.0,
        wall_seconds=wall,
        expected={"items": expected},
        actual={"items": len(items)},
        measure="items",
        lost_updates=lost,
        lost_agents=[],
        consistent=lost == 0,
        story=[
            f"{threads} threads appended {per_thread:,} items each to one list, all at once: "
            f"{len(items):,} of {expected:,} arrived. A single list.append is atomic; what "
            "loses data is a read, then a write based on it, with other agents running between."
        ],
    )


def run_race_condition_demo(
    names: list[str],
    *,
    seed: int = 0,
    time_scale: float = 0.01,
    append_threads: int = 8,
    append_items: int = 100_000,
    module: ModuleType | None = None,
) -> list[ScenarioResult]:
    """``race_condition_demo.py``'s cases: every forced interleaving, then the appends."""
    demo = module if module is not None else script("race_condition_demo")
    results = [
        forced(case, agent, initial, names, seed=seed, time_scale=time_scale)
        for case, agent, initial in demo.CASES
    ]
    results.append(many_thread_appends(demo.appends, append_threads, append_items))
    return results


def combine(scenario: str, results: list[ScenarioResult]) -> dict[str, Any]:
    """Several results as one JSON object with the documented top-level keys."""
    return {
        "scenario": scenario,
        "agents": results[0].agents if results else [],
        "seed": results[0].seed if results else None,
        "time_scale": results[0].time_scale if results else None,
        "wall_seconds": round(sum(r.wall_seconds for r in results), 4),
        "expected": {r.scenario: r.expected for r in results},
        "actual": {r.scenario: r.actual for r in results},
        "lost_updates": sum(r.lost_updates for r in results),
        "consistent": all(r.consistent for r in results),
        "cases": [r.to_json() for r in results],
    }
