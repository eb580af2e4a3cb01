"""PCT: probabilistic concurrency testing with a bug-depth guarantee.

Burckhardt, Kothari, Musuvathi and Nagarakatte, "A Randomized Scheduler with
Probabilistic Guarantees of Finding Bugs", ASPLOS 2010. The *depth* of a bug
is the number of ordering constraints between agents' steps that it needs:
two agents claiming one task need two (each checks before the other claims),
a usually-slow agent answering first needs one. PCT finds a bug of
depth ``d`` in a run with ``n`` agents and ``k`` scheduling decisions with
probability at least ``1 / (n * k**(d - 1))`` per run, whatever the workflow,
provided the change points are drawn over at least ``k`` decisions. Here
``k`` is learnt from earlier runs: the longest of the first :data:`BLOCK`
runs (the warm-up) and of the earlier runs of the run's own block of
:data:`BLOCK` consecutive runs. So the bound holds from the second run on,
for runs no longer than those. Learning only from the warm-up and the run's
own block (not from every earlier run) is what lets an exploration be split
by blocks over worker processes or CI shards and still run exactly the runs
one process would: each share runs the warm-up, then its own blocks.

How one run is scheduled (our form of the paper's algorithm):

* every agent gets a distinct random priority above ``d - 1`` when it first
  appears (agents that appear later are placed uniformly among the others,
  which gives a uniformly random priority order);
* ``d - 1`` change points are drawn uniformly among the decisions ``1..k``
  (``k`` is the largest number of decisions seen in the warm-up or earlier
  in the run's block, so it adapts to the workflow);
* at every decision the candidate with the highest priority runs; at the
  ``i``-th change point the agent that just ran drops to priority ``i``
  (below every initial priority), which is what lets a lower-priority agent
  slip in between two of its steps;
* an agent that has gone to sleep (``time.sleep``, ``asyncio.sleep``, a
  model call) at more than :data:`PATIENCE` decisions in a row, each time
  chosen again ahead of the others, *yields*: it drops below every other
  agent. A strict priority scheduler would otherwise run a looping agent (a
  heartbeat: ``while not done: beat(); time.sleep(1)``) forever ahead of
  the agents it waits for, and report a livelock that no real scheduler
  produces. Below that patience, a long sequence of one agent's calls still
  runs ahead of everyone, which is how PCT finds a bug behind one. (Pure
  polls, which change nothing, are folded for every strategy:
  :mod:`racefree.explore.strategies.fair`.)

Invariants kept: priorities are distinct; only the agent that ran the step
before a change point, or that yields, is lowered; a run makes no random draw outside
``new_run`` and agent arrival, so a fixed seed gives the same runs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from racefree.explore.strategies.base import Decision, Step, Strategy

__all__ = ["BLOCK", "PATIENCE", "PCT"]

#: Sleeping steps in a row that an agent may take ahead of the others before it yields.
PATIENCE = 64

#: Runs per block: ``k`` is learnt from block 0 (the warm-up) and the run's own block.
BLOCK = 16


class PCT(Strategy):
    """Priority-based scheduling with ``depth - 1`` random priority change points."""

    name = "pct"

    def __init__(self, depth: int = 3) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self.seed = 0
        self._rng = random.Random(0)
        self._priority: dict[int, float] = {}
        self._changes: dict[int, int] = {}
        self._decisions = 0
        self.max_decisions = 0  # over every run seen (the summary's k)
        self.max_agents = 0
        self._warm_up = 0  # the most decisions of a run of block 0
        self._block = -1
        self._in_block = 0  # the most decisions of an earlier run of the current block
        self._last: int | None = None
        self._floor = 0.0  # below every change-point priority (1 .. depth - 1)
        self._streak: tuple[int | None, int] = (None, 0)

    def new_run(self, run: int) -> bool:
        rng = self._rng = random.Random(f"racefree-pct:{self.seed}:{run}")
        self._priority = {}
        self._decisions = 0
        self._last = None
        self._floor = 0.0
        self._streak = (None, 0)
        block = run // BLOCK
        if block != self._block:
            self._block, self._in_block = block, 0
        k = max(self._warm_up, self._in_block, 1)
        points = rng.sample(range(1, k + 1), min(self.depth - 1, k))
        self._changes = {point: i + 1 for i, point in enumerate(points)}
        return True

    def _prio(self, agent: int) -> float:
        priority = self._priority.get(agent)
        if priority is None:
            # Uniform in (depth, depth + 1): a random place among the initial priorities.
            priority = self.depth + self._rng.random()
            self._priority[agent] = priority
        return priority

    def choose(self, decision: Decision) -> int:
        self._decisions += 1
        lower = self._changes.get(self._decisions)
        if decision.trace:
            last = decision.trace[-1].id[0]
            if lower is not None:
                self._priority[last] = float(lower)
            if any(c.id[0] == last and c.kind == "resume" for c in decision.candidates):
                agent, count = self._streak
                self._streak = (last, count + 1 if agent == last else 1)
                if self._streak[1] > PATIENCE:  # it slept again and again while others waited
                    self._floor -= 1.0
                    self._priority[last] = self._floor
                    self._streak = (last, 0)
        best, best_prio = 0, -1.0
        for index, candidate in enumerate(decision.candidates):
            priority = self._prio(candidate.id[0])
            if priority > best_prio:
                best, best_prio = index, priority
        return best

    def learn(self, decisions: int) -> None:
        """Count a run of another strategy that every share runs too (auto's exhaustive
        runs that begin a unit) as part of the warm-up."""
        self._warm_up = max(self._warm_up, decisions)

    def end_run(self, trace: Sequence[Step], failed: bool) -> None:
        self._in_block = max(self._in_block, self._decisions)
        if self._block == 0:
            self._warm_up = self._in_block
        self.max_decisions = max(self.max_decisions, self._decisions)
        self.max_agents = max(self.max_agents, len({step.id[0] for step in trace}))

    def summary(self) -> list[str]:
        n, k, d = max(self.max_agents, 1), max(self.max_decisions, 1), self.depth
        bound = 1 / (n * k ** (d - 1))
        agents = f"{n} agent{'s' if n != 1 else ''}"
        decisions = f"{k} decision{'s' if k != 1 else ''}"
        return [
            f"PCT (Burckhardt et al., ASPLOS 2010), depth {d}: with {agents} and at most "
            f"{decisions} per run, each run finds any bug of depth {d} or less with probability "
            f"at least 1/(n*k^(d-1)) = 1/{round(1 / bound):,}. (Change points are drawn over "
            f"the longest of the first {BLOCK} runs and of the earlier runs in the run's block "
            f"of {BLOCK}, so the bound holds from the second run on, for runs no longer than "
            "those.)"
        ]

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "depth": self.depth}
