"""ScenarioResult: what one lesson run found, for printing and for ``--json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from racefree.history import History

__all__ = ["ScenarioResult"]


@dataclass
class ScenarioResult:
    """The outcome of one scenario run.

    ``expected`` and ``actual`` count the same things (history entries,
    completed agents, task runs...); ``measure`` names the one that the summary
    table shows. ``lost_updates`` counts writes whose effect is missing from the
    final state, ``lost_agents`` names the agents whose work is missing, and
    ``consistent`` is true when the final state is what a one-at-a-time run
    would have produced. ``story`` is the step-by-step account in plain words.
    """

    scenario: str
    agents: list[str]
    seed: int | None
    time_scale: float
    wall_seconds: float
    expected: dict[str, int]
    actual: dict[str, int]
    measure: str
    lost_updates: int
    lost_agents: list[str]
    consistent: bool
    title: str = ""
    latencies: dict[str, float] = field(default_factory=dict)
    initial_state: dict[str, Any] = field(default_factory=dict)
    final_state: dict[str, Any] = field(default_factory=dict)
    story: list[str] = field(default_factory=list)
    history: History = field(default_factory=History)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_sum(self) -> float:
        """The simulated LLM time of all agents added up: a one-at-a-time run's floor."""
        return sum(self.latencies.values())

    @property
    def latency_max(self) -> float:
        """The slowest agent's simulated LLM time: a fully parallel run's floor."""
        return max(self.latencies.values(), default=0.0)

    def timing(self) -> str:
        """What the run's time shows, in one sentence that is true at any time scale.

        The overlap comes from the recorded calls (``extra["calls_at_once"]``),
        not from the clock; the clock only says whether the calls or the
        machinery around them (starting threads, recording) took the time.
        """
        wall, total, slowest = self.wall_seconds, self.latency_sum, self.latency_max
        calls = self.extra.get("calls_at_once")
        text = (
            f"Total time {wall:.2f} s; the model calls took {total:.2f} s added up, "
            f"{slowest:.2f} s the slowest"
        )
        if calls == 1:
            how = "they ran one at a time"
        elif calls is not None:
            how = f"up to {calls} ran at once"
        else:
            return text + "."
        if wall > 1.5 * total:
            return (
                f"{text}; {how}, but at this time scale starting the agents and recording "
                "them took longer than the calls themselves."
            )
        if calls == 1:
            return f"{text}: {how}, so the run took about their sum."
        near = "about the slowest call" if wall <= 1.25 * slowest else "less than their sum"
        return f"{text}: {how}, so the run took {near}."

    def to_json(self) -> dict[str, Any]:
        """The keys documented in the lesson README, JSON-ready."""
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "agents": self.agents,
            "seed": self.seed,
            "time_scale": self.time_scale,
            "wall_seconds": round(self.wall_seconds, 4),
            "expected": self.expected,
            "actual": self.actual,
            "measure": self.measure,
            "lost_updates": self.lost_updates,
            "lost_agents": self.lost_agents,
            "consistent": self.consistent,
        }
        if self.latencies:
            out["latencies"] = {name: round(s, 4) for name, s in self.latencies.items()}
            out["latency_sum"] = round(self.latency_sum, 4)
            out["latency_max"] = round(self.latency_max, 4)
        if self.initial_state:
            out["initial_state"] = self.initial_state
        out["final_state"] = self.final_state
        out["story"] = self.story
        out.update(self.extra)
        return out
