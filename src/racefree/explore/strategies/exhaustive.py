"""Bounded exhaustive search with partial-order reduction (sleep sets).

A depth-first search over the decisions of a run, re-running the workflow
from the start for each path (stateless, as in VeriSoft and CHESS). Two steps
of different agents *commute* when no shared key is written by one and
touched by the other (:func:`~racefree.explore.strategies.base.independent`);
orderings that differ only by swapping commuting steps end in the same state
and need not both be run.

Two techniques do the pruning. Dynamic partial-order reduction (Flanagan and
Godefroid, POPL 2005) looks at each finished run for pairs of steps that
could have happened the other way round, and only backtracks to try those.
Sleep sets (Godefroid, 1996) then make sure no ordering is run twice:
after exploring agent ``t`` at a decision, ``t`` "sleeps" in the sibling
branches until some step that does not commute with ``t``'s next step runs;
a branch whose only runnable agents are asleep is a re-ordering of one
already explored and is not counted. The
runs that are counted are exactly one per equivalence class (Mazurkiewicz
trace) of orderings, so when the search ends the summary can say "all N
distinct orderings explored". The bound is the ``schedules`` budget; a
search cut short says how far it got.

What it relies on: the footprints. A step's footprint is the set of keys
announced with ``hooks.point`` or recorded in a ``History`` during it, plus
the locks, threads and queues it used. Shared state touched without either
is invisible, and orderings that differ only there are treated as one.
One dependence has no key: a step that cancels an event loop's pending timer
(wait_for's timeout, once the call it guards has ended) disables it, so the
timer never runs and no race with it is seen; the loop marks such a step
(``CANCELS``) and the timer is tried at the last decision before it.
Another is the clock, once a run waits with a timeout under latency "any":
whether the timeout may fire hangs on the deadlines of the other pending
waits, which were set from a clock that earlier wakes moved, so a step that
moved the clock and one that set a deadline do not commute (``CLOCK_MOVED``,
``CLOCK_READ``, see :func:`~racefree.explore.strategies.base.independent`).
Such workflows have many more orderings (the exporter of the timeout tests:
65 before, 2,292 with the clock ordered).
The workflow must be deterministic given the schedule (a re-run that offers
different choices raises ``ReplayDivergedError``).

Splitting the search (worker processes, CI shards). The first :data:`TOP`
decisions of a path, and the first :data:`SPINE` of the leftmost path (every
decision taking its first try), try every awake candidate, not only those a
race asks for: so which subtrees hang below them is known from the first run
of each, without the races found in the others. Each such subtree is a
*unit*, numbered in depth-first order. A share ``(i, n)`` of the search walks the
same tree but, in a unit with ``unit % n != i``, runs only its first run
(uncounted: it gives the footprints that the sleep sets of the later
siblings need), then skips the rest of that unit. Units do not depend on
each other beyond that, so the shares together run exactly the runs of the
whole search, and one process runs them in the same order as the shares'
units put end to end.
"""

from __future__ import annotations

from collections.abc import Sequence

from racefree.errors import ReplayDivergedError
from racefree.explore.schedule import Choice
from racefree.explore.strategies.base import (
    CANCELS,
    NOT_STATE,
    Decision,
    Step,
    Strategy,
    independent,
)

__all__ = ["SPINE", "TOP", "Exhaustive"]

Footprint = dict[str, bool]


def _state_keys(footprint: Footprint) -> bool:
    """Does a footprint touch shared state (not only locks and threads)?"""
    return any(not key.startswith(NOT_STATE) for key in footprint)


#: Decisions at the top of the tree at which every awake candidate is tried (see above).
TOP = 3

#: ... and the first decisions of the path of first tries (the leftmost path), down to
#: this depth: sleep sets prune later siblings most, so the leftmost subtrees are the big
#: ones, and splitting them evens out the units' sizes.
SPINE = 8


class _Node:
    """A decision on the current path: who could run, who was tried, who sleeps."""

    __slots__ = ("backtrack", "candidates", "chosen", "done", "first", "sleep", "splits", "step")

    def __init__(
        self, step: int, candidates: tuple[Choice, ...], sleep: dict[Choice, Footprint]
    ) -> None:
        self.step = step
        self.candidates = candidates
        self.sleep = sleep
        self.done: dict[Choice, Footprint] = {}
        self.chosen: Choice = candidates[0]
        self.first: Choice = candidates[0]  # the candidate tried first
        self.backtrack: set[Choice] = set()
        self.splits = False  # every awake candidate is tried; each begins a unit


class Exhaustive(Strategy):
    """Depth-first search over decisions, pruned with sleep sets."""

    name = "exhaustive"
    same_seed_every_run = True

    def __init__(self) -> None:
        self.seed = 0
        self._stack: list[_Node] = []
        self._depth = 0
        self._spine = True  # every decision of this run so far took its first try
        self._seen = 0  # trace steps already folded into the running sleep set
        self._sleep: dict[Choice, Footprint] = {}
        self._redundant = False
        self._finished = False
        self.distinct = 0
        self.redundant_runs = 0
        self.runs = 0
        self._node_at: dict[int, int] = {}
        self._restart = False
        self.restarted = False  # the second run diverged and the search began again
        # A run after the first waited with a timeout: the clock orders steps from then on
        # (Strategy.clock_ordered), but the runs before did not order it, so the search
        # cannot know it ran every ordering.
        self.clock_late = False
        self._clock_seen = False
        self.share: tuple[int, int] | None = None  # (i, n): run only the units i, i + n, ...
        self._unit = -1
        self._pos = 0
        self._new_unit = True
        #: After ``end_run``: the run's place in the whole search (unit, then run in it, as
        #: one number), whether this share owns it, and how the search counted it
        #: ("distinct", "redundant", or "warm-up": a first run that the search began again
        #: after).
        self.last_key = 0
        self.last_owned = True
        self.last_kind = "distinct"

    @classmethod
    def merged(cls, distinct: int, redundant: int, finished: bool, restarted: bool) -> Exhaustive:
        """A search that reports the counts of shares put together (for its summary)."""
        search = cls()
        search.distinct, search.redundant_runs = distinct, redundant
        search._finished, search.restarted = finished, restarted
        return search

    @property
    def next_unit(self) -> int | None:
        """The unit the next run belongs to, or None when the search is over."""
        if self._finished:
            return None
        return self._unit + 1 if self._new_unit else self._unit

    @property
    def next_key(self) -> int:
        """After ``new_run``: the key of the run about to start (see ``last_key``)."""
        return ((self._unit + 1) << 32) | self._pos

    def _owns(self, unit: int) -> bool:
        return self.share is None or unit % self.share[1] == self.share[0]

    def new_run(self, run: int) -> bool:
        if self._finished:
            return False
        if self._new_unit:
            self._unit, self._pos, self._new_unit = self._unit + 1, 0, False
        else:
            self._pos += 1
        self._depth = 0
        self._spine = True
        self._seen = 0
        self._sleep = {}
        self._redundant = False
        return True

    def _fold(self, trace: Sequence[Step], upto: int) -> None:
        """Advance the running sleep set over trace steps ``self._seen .. upto - 1``."""
        stack = self._stack
        for index in range(self._seen, upto):
            step = trace[index]
            depth = self._node_at.get(index)  # is this step a decision on the current path?
            if depth is not None:
                node = stack[depth]
                base = dict(node.sleep)
                base.update(node.done)
                base.pop(step.id, None)
                self._sleep = {u: f for u, f in base.items() if independent(f, step.footprint)}
                continue
            if step.id in self._sleep:
                self._redundant = True
            if self._sleep:
                self._sleep = {
                    u: f
                    for u, f in self._sleep.items()
                    if u != step.id and independent(f, step.footprint)
                }
        self._seen = upto

    def choose(self, decision: Decision) -> int:
        if self._restart:
            return decision.default
        trace = decision.trace
        if self._depth == 0:
            self._node_at = {node.step: d for d, node in enumerate(self._stack)}
        self._fold(trace, len(trace))
        ids = tuple(c.id for c in decision.candidates)
        depth = self._depth
        if depth < len(self._stack):
            node = self._stack[depth]
            if node.candidates != ids or node.step != len(trace):
                if self.runs == 1 and not self.restarted:
                    # The first run set things up that later runs reuse (a first import, a
                    # connection, a cache): finish this run on natural timing and start the
                    # search again from it, once.
                    self._restart = True
                    self._redundant = True
                    return decision.default
                raise ReplayDivergedError(
                    f"Exhaustive search re-ran the workflow and at step {len(trace) + 1} it "
                    f"offered {self._names(decision)} instead of the agents it offered before. "
                    "The workflow is not deterministic under the explorer (it reads the real "
                    "clock, an unseeded random, or state the explorer cannot see)."
                )
            if node.chosen != node.first:
                self._spine = False
            self._depth += 1
            return ids.index(node.chosen)
        if self._redundant:
            return decision.default
        # A new decision: try the natural-timing choice first, then the others in order.
        order = [ids[decision.default], *(i for i in ids if i != ids[decision.default])]
        awake = [i for i in order if i not in self._sleep]
        if not awake:
            self._redundant = True
            return decision.default
        node = _Node(len(trace), ids, dict(self._sleep))
        node.chosen = awake[0]
        node.backtrack.add(node.chosen)
        node.first = node.chosen
        node.splits = depth < TOP or (self._spine and depth < SPINE)
        if node.splits:
            node.backtrack.update(ids)  # every awake candidate: the units do not depend on races
        self._stack.append(node)
        self._node_at[node.step] = depth
        self._depth += 1
        return ids.index(node.chosen)

    @staticmethod
    def _names(decision: Decision) -> str:
        return ", ".join(c.name for c in decision.candidates)

    def end_run(self, trace: Sequence[Step], failed: bool) -> None:
        if self.clock_ordered and not self._clock_seen:
            self._clock_seen = True
            self.clock_late = self.runs > 0
        self.runs += 1
        if self._restart:
            self._restart, self.restarted = False, True
            self._stack, self._node_at = [], {}
            self.distinct = self.redundant_runs = 0
            # Before every unit, counted once (by the owner of unit 0).
            self.last_key, self.last_owned, self.last_kind = 0, self._owns(0), "warm-up"
            self._unit, self._new_unit = -1, True
            return
        self.last_key = ((self._unit + 1) << 32) | self._pos
        self.last_owned = self._owns(self._unit)
        if not self._redundant:
            if self._depth == 0:
                self._node_at = {node.step: d for d, node in enumerate(self._stack)}
            self._fold(trace, len(trace))
        self.last_kind = "redundant" if self._redundant else "distinct"
        if self._redundant:
            self.redundant_runs += 1
        else:
            self.distinct += 1
        if not self._add_races(trace) and self.distinct + self.redundant_runs == 1:
            # The first run raced with nothing: every ordering is this one, as partial-order
            # reduction alone would conclude; every share runs this run and concludes so too.
            # But when the run touched no shared state at all that the explorer sees, the
            # top decisions try every awake candidate all the same: state it cannot see (a
            # plain list that asyncio tasks append to) may order them, and those few runs
            # show it (a passing and a failing run of one ordering: see split_orderings).
            blind = not any(_state_keys(step.footprint) for step in trace)
            for node in self._stack:
                if not (blind and node.splits):
                    node.backtrack = {node.chosen}
        stack = self._stack
        if not self.last_owned:
            # another share runs the rest of this unit: keep the decisions that split
            del stack[next((i for i, n in enumerate(stack) if not n.splits), len(stack)) :]
        # Backtrack: the deepest decision with an untried, awake candidate that a race asks for.
        while stack:
            node = stack[-1]
            if node.step < len(trace):
                node.done[node.chosen] = dict(trace[node.step].footprint)
            left = [
                c
                for c in node.candidates
                if c in node.backtrack and c not in node.done and c not in node.sleep
            ]
            if left:
                node.chosen = left[0]
                break
            stack.pop()
        if not stack:
            self._finished = True
        self._new_unit = not stack or stack[-1].splits  # the next path leaves this unit
        self._node_at = {}

    def _add_races(self, trace: Sequence[Step]) -> bool:
        """Dynamic partial-order reduction (Flanagan and Godefroid, POPL 2005).

        For every pair of steps ``i < j`` of different agents that touch a common key
        (one writing) and are not already ordered through other steps, the ordering
        could be reversed: ask the decision before ``i`` to also try ``j``'s agent
        (or, when that agent could not run there, every agent that could). Returns
        whether the run had any such pair.
        """
        raced = False
        node_at = {node.step: node for node in self._stack}
        clocks: list[dict[Choice, int]] = []
        local: list[int] = []
        last: dict[Choice, int] = {}
        for j, step in enumerate(trace):
            agent = step.id
            prev = last.get(agent)
            clock = dict(clocks[prev]) if prev is not None else {}
            mine = (local[prev] if prev is not None else 0) + 1
            footprint = step.footprint
            if footprint:
                for i in range(j - 1, -1, -1):
                    other = trace[i]
                    if other.id == agent or not other.footprint:
                        continue
                    if clock.get(other.id, 0) >= local[i]:
                        continue  # already ordered before j through another step
                    if independent(other.footprint, footprint):
                        continue
                    raced = True
                    node = node_at.get(i)
                    if node is not None:
                        if agent in node.candidates:
                            node.backtrack.add(agent)
                        else:
                            node.backtrack.update(node.candidates)
                    for who, tick in clocks[i].items():
                        if clock.get(who, 0) < tick:
                            clock[who] = tick
            clock[agent] = mine
            clocks.append(clock)
            local.append(mine)
            last[agent] = j
        return self._add_disabled(trace) or raced

    def _add_disabled(self, trace: Sequence[Step]) -> bool:
        """A step that cancelled a timer (``CANCELS``) disabled it: ask the last decision
        before it at which that timer's owner had another way to go to try it. No shared
        key shows this dependence: wait_for's timeout, cancelled once the call it guards
        ended, never runs, so no race with it is ever seen. Returns whether there was one."""
        found = False
        stack = self._stack
        for j, step in enumerate(trace):
            for key in step.footprint:
                if not key.startswith(CANCELS):
                    continue
                owner = int(key[len(CANCELS) :])
                for node in reversed(stack):
                    if node.step > j:
                        continue
                    others = [c for c in node.candidates if c[0] == owner and c != node.chosen]
                    if others:
                        node.backtrack.update(others)
                        found = True
                        break
        return found

    @property
    def complete(self) -> bool:
        return self._finished and not self.clock_late

    def summary(self) -> list[str]:
        again = (
            " Its second run offered other choices than its first (the first set up what "
            "later runs reuse: an import, a connection, a cache), so the search began again "
            "after it."
            if self.restarted
            else ""
        )
        if self._finished and self.clock_late:
            return [
                "Exhaustive search finished, but a run after the first waited with a timeout: "
                "from then on it ordered steps by the clock they moved or read, which the runs "
                "before had not, so it cannot know that every ordering ran."
                f"{again}"
            ]
        if self._finished:
            # No count of its own here: a run that began as an earlier one did can still end
            # in an ordering of its own, so the distinct orderings are the runner's to count.
            return [f"Exhaustive search finished: every branch it had left to try was run.{again}"]
        return [
            f"Exhaustive search stopped after {self.distinct:,} distinct ordering"
            f"{'s' if self.distinct != 1 else ''} (at a failure, the time limit or the "
            f"schedules budget); not every ordering was run.{again}"
        ]
