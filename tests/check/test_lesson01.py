"""The checker on lesson 01: the broken runs are flagged with the right agents,
the fixes never are."""

from __future__ import annotations

import threading

import pytest

from racefree import History, Report, check, track
from racefree.scenarios import lesson01
from racefree.scenarios.llm import LLMReply, SimulatedLLM, agent_names
from racefree.scenarios.result import ScenarioResult

NAMES = agent_names(3)


def _lost_by_overwrites(report: Report, key: str) -> set[str]:
    return {
        lost.agent
        for finding in report.of_kind("lost-update")
        if finding.keys == (key,)
        for lost in finding.lost
        if not lost.restored
    }


@pytest.mark.parametrize("seed", range(8))
def test_broken_parallel_names_exactly_the_agents_whose_work_is_lost(seed: int) -> None:
    result = lesson01.run_broken_parallel(NAMES, seed=seed, time_scale=0.01)
    report = check(result.history)
    assert _lost_by_overwrites(report, "conversation_history") == set(result.lost_agents)
    assert report.ok == (not result.lost_agents)


def forced(name: str) -> ScenarioResult:
    """One case of race_condition_demo.py, with the agent that the script defines."""
    [(case, agent, initial)] = [
        c for c in lesson01.script("race_condition_demo").CASES if c[0] == name
    ]
    return lesson01.forced(case, agent, initial, NAMES, seed=0, time_scale=0.001)


@pytest.mark.parametrize("case", ["forced_counter", "forced_history_copy"])
def test_forced_lost_updates_name_the_lost_agents(case: str) -> None:
    result = forced(case)
    report = check(result.history)
    key = next(e.key for e in result.history.events if e.key is not None)
    assert result.lost_agents
    assert _lost_by_overwrites(report, key) == set(result.lost_agents)


def test_forced_check_then_act_is_one_double_claim_by_every_agent() -> None:
    result = forced("forced_check_then_act")
    [finding] = check(result.history).findings
    assert finding.kind == "double-claim"
    assert set(finding.agents) == set(result.final_state["runs"]) == set(NAMES)
    owner = result.final_state["owner"]
    assert set(finding.agents) - {owner} == set(result.lost_agents)


def test_forced_interleaved_turns_flags_every_split_turn() -> None:
    result = forced("forced_interleaved_turns")
    findings = check(result.history).findings
    assert {f.kind for f in findings} == {"interleaved-turn"}
    assert len(findings) == result.extra["interleaved_turns"] == len(NAMES)
    assert {f.agents[0] for f in findings} == set(NAMES)


class _TogetherLLM(SimulatedLLM):
    """Every agent is inside its model call before any returns: all read before any write."""

    def __init__(self, agents: int) -> None:
        super().__init__(seed=0, time_scale=0.0)
        self._barrier = threading.Barrier(agents)

    def call(self, agent: str) -> LLMReply:
        self._barrier.wait()
        return self.plan(agent)


def test_the_unsafe_agent_on_a_tracked_session_is_flagged_with_the_lost_agents() -> None:
    script = lesson01.script("broken_parallel")
    session = script.new_session()
    history = History()
    shared = track(session, history=history, name="session")
    llm = _TogetherLLM(len(NAMES))
    threads = [threading.Thread(target=script.agent, args=(n, shared, llm), name=n) for n in NAMES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    kept = {entry["agent"] for entry in session["conversation_history"]}
    lost = set(NAMES) - kept
    report = check(history, final_state=session)
    assert len(lost) == 2
    assert _lost_by_overwrites(report, "session.conversation_history") == lost
    assert _lost_by_overwrites(report, "session.metadata.completed") == lost
    assert {f.kind for f in report.errors} == {"lost-update"}


@pytest.mark.parametrize("run", [lesson01.run_simple_fix, lesson01.run_sequential])
def test_the_fixes_report_nothing_in_100_runs(run: object) -> None:
    for seed in range(100):
        result = run(NAMES, seed=seed, time_scale=0.002)  # type: ignore[operator]
        report = check(result.history)
        assert report.findings == (), (seed, report.text())


def test_an_empty_history_says_it_checked_nothing() -> None:
    assert check(History()).summary() == "Checked nothing: the history has no events."


def test_stress_says_a_clean_run_proves_nothing_only_when_it_was_clean() -> None:
    from racefree.explore import lessons
    from racefree.explore.stress import stress

    failing = stress(lessons.unsafe, runs=3, invariants=[lessons.nothing_lost])
    assert failing.failed == 3
    assert "proves nothing" not in failing.summary()[0]
    clean = stress(lessons.locked, runs=3, invariants=[lessons.nothing_lost])
    assert clean.failed == 0
    assert "A clean stress test proves nothing" in clean.summary()[0]
