"""The strategy interface: how the explorer asks which agent runs next.

The runner calls a strategy's methods in this order, and only in this order::

    begin(seed)                      once, before the first run
    for each run:
        new_run(run) -> bool         False: the strategy has nothing left to try; stop
        choose(decision) -> int      at each decision (two or more agents could run),
                                     in the order the run reaches them; returns an
                                     index into decision.candidates
        end_run(trace, failed)       after the run, with every step it took
    summary() -> list[str]           any time, for the report

A strategy never sees threads, tasks or event loops: only candidates (an
agent's ordinal, its name, what it is about to do) and the trace of steps
with the shared keys each step touched. ``choose`` may raise
``ReplayDivergedError``; the run is then abandoned and the error reaches the
caller.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from racefree.explore.schedule import Choice

if TYPE_CHECKING:
    from racefree.history import Event

__all__ = [
    "CANCELS",
    "CLOCK_MOVED",
    "CLOCK_READ",
    "NOT_STATE",
    "Candidate",
    "Decision",
    "Site",
    "Step",
    "Strategy",
    "call_site",
    "independent",
    "ordering",
]

#: Key prefixes of what the explorer orders that is no shared state of the program: locks
#: and threads (the coverage line's "shared state" leaves them out).
NOT_STATE = ("lock#", "rlock#", "lib-", "internal-", "thread#")

#: The key a step writes when it cancels a pending timer of the agent numbered after it
#: (an event loop's): what exhaustive search reads as that step disabling the timer.
CANCELS = "internal-cancels#"

#: The virtual clock, once a run has waited with a timeout under latency "any": a step
#: whose choice moved the clock has CLOCK_MOVED, one that set a deadline from it (a
#: sleep, a timer, a timeout) CLOCK_READ. Which timeouts may fire hangs on those
#: deadlines (see Scheduler._options), so a move and a read do not commute, though they
#: touch no shared key; two moves do (the clock goes to the later of the two either way),
#: and so do two reads. Both are kept as reads, so that only :func:`independent` and
#: :func:`ordering` see the difference.
CLOCK_MOVED = "internal-clock-moved#"
CLOCK_READ = "internal-clock-read#"


class Candidate(NamedTuple):
    """An agent that could run next, and what it would do.

    ``id`` is ``(ordinal, sub)`` (see :mod:`racefree.explore.schedule`);
    ``kind`` and ``key`` are what it announced (``read`` of a key, ``resume``
    after a sleep or model call, ``lock``...); ``ready_at`` is the virtual
    time at which it became (or becomes) ready, which orders the natural-timing
    default.
    """

    id: Choice
    name: str
    kind: str
    key: str | None
    ready_at: float


class Step:
    """One step of one agent: from a scheduling point to its next one.

    ``footprint`` maps every shared key the step touched to True when it
    wrote it. ``candidates`` lists who could have run instead (just ``id``
    when nobody else could). ``deviation`` is True when the choice was not
    the natural-timing default (the running agent was preempted, or a later
    answer was taken before an earlier one). ``read_clock`` is True when the
    step read the virtual clock. ``slept`` is where the sleep (or the event
    loop's timer) that ended the step was called, as :func:`call_site` gives
    it; ``None`` when the step ended otherwise.
    """

    __slots__ = (
        "advanced",
        "candidates",
        "changed",
        "deviation",
        "events",
        "footprint",
        "id",
        "kept",
        "key",
        "kind",
        "name",
        "read_clock",
        "slept",
        "time",
        "timed",
    )

    def __init__(
        self,
        id: Choice,
        name: str,
        kind: str,
        key: str | None,
        time: float,
        candidates: tuple[Choice, ...],
        deviation: bool = False,
    ) -> None:
        self.id = id
        self.name = name
        self.kind = kind
        self.key = key
        self.time = time
        self.candidates = candidates
        self.deviation = deviation
        self.footprint: dict[str, bool] = {}
        self.events: list[Event] = []
        self.read_clock = False  # it read time.monotonic() / time() / perf_counter()
        self.slept: Site | None = None
        self.advanced = False  # the choice that began it moved the virtual clock
        self.timed = False  # it set a deadline from the clock (a sleep, a timer, a timeout)
        self.kept: set[str] | None = None  # keys its writes all left as they were
        self.changed: set[str] | None = None  # keys a write of it changed (see kept)

    def __repr__(self) -> str:
        return f"Step({self.id}, {self.name!r}, {self.kind!r}, {self.footprint})"


Site = tuple[tuple[Any, int], ...]
"""Where a call was made: (code, instruction offset) of its frame and the ones above it."""

SITE_DEPTH = 8


def call_site(frame: FrameType | None) -> Site:
    """``frame`` and up to :data:`SITE_DEPTH` - 1 callers, as code and instruction offset.

    The same loop that sleeps again gives the same site, whatever helper it
    calls to sleep; straight-line code that sleeps twice, through one helper
    or not, gives two (its own line differs).
    """
    site: list[tuple[Any, int]] = []
    while frame is not None and len(site) < SITE_DEPTH:
        site.append((frame.f_code, frame.f_lasti))
        frame = frame.f_back
    return tuple(site)


class Decision:
    """One scheduling decision: pick one of ``candidates``.

    ``index`` counts decisions in this run from 0. ``current`` is the agent
    that just ran, when it could go on running (choosing another is a
    preemption); ``default`` is the index of the natural-timing choice.
    ``trace`` holds every finished step of the run so far. Read a decision,
    do not change it. (A plain class with slots: one is made at every
    decision, and a frozen dataclass costs three times as much to make.)
    """

    __slots__ = ("candidates", "current", "default", "index", "trace")

    def __init__(
        self,
        index: int,
        candidates: Sequence[Candidate],
        current: Choice | None,
        default: int,
        trace: Sequence[Step],
    ) -> None:
        self.index = index
        self.candidates = candidates
        self.current = current
        self.default = default
        self.trace = trace

    def __repr__(self) -> str:
        return (
            f"Decision({self.index}, {list(self.candidates)!r}, current={self.current!r}, "
            f"default={self.default})"
        )


def independent(a: dict[str, bool], b: dict[str, bool]) -> bool:
    """True when two steps commute: no shared key that either of them writes, and not
    one moving the clock that the other set a deadline from."""
    if len(a) > len(b):
        a, b = b, a
    for key, wrote in a.items():
        other = b.get(key)
        if other is not None and (wrote or other):
            return False
    if CLOCK_MOVED in a and CLOCK_READ in b:
        return False
    return not (CLOCK_READ in a and CLOCK_MOVED in b)


def ordering(trace: Sequence[Step]) -> int:
    """The fingerprint of a run's *distinct ordering*: the one definition every strategy,
    summary and count uses.

    Two runs have the same ordering when they differ only by swapping adjacent steps of
    different agents that commute (:func:`independent`): a Mazurkiewicz trace. Such runs
    make every shared access see the same thing and end in the same state. The
    fingerprint lists, for every key any step touched, the order of the accesses to it:
    each write in turn, and the reads between two writes as a set (reads commute). An
    access is named by its agent and how many times that agent had touched the key
    before, not by step numbers, so a run that split an agent's work into more steps
    (a ``join`` that had to wait) is still the same ordering.
    """
    # Naming an access by (agent, n) is the same as listing, per key, the agents in
    # order: n is how often the agent appears before. So a key's accesses are its
    # writers in turn, each run of reads between two writes a sorted tuple of readers
    # (sorted: reads commute; an agent reading twice appears twice, as (a, 0), (a, 1)).
    per_key: dict[str, list[Any]] = {}
    # The clock's accesses: runs of moves and runs of reads in turn (either kind commutes
    # with itself), each run a list of agents after its kind.
    clock: list[list[Any]] = []
    for step in trace:
        footprint = step.footprint
        if not footprint:
            continue
        agent = step.id[0]
        for key, wrote in footprint.items():
            if key in (CLOCK_MOVED, CLOCK_READ):
                continue
            accesses = per_key.get(key)
            if accesses is None:
                per_key[key] = [agent] if wrote else [[agent]]
            elif wrote:
                accesses.append(agent)
            else:
                last = accesses[-1]
                if type(last) is list:
                    last.append(agent)
                else:
                    accesses.append([agent])
        # A step moves the clock as it begins, and sets its deadlines after.
        for kind in (CLOCK_MOVED, CLOCK_READ):
            if kind in footprint:
                if clock and clock[-1][0] == kind:
                    clock[-1].append(agent)
                else:
                    clock.append([kind, agent])
    # A frozenset hashes the same whatever its order: the keys (each once) need no sorting.
    keys = frozenset(
        (key, tuple([tuple(sorted(a)) if type(a) is list else a for a in accesses]))
        for key, accesses in per_key.items()
    )
    if not clock:
        return hash(keys)
    return hash((keys, tuple((run[0], *sorted(run[1:])) for run in clock)))


class Strategy(ABC):
    """Chooses which agent runs at each decision; see the module docstring for call order."""

    name: ClassVar[str] = "strategy"

    #: Set by the explorer once a run of this exploration waited with a timeout under
    #: latency "any": from then on steps carry :data:`CLOCK_MOVED` and :data:`CLOCK_READ`.
    clock_ordered: bool = False

    #: True for a strategy that re-runs the workflow to walk a tree of choices:
    #: every run then gets the same run seed, so the simulated replies (and so
    #: the choices offered) are the same on every path.
    same_seed_every_run: ClassVar[bool] = False

    def begin(self, seed: int) -> None:
        """Called once before the first run with the exploration's seed."""
        self.seed = seed

    def fixed_seed(self) -> bool:
        """After ``new_run``: True when this run gets the exploration's seed itself
        (see :attr:`same_seed_every_run`), False for a seed derived per run."""
        return self.same_seed_every_run

    def new_run(self, run: int) -> bool:
        """Called before run number ``run`` (from 0); return False when there is nothing left."""
        return True

    @abstractmethod
    def choose(self, decision: Decision) -> int:
        """The index in ``decision.candidates`` of the agent to run next."""

    def end_run(self, trace: Sequence[Step], failed: bool) -> None:  # noqa: B027
        """Called after each run with all its steps; ``failed`` when a check failed."""

    @property
    def complete(self) -> bool:
        """True when the strategy has tried everything it can (exhaustive search only)."""
        return False

    def summary(self) -> list[str]:
        """Lines for the exploration summary: what the strategy guarantees."""
        return []

    def describe(self) -> dict[str, Any]:
        """The strategy and its parameters, for the replay file."""
        return {"name": self.name}
