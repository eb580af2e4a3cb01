"""Each test asserts one claim that lesson 03 makes about the four fixes."""

from __future__ import annotations

import pytest

from racefree.history import History
from racefree.scenarios import agent_names, lesson03
from racefree.scenarios.course import run_script
from tests.scenarios.test_lesson01 import MeetingLLM

FIX_NAMES = [fix.name for fix in lesson03.FIXES]


@pytest.mark.parametrize("fix", lesson03.FIXES, ids=FIX_NAMES)
def test_each_fix_loses_nothing_in_30_runs_with_16_agents(fix: lesson03.Fix) -> None:
    names = agent_names(16)
    for seed in range(30):
        result = lesson03.run_fix(fix, names, seed=seed, time_scale=0.003)
        assert result.consistent, f"{fix.name}, seed {seed}: {result.actual}"


@pytest.mark.parametrize("fix", lesson03.FIXES, ids=FIX_NAMES)
def test_each_fix_keeps_the_model_calls_parallel(fix: lesson03.Fix) -> None:
    # What keeps a fix as fast as the broken run is that its model calls still run at
    # the same time: every call waits at a barrier until all three are inside one (a fix
    # that serialised them would miss the barrier), and the recorded calls overlap.
    names = agent_names(3)
    made: list[MeetingLLM] = []

    def model(seed: int, scale: float, history: History) -> MeetingLLM:
        made.append(MeetingLLM(len(names), history))
        return made[0]

    result = run_script(lesson03.LESSON, fix.script, names, model=model)
    assert made[0].missed == 0
    assert result.extra["calls_at_once"] == 3
    assert result.consistent


def test_optimistic_saves_conflict_when_agents_overlap() -> None:
    # All three read at once; the first save wins, and each later save finds
    # the version moved on at least once.
    result = lesson03.run_optimistic(agent_names(3), seed=1, time_scale=0.02)
    assert result.extra["retries"] >= 2
    assert result.consistent


def test_optimistic_saves_never_conflict_one_at_a_time() -> None:
    result = lesson03.run_optimistic(agent_names(1), seed=1, time_scale=0.01)
    assert result.extra["retries"] == 0


def test_the_actor_applies_replies_in_arrival_order() -> None:
    result = lesson03.run_actor(agent_names(5), seed=3, time_scale=0.05)
    order = [entry["agent"] for entry in result.final_state["conversation_history"]]
    latency = result.latencies
    # A reply that arrived clearly earlier (10 ms) was applied earlier.
    for first in order:
        for later in order[order.index(first) + 1 :]:
            assert not latency[later] + 0.01 < latency[first], (first, later, latency)


def test_the_comparison_uses_one_seed_for_all_fixes() -> None:
    runs = lesson03.compare_fixes(agent_names(3), seed=9, time_scale=0.01)
    assert [fix.name for fix, _ in runs] == FIX_NAMES
    assert len({result.seed for _, result in runs}) == 1
    assert len({tuple(result.latencies.items()) for _, result in runs}) == 1
    data = lesson03.comparison_json(runs)
    assert data["consistent"] is True
    assert [row["fix"] for row in data["fixes"]] == FIX_NAMES


def test_versions_and_retry_is_the_longest_fix() -> None:
    lines = {fix.name: lesson03.code_lines(fix) for fix in lesson03.FIXES}
    assert max(lines, key=lambda name: lines[name]) == "versions + retry"


def test_code_lines_skip_docstrings_comments_and_timeline_records() -> None:
    def sample(x: int) -> int:
        """A docstring
        on two lines."""
        # a comment
        history = None
        history.record("call")  # type: ignore[attr-defined]
        return x

    fix = lesson03.Fix("sample", lesson03.run_lock, "fix_lock", (sample,), "", "")
    assert lesson03.code_lines(fix) == 3  # the def line, the assignment, the return
