"""The default strategy: exhaustive search, PCT and random walk taking turns.

No single strategy finds every shape of bug within a small budget:

* random walk misses a bug that needs one agent to finish a long sequence
  before another's single step (every decision must go the same way:
  about ``2**-20`` per run behind 20 steps), which PCT finds in a few runs;
* exhaustive search, depth first, spends its budget re-ordering the last
  steps of a run, so a bug that needs an early step moved, among many
  conflicting steps of unrelated agents, comes late, while random walk finds
  it in a few runs;
* PCT finds bugs of small depth with a stated probability, but never proves
  anything; only a finished exhaustive search does.

So runs go round-robin to the three, each seeing only its own runs, in order,
as if it ran alone (exhaustive search's runs all get the same run seed, the
others a seed per run). The first failure stops the exploration, whoever
found it, and the summary says which part did. When exhaustive search
finishes, every distinct ordering of the steps the explorer can see has run,
and the summary says so; PCT and random walk then share the rest of the
budget, because they also re-order what the explorer cannot see (which
pending wait of an untracked agent ends first), where exhaustive search
treats every order as the same. A workflow that is not deterministic
under the explorer cannot be searched exhaustively; that part then drops out
and says why, and the other two go on.
"""

from __future__ import annotations

from collections.abc import Sequence

from racefree.errors import ReplayDivergedError
from racefree.explore.strategies.base import Decision, Step, Strategy
from racefree.explore.strategies.exhaustive import Exhaustive
from racefree.explore.strategies.pct import PCT
from racefree.explore.strategies.random import RandomWalk

__all__ = ["Portfolio"]


class Portfolio(Strategy):
    """Round-robin over exhaustive search, PCT (of ``depth``) and random walk."""

    name = "auto"

    def __init__(self, depth: int = 3) -> None:
        self.exhaustive = Exhaustive()
        self.members: list[Strategy] = [self.exhaustive, PCT(depth=depth), RandomWalk()]
        self.depth = depth
        self._active: list[Strategy] = list(self.members)
        self._runs: dict[int, int] = {id(m): 0 for m in self.members}
        self._turn = 0
        self._current: Strategy = self.members[0]
        self._broken = False  # the current run's exhaustive part diverged
        self.dropped: str = ""
        self.found_by: tuple[str, int] | None = None
        self.runs_by: dict[str, int] = {m.name: 0 for m in self.members}

    def begin(self, seed: int) -> None:
        self.seed = seed
        for member in self.members:
            member.begin(seed)

    def new_run(self, run: int) -> bool:
        while self._active:
            member = self._active[self._turn % len(self._active)]
            if member.new_run(self._runs[id(member)]):
                self._current = member
                self._broken = False
                self._turn += 1
                return True
            self._active.remove(member)
        return False

    def fixed_seed(self) -> bool:
        return self._current.fixed_seed()

    def choose(self, decision: Decision) -> int:
        if self._broken:
            return decision.default
        try:
            return self._current.choose(decision)
        except ReplayDivergedError as exc:
            if self._current is not self.exhaustive:
                raise
            # Not deterministic under the explorer: finish this run on natural timing and
            # leave exhaustive search out from now on.
            self._broken = True
            self.dropped = str(exc)
            return decision.default

    def end_run(self, trace: Sequence[Step], failed: bool) -> None:
        member = self._current
        self._runs[id(member)] += 1
        self.runs_by[member.name] += 1
        if self._broken:
            if member in self._active:
                self._active.remove(member)
            self._turn -= 1  # the next member keeps its turn
        else:
            member.end_run(trace, failed)
        if failed and self.found_by is None:
            self.found_by = (member.name, self._runs[id(member)])

    @property
    def complete(self) -> bool:
        return self.exhaustive.complete

    def summary(self) -> list[str]:
        parts = ", ".join(f"{name} {count:,}" for name, count in self.runs_by.items())
        lines = [f"Strategy auto: exhaustive search, PCT and random walk in turn (runs: {parts})."]
        if self.found_by is not None:
            name, nth = self.found_by
            lines.append(f"The failure was found by the {name} part, on its run {nth:,}.")
        if self.dropped:
            lines.append(
                "Exhaustive search dropped out: the workflow is not deterministic under the "
                f"explorer. {self.dropped}"
            )
        lines.extend(self.exhaustive.summary() if not self.dropped else [])
        pct = self.members[1]
        if self.runs_by["pct"] > 1:
            lines.extend(pct.summary())
        return lines

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "depth": self.depth}
