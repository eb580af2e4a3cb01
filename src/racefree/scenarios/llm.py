"""A simulated LLM with seeded, LLM-like latencies, and the lessons' agent names."""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from racefree.history import History

__all__ = ["LLMReply", "SimulatedLLM", "agent_names"]

_ROLES = (
    "Researcher",
    "Analyzer",
    "Writer",
    "Reviewer",
    "Planner",
    "Critic",
    "Summarizer",
    "Translator",
    "Coder",
    "Tester",
)

_PHRASES = (
    "found three sources that agree",
    "flagged a gap in the data",
    "drafted the opening section",
    "checked the figures twice",
    "proposed a shorter plan",
    "questioned the main assumption",
    "condensed the thread into five lines",
    "rendered the answer in French",
    "wrote the helper function",
    "added a failing case",
)


def agent_names(count: int) -> list[str]:
    """``count`` agent names: Researcher, Analyzer, Writer, ... then Agent11, Agent12, ..."""
    return [_ROLES[i] if i < len(_ROLES) else f"Agent{i + 1}" for i in range(count)]


@dataclass(frozen=True)
class LLMReply:
    """What one simulated call returns: its text, its token count and how long it took."""

    text: str
    tokens: int
    latency: float


@functools.lru_cache(maxsize=4096)
def _plan(seed: int, agent: str, call: int, low: float, high: float, time_scale: float) -> LLMReply:
    # Seeding a Random from a string costs more than the rest of a call; the explorer
    # makes the same calls thousands of times, and a reply is a pure function of these.
    rng = random.Random(f"{seed}:{agent}:{call}")
    latency = rng.uniform(low, high) * time_scale
    phrase = _PHRASES[rng.randrange(len(_PHRASES))]
    return LLMReply(text=f"{agent} {phrase}", tokens=rng.randint(80, 400), latency=latency)


class SimulatedLLM:
    """Stands in for a model: each call sleeps for an LLM-like latency, then answers.

    Latencies are 1 to 3 seconds times ``time_scale``. Every (agent, call
    number) has its own seeded draw, so an agent's latency does not depend on
    the order in which threads happen to call: the same seed gives the same
    latencies in a sequential and in a parallel run.

    With a ``history``, each call is recorded there as a ``call`` event by
    the calling agent just before it waits: the lessons' timelines draw it,
    and the checker counts it as a moment when other agents may run.
    """

    MIN_SECONDS = 1.0
    MAX_SECONDS = 3.0

    def __init__(
        self, seed: int, time_scale: float = 1.0, *, history: History | None = None
    ) -> None:
        self.seed = seed
        self.time_scale = time_scale
        self.history = history
        self._calls: dict[str, int] = {}

    def plan(self, agent: str, call: int = 0) -> LLMReply:
        """The reply that ``agent``'s ``call``-th call will give, without sleeping."""
        return _plan(self.seed, agent, call, self.MIN_SECONDS, self.MAX_SECONDS, self.time_scale)

    def _next(self, agent: str) -> LLMReply:
        # Each agent calls from its own thread or task, so this counter is per
        # agent and never shared between two concurrent callers.
        call = self._calls.get(agent, 0)
        self._calls[agent] = call + 1
        if self.history is not None:
            self.history.record("call", agent=agent)
        return self.plan(agent, call)

    def call(self, agent: str) -> LLMReply:
        """Block for the call's latency (a thread waiting on the network), then reply."""
        reply = self._next(agent)
        time.sleep(reply.latency)
        return reply

    async def acall(self, agent: str) -> LLMReply:
        """Await the call's latency (a task waiting on the network), then reply."""
        import asyncio

        reply = self._next(agent)
        await asyncio.sleep(reply.latency)
        return reply
