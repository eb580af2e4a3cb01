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

The turns go in *rounds*, so that an exploration can be split over worker
processes or CI shards and still run what one process runs. Round ``r`` is
unit ``r`` of exhaustive search (the ``r``-th subtree below its first
decisions, see :mod:`~racefree.explore.strategies.exhaustive`) with PCT and
random walk taking their turns beside it, as many runs each as exhaustive
search takes in the round (in every round after exhaustive search is over,
:data:`BLOCK` each). PCT's and random walk's runs are numbered by round and
turn, so what they do in a round depends on nothing outside it, but for what
PCT learns of the runs' length: from its earlier runs in the round and from
the first run of every unit of exhaustive search so far. A share ``(i, n)``
owns the rounds ``r % n == i``; in another round it runs only the first run
of the exhaustive unit, uncounted, which is what its own rounds need to
know. When exhaustive search begins again after a first run that set up what
later runs reuse (see :class:`~racefree.explore.strategies.exhaustive.Exhaustive`),
its units are counted from the round in which it did.
"""

from __future__ import annotations

from collections.abc import Sequence

from racefree.errors import ReplayDivergedError
from racefree.explore.strategies.base import Decision, Step, Strategy
from racefree.explore.strategies.exhaustive import Exhaustive
from racefree.explore.strategies.pct import BLOCK, PCT
from racefree.explore.strategies.random import RandomWalk

__all__ = ["Portfolio"]


#: The most runs a round's PCT or random walk part may take (their run numbers hold it).
_ROUND = 1 << 20


class Portfolio(Strategy):
    """Exhaustive search, PCT (of ``depth``) and random walk, in turn, in rounds."""

    name = "auto"

    def __init__(self, depth: int = 3) -> None:
        self.exhaustive = Exhaustive()
        self.pct = PCT(depth=depth)
        self.random = RandomWalk()
        self.members: list[Strategy] = [self.exhaustive, self.pct, self.random]
        self.depth = depth
        self.share: tuple[int, int] | None = None
        self._current: Strategy = self.exhaustive
        self._broken = False  # the current run's exhaustive part diverged
        self.dropped: str = ""
        self.found_by: tuple[str, int] | None = None
        self.runs_by: dict[str, int] = {m.name: 0 for m in self.members}
        self._round = 0
        # The round that exhaustive search's unit 0 runs in: 0, or the round of the first
        # run it began again after (a first run that warmed a cache; see Exhaustive).
        self._base = 0
        self._pos = 0  # runs started in the round
        self._turn = 0  # 0 exhaustive, 1 PCT, 2 random walk
        self._took: list[bool] = []  # who ran in the current cycle of turns
        self._count = {"pct": 0, "random": 0}  # runs in the round
        self._least = 0  # PCT and random runs a round has even without exhaustive ones
        #: For the runner: the number a PCT or random run's seed is derived from.
        self.run_number = 0
        #: After ``end_run``: the run's place in the whole exploration, whether this share
        #: counts it, and which part ran it ("exhaustive:distinct", "pct", ...).
        self.last_key = 0
        self.last_owned = True
        self.last_kind = ""

    def begin(self, seed: int) -> None:
        self.seed = seed
        for member in self.members:
            member.begin(seed)
        self.exhaustive.share = self.share

    def _owns(self, round_: int) -> bool:
        return self.share is None or round_ % self.share[1] == self.share[0]

    @property
    def next_key(self) -> int:
        """After ``new_run``: the key of the run about to start."""
        return ((self._round + 1) << 32) | self._pos

    def _wants(self, turn: int) -> bool:
        """Whether the part whose turn it is runs now, in this round."""
        if turn == 0:
            return self._searching()
        name = "pct" if turn == 1 else "random"
        if not self._owns(self._round):  # another share's round: only the unit's first run
            return False
        return self._count[name] < self._least or (bool(self._took) and self._took[0])

    def _searching(self) -> bool:
        """Whether exhaustive search has a unit to run in the current round."""
        unit = self.exhaustive.next_unit
        return not self.dropped and unit is not None and unit + self._base == self._round

    def new_run(self, run: int) -> bool:
        while True:
            turn = self._turn
            self._turn = (turn + 1) % 3
            if turn == 0:
                self._took = []
            wants = self._wants(turn)
            self._took.append(wants)
            if wants:
                break
            if turn == 2 and not any(self._took):  # nobody ran a whole cycle: next round
                self._round, self._pos = self._round + 1, 0
                self._count = {"pct": 0, "random": 0}
                self._least = 0 if self._searching() else BLOCK
                if self._round >= _ROUND:  # pragma: no cover - a million rounds
                    return False
        member = self.members[turn]
        if turn:
            name = member.name
            # Round r's runs are numbered from (r + 1) * _ROUND: never in PCT's block 0,
            # whose warm-up here is the exhaustive units' first runs.
            self.run_number = ((self._round + 1) * _ROUND + self._count[name]) | (turn - 1) << 60
            self._count[name] += 1
            member.new_run(self.run_number & ~(1 << 60))
        else:
            member.new_run(self.runs_by[member.name])
        self._current = member
        self._broken = False
        return True

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
        self.runs_by[member.name] += 1
        self.last_key, self.last_owned = self.next_key, self._owns(self._round)
        self._pos += 1
        if member is self.exhaustive:
            if self._broken:
                self.last_kind = "exhaustive:dropped"
            else:
                member.end_run(trace, failed)
                self.last_owned = member.last_owned
                self.last_kind = f"exhaustive:{member.last_kind}"
                if member.last_kind == "warm-up":
                    # The search begins again, from unit 0, in this round: without this it
                    # waited for a round that had gone by and never ran again.
                    self._base = self._round
                if member.last_key & 0xFFFFFFFF == 0:  # a unit's first run: every share runs it
                    self.pct.learn(sum(1 for step in trace if len(step.candidates) > 1))
        else:
            member.end_run(trace, failed)
            self.last_kind = member.name
        if failed and self.found_by is None:
            self.found_by = (member.name, self.runs_by[member.name])

    @property
    def complete(self) -> bool:
        return self.exhaustive.complete

    @property
    def clock_ordered(self) -> bool:
        return self.exhaustive.clock_ordered

    @clock_ordered.setter
    def clock_ordered(self, value: bool) -> None:
        for member in self.members:
            member.clock_ordered = value

    @classmethod
    def merged(
        cls,
        depth: int,
        runs_by: dict[str, int],
        found_by: tuple[str, int] | None,
        dropped: str,
        exhaustive: Exhaustive,
        pct: PCT,
    ) -> Portfolio:
        """A portfolio that reports the counts of shares put together (for its summary)."""
        portfolio = cls(depth)
        portfolio.runs_by, portfolio.found_by, portfolio.dropped = runs_by, found_by, dropped
        portfolio.exhaustive, portfolio.pct = exhaustive, pct
        return portfolio

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
        if self.runs_by["pct"] > 1:
            lines.extend(self.pct.summary())
        return lines

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "depth": self.depth}
