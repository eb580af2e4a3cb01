"""Each test asserts one claim that lesson 01 makes, on real threads, running the
lesson scripts' own agents (loaded from examples/01-race-conditions)."""

from __future__ import annotations

import inspect
import threading

import pytest

from racefree.history import History
from racefree.scenarios import SimulatedLLM, agent_names, lesson01
from racefree.scenarios.course import flow, overlap
from racefree.scenarios.llm import LLMReply

THREE = agent_names(3)


def case(name: str) -> tuple[str, object, dict[str, object]]:
    [found] = [c for c in lesson01.script("race_condition_demo").CASES if c[0] == name]
    return found


def forced(name: str, names: list[str]) -> object:
    scenario, agent, initial = case(name)
    return lesson01.forced(scenario, agent, initial, names)  # type: ignore[arg-type]


def test_sequential_and_parallel_scripts_run_the_very_same_agent() -> None:
    # broken_parallel.py says its agent is broken_sequential.py's, unchanged:
    # the same statements (only the comments differ).
    sequential, parallel = lesson01.script("broken_sequential"), lesson01.script("broken_parallel")
    assert inspect.getsource(sequential.new_session) == inspect.getsource(parallel.new_session)
    statements = [
        [line.split("#")[0].rstrip() for line in inspect.getsource(m.agent).splitlines()]
        for m in (sequential, parallel)
    ]
    assert statements[0] == statements[1]


def test_sequential_takes_about_the_sum_of_the_latencies() -> None:
    result = lesson01.run_sequential(THREE, seed=7, time_scale=0.05)
    assert result.consistent
    assert result.lost_updates == 0
    assert result.extra["calls_at_once"] == 1


def test_sequential_run_of_the_unsafe_agent_loses_nothing() -> None:
    # The same agent code that breaks in parallel is correct one at a time:
    # the bug hides in every single-request test.
    result = lesson01.run_sequential(agent_names(6), seed=1, time_scale=0.01)
    assert result.actual == result.expected
    assert [e["agent"] for e in result.final_state["conversation_history"]] == agent_names(6)


class MeetingLLM(SimulatedLLM):
    """A model whose every call waits until all agents are inside a call at once.

    Calls that really run in parallel all meet and return at once; a call
    made while another agent is kept out (by a lock held across the call,
    say) waits for the barrier's timeout, and ``missed`` counts it.
    """

    def __init__(self, agents: int, history: History) -> None:
        super().__init__(0, 0.01, history=history)
        self.everyone = threading.Barrier(agents, timeout=20)
        self.missed = 0

    def call(self, agent: str) -> LLMReply:
        reply = self._next(agent)
        try:
            self.everyone.wait()
        except threading.BrokenBarrierError:
            self.missed += 1
        return reply


def meeting(script: str, names: list[str]) -> tuple[object, MeetingLLM]:
    made: list[MeetingLLM] = []

    def model(seed: int, scale: float, history: History) -> MeetingLLM:
        made.append(MeetingLLM(len(names), history))
        return made[0]

    module = lesson01.script(script)
    return flow(module.run, module.new_session, names, model=model), made[0]


def test_broken_parallel_loses_all_but_the_last_writer_when_the_calls_overlap() -> None:
    result, llm = meeting("broken_parallel", THREE)
    assert llm.missed == 0
    assert result.extra["calls_at_once"] == 3  # type: ignore[attr-defined]
    writes = [e for e in result.history.events if e.op == "write" and e.key == lesson01.HISTORY]  # type: ignore[attr-defined]
    [kept] = result.final_state["conversation_history"]  # type: ignore[attr-defined]
    assert kept["agent"] == writes[-1].agent
    assert sorted(result.lost_agents) == sorted(set(THREE) - {kept["agent"]})  # type: ignore[attr-defined]
    # Each agent set its own key of agent_results with one assignment: none lost.
    assert result.actual["results"] == 3  # type: ignore[attr-defined]


def test_simple_fix_overlaps_its_calls_as_the_broken_run_does_and_loses_nothing() -> None:
    # Replaces a wall-time ratio: what makes the fix as fast is that its model
    # calls run at the same time, which the recorded events show exactly.
    fixed, fixed_llm = meeting("simple_fix", agent_names(5))
    broken, broken_llm = meeting("broken_parallel", agent_names(5))
    assert fixed_llm.missed == broken_llm.missed == 0
    assert fixed.extra["calls_at_once"] == broken.extra["calls_at_once"] == 5  # type: ignore[attr-defined]
    assert fixed.consistent  # type: ignore[attr-defined]
    assert not broken.consistent  # type: ignore[attr-defined]


def test_sequential_calls_never_overlap() -> None:
    result = lesson01.run_sequential(THREE, seed=3, time_scale=0.01)
    assert overlap(result.history.events) == 1


def test_broken_parallel_loses_updates_in_most_runs_and_outcomes_vary() -> None:
    survivors, losses = set(), 0
    for seed in range(20):
        result = lesson01.run_broken_parallel(THREE, seed=seed, time_scale=0.02)
        kept = [entry["agent"] for entry in result.final_state["conversation_history"]]
        assert sorted(kept + result.lost_agents) == sorted(THREE)
        assert result.consistent == (not result.lost_agents)
        losses += bool(result.lost_agents)
        survivors.add(tuple(kept))
    assert losses >= 15
    assert len(survivors) >= 2


def test_a_broken_run_that_lost_nothing_says_so() -> None:
    module = lesson01.script("broken_parallel")
    result = lesson01.run_sequential(THREE, seed=1, time_scale=0.01)  # nothing lost
    assert module.closing(result)[0].startswith("This run lost nothing")
    assert result.story[-1].startswith("Nothing lost")


def test_simple_fix_loses_nothing_in_50_runs_with_20_agents() -> None:
    names = agent_names(20)
    for seed in range(50):
        result = lesson01.run_simple_fix(names, seed=seed, time_scale=0.005)
        assert result.consistent, f"seed {seed}: {result.actual} != {result.expected}"
        assert result.lost_updates == 0


def test_simple_fix_reports_progress_from_the_calling_thread() -> None:
    seen = []

    def say(text: str) -> None:
        seen.append((text.split()[0], threading.current_thread() is threading.main_thread()))

    lesson01.run_simple_fix(THREE, seed=2, time_scale=0.01, say=say)
    assert sorted(name for name, _ in seen) == sorted(THREE)
    assert all(on_main for _, on_main in seen)


@pytest.mark.parametrize("count", [2, 3, 5])
def test_forced_counter_loses_exactly_all_but_one_increment(count: int) -> None:
    result = forced("forced_counter", agent_names(count))
    assert result.actual == {"completed": 1}  # type: ignore[attr-defined]
    assert result.lost_updates == count - 1  # type: ignore[attr-defined]
    reads = [e.value for e in result.history.events if e.op == "read"]  # type: ignore[attr-defined]
    assert reads == [0] * count


@pytest.mark.parametrize("count", [2, 3, 5])
def test_forced_history_copy_keeps_only_the_last_writer(count: int) -> None:
    names = agent_names(count)
    result = forced("forced_history_copy", names)
    assert result.lost_updates == count - 1  # type: ignore[attr-defined]
    assert result.lost_agents == names[:-1]  # type: ignore[attr-defined]
    assert [e["agent"] for e in result.final_state["conversation_history"]] == [names[-1]]  # type: ignore[attr-defined]


def test_forced_history_copy_tells_the_story_of_the_issue() -> None:
    result = forced("forced_history_copy", ["Analyzer", "Writer"])
    assert result.story == [  # type: ignore[attr-defined]
        "Analyzer copies conversation_history at v0",
        "Writer copies conversation_history at v0",
        "Analyzer writes conversation_history v1 (1 entry)",
        "Writer writes conversation_history v2 (1 entry)",
        "Each agent assigned its copy of v0 plus its entry: Analyzer's entry is lost.",
    ]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_forced_check_then_act_runs_the_task_once_per_agent(count: int) -> None:
    names = agent_names(count)
    result = forced("forced_check_then_act", names)
    assert result.final_state["runs"] == names  # type: ignore[attr-defined]
    assert result.actual == {"task_runs": count}  # type: ignore[attr-defined]
    assert result.extra["duplicate_runs"] == count - 1  # type: ignore[attr-defined]
    assert result.final_state["owner"] == names[-1]  # type: ignore[attr-defined]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_forced_turns_interleave_although_no_message_is_lost(count: int) -> None:
    result = forced("forced_interleaved_turns", agent_names(count))
    assert result.actual == {"messages": 2 * count, "intact_turns": 0}  # type: ignore[attr-defined]
    assert result.lost_updates == 0  # type: ignore[attr-defined]
    assert not result.consistent  # type: ignore[attr-defined]
    roles = [m["role"] for m in result.final_state["conversation"]]  # type: ignore[attr-defined]
    assert roles == ["user"] * count + ["assistant"] * count


def test_list_append_from_8_threads_loses_nothing() -> None:
    appends = lesson01.script("race_condition_demo").appends
    result = lesson01.many_thread_appends(appends, threads=8, per_thread=100_000)
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


def _timed(wall: float, latencies: dict[str, float], calls: int) -> str:
    from racefree.scenarios import ScenarioResult

    result = ScenarioResult(
        scenario="x",
        agents=list(latencies),
        seed=0,
        time_scale=1.0,
        wall_seconds=wall,
        expected={},
        actual={},
        measure="",
        lost_updates=0,
        lost_agents=[],
        consistent=True,
        latencies=latencies,
        extra={"calls_at_once": calls},
    )
    return result.timing()


def test_the_timing_sentence_says_when_the_machinery_took_the_time() -> None:
    tiny = _timed(0.05, {"A": 0.001, "B": 0.002}, calls=2)
    assert tiny.endswith("took longer than the calls themselves.")
    assert "about" not in tiny


def test_the_timing_sentence_follows_the_recorded_overlap() -> None:
    assert _timed(3.1, {"A": 1.0, "B": 2.0}, calls=1).endswith("about their sum.")
    assert _timed(2.1, {"A": 1.0, "B": 2.0}, calls=2).endswith("about the slowest call.")
    assert _timed(2.9, {"A": 1.0, "B": 2.0, "C": 1.0}, calls=2).endswith("less than their sum.")
