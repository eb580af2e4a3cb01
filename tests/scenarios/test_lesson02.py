"""Each test asserts one claim that lesson 02 makes, on a real asyncio loop."""

from __future__ import annotations

import inspect

import pytest

from racefree.scenarios import agent_names, lesson02

THREE = agent_names(3)


def test_sequential_awaits_take_the_sum_and_lose_nothing() -> None:
    result = lesson02.run_sequential_awaits(THREE, seed=7, time_scale=0.05)
    assert result.consistent
    assert 0.95 <= result.wall_seconds / result.latency_sum <= 1.5


def test_gather_loses_updates_across_the_await_in_each_of_20_runs() -> None:
    survivors = set()
    for seed in range(20):
        result = lesson02.run_gather_unsafe(THREE, seed=seed, time_scale=0.01)
        assert result.lost_updates == 2, f"seed {seed}: {result.actual}"
        survivors.add(tuple(e["agent"] for e in result.final_state["conversation_history"]))
    assert len(survivors) >= 2


def test_gather_takes_about_the_longest_latency() -> None:
    result = lesson02.run_gather_unsafe(THREE, seed=3, time_scale=0.05)
    assert 0.95 <= result.wall_seconds / result.latency_max <= 1.5


FIXES = [
    lesson02.run_gather_await_first,
    lesson02.run_gather_with_lock,
    lesson02.run_gather_with_store,
]


@pytest.mark.parametrize("run", FIXES)
def test_the_fixes_lose_nothing_in_50_runs_with_20_agents(run: lesson02.FlowRunner) -> None:
    names = agent_names(20)
    for seed in range(50):
        result = run(names, seed=seed, time_scale=0.0005)
        assert result.consistent, f"seed {seed}: {result.actual} != {result.expected}"


@pytest.mark.parametrize("run", [lesson02.run_gather_await_first, lesson02.run_gather_with_store])
def test_fixes_without_a_lock_across_the_await_keep_the_parallel_speed(
    run: lesson02.FlowRunner,
) -> None:
    result = run(THREE, seed=5, time_scale=0.05)
    assert 0.95 <= result.wall_seconds / result.latency_max <= 1.5


def test_a_lock_held_across_the_await_makes_the_agents_take_turns() -> None:
    result = lesson02.run_gather_with_lock(THREE, seed=5, time_scale=0.05)
    assert result.consistent
    assert 0.95 <= result.wall_seconds / result.latency_sum <= 1.5
    reads = [e.version_read for e in result.history.events if e.op == "read"]
    assert reads == [0, 1, 2]  # each agent read what the previous one wrote


def test_the_await_first_fix_holds_no_lock() -> None:
    body = inspect.getsource(lesson02.await_first_agent).split('"""')[2]
    assert "lock" not in body.lower()


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_a_semaphore_caps_the_calls_in_flight(limit: int) -> None:
    result = lesson02.run_rate_limited(agent_names(6), limit=limit, seed=1, time_scale=0.01)
    assert result.extra["max_in_flight"] == limit
    assert result.consistent


def test_a_limit_of_one_is_as_slow_as_one_at_a_time() -> None:
    result = lesson02.run_rate_limited(agent_names(4), limit=1, seed=2, time_scale=0.03)
    assert 0.95 <= result.wall_seconds / result.latency_sum <= 1.5


def test_read_modify_write_without_await_cannot_interleave() -> None:
    result = lesson02.no_await_between(1000)
    assert result.actual == {"completed": 1000}
    assert result.lost_updates == 0


def test_the_store_records_which_agent_applied_each_delta() -> None:
    result = lesson02.run_gather_with_store(THREE, seed=4, time_scale=0.01)
    applied = [e.agent for e in result.history.events if e.op == "apply"]
    assert sorted(set(applied)) == sorted(THREE)
