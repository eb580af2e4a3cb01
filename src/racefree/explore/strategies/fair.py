"""Fairness: a polling agent that changed nothing waits for someone else to move.

``while not results: time.sleep(0.05)`` is a *pure poll*: from one wakeup to
the next sleep the agent checks shared state, writes nothing shared and does
not read the clock, and it sleeps again at a place where it already slept
since it last changed something (the same call, from the same callers: a
loop going round). Under ``latency="any"`` any pending wait may end first,
so a strategy could wake the poller again and again ahead of the agent it
waits for: each check races with that agent's write, so exhaustive search
would branch at every one, without end, and a walk could livelock, a
livelock that no real scheduler produces.

Running a pure poll twice in a row with nobody else moving in between gives
the same step twice (it sees the same shared state and comes back to the
same place), so :class:`Fair` lets the poller run again only after another
agent has taken a step. A write that left its key as it was (a flusher's clear of
an empty buffer, a status set to what it held) changes nothing here either; it
still orders the step against others in a search. Nothing else is held back:

- a step that sleeps at a new place (tool calls in a row: ``search();
  fetch(); summarise()``, each a sleep or an await) is work moving on, and
  all of it may end inside another agent's read-modify-write;
- a step that looks at nothing shared (a loop of warm-up calls, a wait on a
  flag the explorer cannot see) races with no one, so running it again adds
  no branch to a search and cannot make one endless.

Every strategy, replays included, runs behind it, so a schedule means the
same thing for all.

What is given up: a loop that checks shared state, sleeps at the same place
and counts its rounds in local state the explorer cannot see is taken for a
poll. So ``for attempt in range(5): if done(): break; time.sleep(0.1)`` is
never seen giving up while the agent it waits for is still busy. A loop with
a deadline (``time.monotonic()``, ``Event.wait(timeout)``,
``queue.get(timeout=...)``) reads the clock, is not a pure poll, and is
explored in full. With ``latency="virtual"`` waits end in deadline order
and no filtering is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from racefree.explore.strategies.base import Decision, Site, Step, Strategy

__all__ = ["Fair"]

# Keys whose "writes" leave shared state as it was: taking and giving back a lock, and
# the clock (a poll's sleep ending moves it).
_LOCKS = (
    "lock#",
    "rlock#",
    "internal-lock#",
    "internal-rlock#",
    "lib-lock#",
    "lib-rlock#",
    "internal-clock-",
)


def _looks_at_state(step: Step) -> bool:
    for key in step.footprint:  # noqa: SIM110 (a loop: no generator to make)
        if not key.startswith(_LOCKS):
            return True
    return False


def _changes_something(step: Step) -> bool:
    if step.read_clock:
        return True
    kept = step.kept  # written, but left as they were: a clear of an empty buffer
    for key, wrote in step.footprint.items():
        if wrote and not key.startswith(_LOCKS) and (kept is None or key not in kept):
            return True
    return False


class Fair(Strategy):
    """Wraps a strategy; hides an agent that just finished a pure poll (see the module doc)."""

    def __init__(self, inner: Strategy, *, enabled: bool = True) -> None:
        self.inner = inner
        self.enabled = enabled
        self.name = inner.name  # type: ignore[misc]
        self._seen = 0
        self._pure: dict[int, bool] = {}
        self._waiting: set[int] = set()
        self._looked: dict[int, bool] = {}  # agent -> touched shared state since it woke
        # agent -> where it slept since it last changed something: sleeping at one of these
        # again is a loop going round (a poll); at a new place, work moving on
        self._slept_at: dict[int, set[Site]] = {}
        self.polls_folded = 0

    def begin(self, seed: int) -> None:
        self.seed = seed
        self.inner.begin(seed)

    def new_run(self, run: int) -> bool:
        self._seen = 0
        self._pure = {}
        self._waiting = set()
        self._looked = {}
        self._slept_at = {}
        return self.inner.new_run(run)

    def fixed_seed(self) -> bool:
        return self.inner.fixed_seed()

    def _follow(self, trace: Sequence[Step]) -> None:
        pure = self._pure
        waiting = self._waiting
        looked = self._looked
        slept_at = self._slept_at
        end = len(trace)
        for step in trace[self._seen : end]:
            agent = step.id[0]
            if waiting and (len(waiting) > 1 or agent not in waiting):
                # another agent moved: whoever waited for that may poll again
                waiting = {agent} & waiting
            changed = _changes_something(step)
            if step.kind == "resume":
                pure[agent] = not changed
                looked[agent] = _looks_at_state(step)
            else:
                if changed:
                    pure[agent] = False
                if not looked.get(agent) and _looks_at_state(step):
                    looked[agent] = True
            site = step.slept
            if site is not None:
                places = slept_at.get(agent)
                if places is None or changed:
                    places = slept_at[agent] = set()
                if site not in places:
                    # Not a loop going round: straight-line work (tool calls in a row),
                    # whose later steps are new steps, not the same one again.
                    places.add(site)
                    pure[agent] = False
            elif changed:
                slept_at.pop(agent, None)
        self._waiting = waiting
        self._seen = end

    def choose(self, decision: Decision) -> int:
        trace = decision.trace
        if not self.enabled or not trace:
            return self.inner.choose(decision)
        if self._seen < len(trace):
            self._follow(trace)
        last = trace[-1].id[0]
        candidates = decision.candidates
        if self._pure.get(last) and self._looked.get(last):
            # A poll: it checked shared state, changed nothing, and sleeps again where it
            # slept. (A step that looked at nothing shared races with no one, so running
            # it again cannot make a search endless; it is never held back.)
            for c in candidates:
                if c.id[0] == last and c.kind == "resume":
                    self._waiting.add(last)
                    self._pure[last] = False
                    break
        if not self._waiting:
            return self.inner.choose(decision)
        waiting = self._waiting
        keep = [i for i, c in enumerate(candidates) if c.id[0] not in waiting]
        if not keep or len(keep) == len(candidates):
            return self.inner.choose(decision)
        self.polls_folded += 1
        default = keep.index(decision.default) if decision.default in keep else 0
        current = decision.current
        if current is not None and current[0] in self._waiting:
            current = None
        narrowed = Decision(
            decision.index, [candidates[i] for i in keep], current, default, decision.trace
        )
        return keep[self.inner.choose(narrowed)]

    def end_run(self, trace: Sequence[Step], failed: bool) -> None:
        self.inner.end_run(trace, failed)

    @property
    def complete(self) -> bool:
        return self.inner.complete

    @property
    def clock_ordered(self) -> bool:
        return self.inner.clock_ordered

    @clock_ordered.setter
    def clock_ordered(self, value: bool) -> None:
        self.inner.clock_ordered = value

    def summary(self) -> list[str]:
        return self.inner.summary()

    def describe(self) -> dict[str, object]:
        return self.inner.describe()
