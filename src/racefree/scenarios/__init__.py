"""The lesson workloads, written once and shared by the lesson scripts and ``racefree demo``.

Standard library only: the lesson scripts import this package straight from a
clone, with nothing installed.
"""

from __future__ import annotations

from racefree.scenarios.llm import LLMReply, SimulatedLLM, agent_names
from racefree.scenarios.result import ScenarioResult

__all__ = ["LLMReply", "ScenarioResult", "SimulatedLLM", "agent_names"]
