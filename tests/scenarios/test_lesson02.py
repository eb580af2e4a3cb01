"""Each test asserts one claim that lesson 02 makes, on a real asyncio loop, running
the lesson scripts' own agents (loaded from examples/02-async-await)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

import pytest

from racefree import check
from racefree.scenarios import ScenarioResult, agent_names, lesson02
from racefree.scenarios.course import load

THREE = agent_names(3)
Runner = Callable[..., ScenarioResult]


def test_sequential_awaits_run_one_call_at_a_time_and_lose_nothing() -> None:
    result = lesson02.run_sequential_awaits(THREE, seed=7, time_scale=0.01)
    assert result.consistent
    assert result.extra["calls_at_once"] == 1


def test_gather_loses_updates_across_the_await_in_each_of_20_runs() -> None:
    survivors = set()
    for seed in range(20):
        result = lesson02.run_gather_unsafe(THREE, seed=seed, time_scale=0.01)
        assert result.lost_updates == 2, f"seed {seed}: {result.actual}"
        assert result.extra["calls_at_once"] == 3
        survivors.add(tuple(e["agent"] for e in result.final_state["conversation_history"]))
    assert len(survivors) >= 2


FIXES = [
    lesson02.run_gather_await_first,
    lesson02.run_gather_with_lock,
    lesson02.run_gather_with_store,
]


@pytest.mark.parametrize("run", FIXES)
def test_the_fixes_lose_nothing_in_50_runs_with_20_agents(run: Runner) -> None:
    names = agent_names(20)
    for seed in range(50):
        result = run(names, seed=seed, time_scale=0.0005)
        assert result.consistent, f"seed {seed}: {result.actual} != {result.expected}"


@pytest.mark.parametrize("run", [lesson02.run_gather_await_first, lesson02.run_gather_with_store])
def test_fixes_without_a_lock_across_the_await_keep_every_call_in_flight(run: Runner) -> None:
    result = run(agent_names(5), seed=5, time_scale=0.01)
    assert result.extra["calls_at_once"] == 5


def test_a_lock_held_across_the_await_makes_the_agents_take_turns() -> None:
    result = lesson02.run_gather_with_lock(THREE, seed=5, time_scale=0.01)
    assert result.consistent
    assert result.extra["calls_at_once"] == 1
    reads = [
        e.version_read
        for e in result.history.events
        if e.op == "read" and e.key == "conversation_history"
    ]
    assert sorted(set(reads)) == [0, 1, 2]  # each agent read what the previous one wrote


def test_the_lock_is_in_the_history_and_the_checker_sees_it_held() -> None:
    result = lesson02.run_gather_with_lock(THREE, seed=5, time_scale=0.01)
    ops = [e.op for e in result.history.events if e.key == "lock" and e.op != "wait"]
    assert ops == ["acquire", "release"] * 3
    assert check(result.history).findings == ()
    # Without the guard's events, the same run is a race window (the first
    # agent's, while the others wait): the recorded guard is what clears it.
    unguarded = [e for e in result.history.events if e.op not in ("acquire", "release")]
    assert check(unguarded).of_kind("race-window")


def test_the_await_first_fix_holds_no_lock() -> None:
    agent = load(lesson02.LESSON, "gather_await_first").agent
    body = inspect.getsource(agent).split('"""')[2]
    assert "lock" not in body.lower()


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_a_semaphore_caps_the_calls_in_flight(limit: int) -> None:
    result = lesson02.run_rate_limited(agent_names(6), limit=limit, seed=1, time_scale=0.01)
    assert result.extra["calls_at_once"] == limit
    assert result.consistent


def test_an_await_that_does_not_suspend_switches_no_task() -> None:
    script = load(lesson02.LESSON, "gather_race")
    assert asyncio.run(script.contrast(script.cached_answer)) == 1000


def test_an_await_that_suspends_lets_every_task_read_the_same_value() -> None:
    script = load(lesson02.LESSON, "gather_race")
    assert asyncio.run(script.contrast(lambda: asyncio.sleep(0))) == 1


def test_the_store_records_which_agent_applied_each_delta() -> None:
    result = lesson02.run_gather_with_store(THREE, seed=4, time_scale=0.01)
    applied = [e.agent for e in result.history.events if e.op == "apply"]
    assert sorted(set(applied)) == sorted(THREE)
