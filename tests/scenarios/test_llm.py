from __future__ import annotations

from racefree.scenarios import SimulatedLLM, agent_names


def test_agent_names_start_with_the_three_lesson_roles_then_generate() -> None:
    assert agent_names(3) == ["Researcher", "Analyzer", "Writer"]
    names = agent_names(12)
    assert len(set(names)) == 12
    assert names[10:] == ["Agent11", "Agent12"]


def test_latencies_are_seeded_per_agent_and_scaled() -> None:
    llm = SimulatedLLM(seed=42, time_scale=0.5)
    again = SimulatedLLM(seed=42, time_scale=0.5)
    # Asking in another order gives the same per-agent draws.
    first = [llm.plan(n) for n in ("Researcher", "Writer")]
    second = [again.plan(n) for n in ("Writer", "Researcher")][::-1]
    assert first == second
    assert all(0.5 <= reply.latency <= 1.5 for reply in first)
    assert SimulatedLLM(seed=43).plan("Researcher") != SimulatedLLM(seed=42).plan("Researcher")


def test_call_returns_the_planned_reply() -> None:
    llm = SimulatedLLM(seed=1, time_scale=0.001)
    planned = llm.plan("Writer", 0), llm.plan("Writer", 1)
    assert (llm.call("Writer"), llm.call("Writer")) == planned
