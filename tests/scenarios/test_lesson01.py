"""Each test asserts one claim that lesson 01 makes, on real threads."""

from __future__ import annotations

import pytest

from racefree.scenarios import agent_names, lesson01

THREE = agent_names(3)


def test_sequential_takes_about_the_sum_of_the_latencies() -> None:
    result = lesson01.run_sequential(THREE, seed=7, time_scale=0.05)
    assert result.consistent
    assert result.lost_updates == 0
    assert 0.95 <= result.wall_seconds / result.latency_sum <= 1.5


def test_sequential_run_of_the_unsafe_agent_loses_nothing() -> None:
    # The same agent code that breaks in parallel is correct one at a time:
    # the bug hides in every single-request test.
    result = lesson01.run_sequential(agent_names(6), seed=1, time_scale=0.01)
    assert result.actual == result.expected
    assert [e["agent"] for e in result.final_state["conversation_history"]] == agent_names(6)


def test_broken_parallel_loses_updates_in_each_of_20_runs_and_outcomes_vary() -> None:
    survivors = set()
    for seed in range(20):
        result = lesson01.run_broken_parallel(THREE, seed=seed, time_scale=0.02)
        assert result.lost_updates >= 1, f"seed {seed} lost nothing"
        assert not result.consistent
        assert result.actual["history_entries"] < result.expected["history_entries"]
        kept = [entry["agent"] for entry in result.final_state["conversation_history"]]
        assert sorted(kept + result.lost_agents) == sorted(THREE)
        survivors.add(tuple(kept))
    assert len(survivors) >= 2


def test_broken_parallel_keeps_the_last_writer_and_every_per_agent_result() -> None:
    result = lesson01.run_broken_parallel(THREE, seed=11, time_scale=0.02)
    writes = [e for e in result.history.events if e.op == "write"]
    [kept] = result.final_state["conversation_history"]
    assert kept["agent"] == writes[-1].agent
    # Each agent set its own key of agent_results with one assignment: none lost.
    assert result.actual["results"] == 3


def test_broken_parallel_takes_about_the_longest_latency_not_the_sum() -> None:
    result = lesson01.run_broken_parallel(THREE, seed=3, time_scale=0.05)
    assert 0.95 <= result.wall_seconds / result.latency_max <= 1.5
    assert result.wall_seconds / result.latency_sum < 0.8


def test_simple_fix_loses_nothing_in_50_runs_with_20_agents() -> None:
    names = agent_names(20)
    for seed in range(50):
        result = lesson01.run_simple_fix(names, seed=seed, time_scale=0.005)
        assert result.consistent, f"seed {seed}: {result.actual} != {result.expected}"
        assert result.lost_updates == 0


def test_simple_fix_is_about_as_fast_as_the_broken_parallel_run() -> None:
    fixed = lesson01.run_simple_fix(THREE, seed=5, time_scale=0.05)
    broken = lesson01.run_broken_parallel(THREE, seed=5, time_scale=0.05)
    assert fixed.latencies == broken.latencies
    assert 0.7 <= fixed.wall_seconds / broken.wall_seconds <= 1.4
    assert fixed.wall_seconds / fixed.latency_sum < 0.8


def test_simple_fix_reports_progress_from_the_calling_thread() -> None:
    import threading

    seen = []

    def progress(agent: str, reply: object, elapsed: float) -> None:
        seen.append((agent, threading.current_thread() is threading.main_thread()))

    lesson01.run_simple_fix(THREE, seed=2, time_scale=0.01, on_progress=progress)
    assert sorted(name for name, _ in seen) == sorted(THREE)
    assert all(on_main for _, on_main in seen)


@pytest.mark.parametrize("count", [2, 3, 5])
def test_forced_counter_loses_exactly_all_but_one_increment(count: int) -> None:
    result = lesson01.forced_counter(agent_names(count))
    assert result.actual == {"completed": 1}
    assert result.lost_updates == count - 1
    reads = [e.value for e in result.history.events if e.op == "read"]
    assert reads == [0] * count


@pytest.mark.parametrize("count", [2, 3, 5])
def test_forced_history_copy_keeps_only_the_last_writer(count: int) -> None:
    names = agent_names(count)
    result = lesson01.forced_history_copy(names)
    assert result.lost_updates == count - 1
    assert result.lost_agents == names[:-1]
    assert [e["agent"] for e in result.final_state["conversation_history"]] == [names[-1]]


def test_forced_history_copy_tells_the_story_of_the_issue() -> None:
    result = lesson01.forced_history_copy(["Analyzer", "Writer"])
    assert result.story == [
        "Analyzer reads v0",
        "Writer reads v0",
        "Analyzer writes v1",
        "Writer writes v1: Analyzer's entry is lost",
    ]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_forced_check_then_act_runs_the_task_once_per_agent(count: int) -> None:
    names = agent_names(count)
    result = lesson01.forced_check_then_act(names)
    assert result.final_state["runs"] == names
    assert result.actual == {"task_runs": count}
    assert result.extra["duplicate_runs"] == count - 1
    assert result.final_state["board"]["summarize-report"] == names[-1]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_forced_turns_interleave_although_no_message_is_lost(count: int) -> None:
    result = lesson01.forced_interleaved_turns(agent_names(count))
    assert result.actual == {"messages": 2 * count, "intact_turns": 0}
    assert result.lost_updates == 0
    assert not result.consistent
    roles = [m["role"] for m in result.final_state["conversation_history"]]
    assert roles == ["user"] * count + ["assistant"] * count


def test_list_append_from_8_threads_loses_nothing() -> None:
    result = lesson01.many_thread_appends(threads=8, per_thread=100_000)
    assert result.actual == {"items": 800_000}
    assert result.lost_updates == 0
    assert result.consistent


def test_race_condition_demo_runs_every_case_and_combines_them() -> None:
    results = lesson01.run_race_condition_demo(THREE, append_items=1_000)
    combined = lesson01.combine("race_condition_demo", results)
    assert [case["scenario"] for case in combined["cases"]] == [
        "forced_counter",
        "forced_history_copy",
        "forced_check_then_act",
        "forced_interleaved_turns",
        "many_thread_appends",
    ]
    assert combined["lost_updates"] == 2 + 2 + 2 + 0 + 0
    assert combined["consistent"] is False
