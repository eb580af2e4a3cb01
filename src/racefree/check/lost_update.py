"""Lost updates: an overwrite computed from a stale read.

The rule, from event order alone (versions only decorate the story, because
sources number versions differently): for each key, remember the position of
each agent's last look at it (its last read, or its own overwrite, or an
atomic write whose result it got back). When the agent overwrites the key
(``write``, ``set``, ``delete``) and other agents wrote the key since that
position, their writes are replaced by a value computed from an older copy:
a lost update.

Which of those writes are really gone is decided by following, from the
key's last write, each write's *base* (an overwrite's base is the write its
agent last saw; an atomic write's base is the write just before it). Writes
on that chain survive into the final value; a victim that is on it was
overwritten and later brought back (``Lost.restored``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from racefree.check._events import (
    ATOMIC,
    OVERWRITES,
    READS,
    short,
    version_name,
    version_of,
    word,
)
from racefree.check.explain import Explanation, Step
from racefree.check.findings import Finding, Lost
from racefree.history import Event

__all__ = ["find_lost_updates", "is_claim_write"]

# Atomic ops whose caller gets the new value back: afterwards the agent's copy is current.
_KNOWS_RESULT = frozenset({"update", "compare_and_set", "increment", "claim", "commit"})
_SHOWN = 3  # victims told one by one in a story; the rest are counted
_LISTED = 50  # victims kept in Finding.lost; the story gives the full count

_VERBS = {
    "write": "wrote",
    "set": "set",
    "delete": "deleted",
    "append": "appended to",
    "extend": "extended",
    "append_turn": "appended a turn to",
    "turn": "appended a turn to",
    "increment": "incremented",
    "update": "updated",
    "compare_and_set": "compare-and-set",
    "claim": "claimed",
    "commit": "committed",
    "apply": "applied a change to",
}


def is_claim_write(event: Event) -> bool:
    """A write that takes ownership: meta ``claim`` is true, or the value is the agent's name."""
    return event.meta.get("claim") is True or (
        isinstance(event.value, str) and event.value == event.agent
    )


def verb(event: Event) -> str:
    """What an event did to its key, as a past-tense verb phrase (the recorder's, if given)."""
    return word(event, "verb", _VERBS.get(event.op, f"did {event.op} on"))


def _looked(event: Event) -> str:
    """The verb of an event that only read its key (a read, or an atomic op that wrote nothing)."""
    return word(event, "verb", "read")


_ADVICE = (
    "Make the read-modify-write one atomic step: a store update() or append(), "
    "or hold one lock from the read to the write."
)


def find_lost_updates(
    events: list[Event], *, findings: list[Finding] | None = None
) -> list[Finding]:
    """Every stale overwrite in ``events`` (``seq`` order); overwrites of one key whose
    unseen writes overlap are one loss and make one finding."""
    writes: dict[str, list[Event]] = {}
    bases: dict[str, list[int]] = {}
    # (agent, key) -> [writes to key at the agent's last look, own atomic writes since, event]
    seen: dict[tuple[str, str], list[Any]] = {}
    stale: list[tuple[str, int, int, Event, Event]] = []

    for event in events:
        key = event.key
        if key is None:
            continue
        op = event.op
        if op in READS:
            seen[(event.agent, key)] = [len(writes.get(key, ())), 0, event]
            continue
        overwrite = op in OVERWRITES
        if not overwrite and op not in ATOMIC:
            continue
        w = writes.get(key)
        if w is None:
            w = writes[key] = []
            bases[key] = []
        if not overwrite and event.version_written is None and event.version_read is not None:
            seen[(event.agent, key)] = [len(w), 0, event]  # an atomic op that only read
            continue
        mine = seen.get((event.agent, key))
        if overwrite:
            if mine is None:
                base = -1  # a blind write: based on nothing the history shows
            else:
                base = mine[0] - 1
                if len(w) - mine[0] - mine[1] > 0:
                    stale.append((key, mine[0], len(w), mine[2], event))
            w.append(event)
            bases[key].append(base)
            seen[(event.agent, key)] = [len(w), 0, event]
        else:
            w.append(event)
            bases[key].append(len(w) - 2)
            if op in _KNOWS_RESULT:
                seen[(event.agent, key)] = [len(w), 0, event]
            elif mine is not None:
                mine[1] += 1

    survivors: dict[str, set[int]] = {}
    episodes: dict[str, list[list[_Stale]]] = {}
    order: list[tuple[str, int]] = []
    for key, start, stop, looked, late in stale:
        w = writes[key]
        victims = [(i, w[i]) for i in range(start, stop) if w[i].agent != late.agent]
        if is_claim_write(late) and all(is_claim_write(v) for _, v in victims):
            continue  # two claims of one key: the double-claim finding tells it better
        entry = _Stale(start, stop, looked, late, victims)
        runs = episodes.setdefault(key, [])
        # Overwrites whose stale windows overlap erased the same writes: one loss, one finding.
        if runs and start < max(e.stop for e in runs[-1]):
            runs[-1].append(entry)
        else:
            runs.append([entry])
            order.append((key, len(runs) - 1))
    findings = [] if findings is None else findings
    for key, index in order:
        if key not in survivors:
            survivors[key] = _chain(bases[key])
        episode = episodes[key][index]
        if len(episode) == 1:
            one = episode[0]
            findings.append(_finding(key, one.looked, one.late, one.victims, survivors[key]))
        else:
            findings.append(_episode(key, episode, survivors[key]))
    return findings


class _Stale:
    """One stale overwrite: the writes ``start..stop`` its agent had not seen."""

    __slots__ = ("late", "looked", "start", "stop", "victims")

    def __init__(
        self, start: int, stop: int, looked: Event, late: Event, victims: list[tuple[int, Event]]
    ) -> None:
        self.start, self.stop, self.looked, self.late, self.victims = (
            start,
            stop,
            looked,
            late,
            victims,
        )


def _chain(bases: list[int]) -> set[int]:
    """Indices of the writes whose effect is in the key's final value."""
    alive: set[int] = set()
    index = len(bases) - 1
    while index >= 0 and index not in alive:
        alive.add(index)
        index = bases[index]
    return alive


def _finding(
    key: str,
    looked: Event,
    overwrite: Event,
    victims: list[tuple[int, Event]],
    alive: set[int],
) -> Finding:
    agent = overwrite.agent
    lost = tuple(Lost(v.agent, v.seq, v.value, restored=i in alive) for i, v in victims[:_LISTED])
    if looked.op in READS or looked.version_written is None:
        first = f"{agent} {_looked(looked)} {key}{version_of(looked)}{_value(looked)}."
        copy = f"its copy{_of(looked.version_read, looked)}"
    else:
        first = f"{agent} {verb(looked)} {key}{version_of(looked, written=True)}."
        copy = f"its copy{_of(looked.version_written, looked)}"
    steps = [Step(first, looked.seq)]
    for _, victim in victims[:_SHOWN]:
        value = f": {short(victim.value)}" if victim.value is not None else ""
        steps.append(
            Step(
                f"{victim.agent} {verb(victim)} {key}{version_of(victim, written=True)}{value}.",
                victim.seq,
            )
        )
    if len(victims) > _SHOWN:
        steps.append(Step(f"... and {len(victims) - _SHOWN} more write(s) by other agents."))
    steps.append(
        Step(
            f"{agent} then {verb(overwrite)} {key}{version_of(overwrite, written=True)} "
            f"from {copy}{_value(overwrite)}.",
            overwrite.seq,
        )
    )
    gone = [v for i, v in victims if i not in alive]
    back = [v for i, v in victims if i in alive]
    whose = _names(v.agent for _, v in victims)
    change = _change([v for _, v in victims])
    # In a recorder's words all of one run's writes are its one change ("run 1's turn").
    single = len({v.agent for _, v in victims} if change else victims) == 1
    noun = change or "write"
    # A sentence starts with an agent's name as the agent spells it ("run 1", "shopper").
    writes = f"{_possessive(whose)} {noun}" if single else f"The {noun}s of {whose}"
    agents = tuple(dict.fromkeys([agent, *(v.agent for _, v in victims)]))
    witness = (looked, *(v for _, v in victims[:_LISTED]), overwrite)
    lost_value = _same_value([overwrite, *(v for _, v in victims)])
    them = "that write" if len(victims) == 1 else "those writes"
    if lost_value is not _DIFFERENT and not _tallies(lost_value, looked.value):
        opening = f"{agent} wrote the same value as {whose}"
        return _duplicate_write(
            key,
            steps,
            agents,
            witness,
            opening,
            f"it decided to write from a copy made before {them}",
        )
    if lost_value is not _DIFFERENT:
        # The same value (not a flag: see _tallies) twice from one old copy is what a lost
        # count looks like: 0 + 1 written by both, where one after the other would give 2.
        conclusion = (
            f"{agent} wrote the same value as {whose}, but worked from a copy made before "
            f"{them}: a value worked out from what each read (a count plus one, the list "
            "plus an item) comes out the same twice, so one of the updates is lost"
        )
    elif back and not gone:
        conclusion = (
            f"{writes} {'was' if single else 'were'} "
            "erased here, though a later write from an older copy brought "
            f"{'it' if single else 'them'} back"
        )
    else:
        conclusion = f"{writes} {'is' if single else 'are'} gone"
        if back:
            conclusion += f" ({_names(v.agent for v in back)} came back later)"
    conclusion += ". " + word(overwrite, "fix", _ADVICE)
    return _lost_update(key, steps, agents, witness, conclusion, lost)


#: ``_same_value`` of writes whose values differ, or were not all recorded.
_DIFFERENT: Any = object()


def _same_value(writes: Iterable[Event]) -> Any:
    """The one value all ``writes`` wrote, or ``_DIFFERENT`` (a value not recorded, None,
    is never the same as another)."""
    values = [w.value for w in writes]
    first = values[0]
    if first is None or any(v != first for v in values[1:]):
        return _DIFFERENT
    return first


def _tallies(value: Any, read: Any) -> bool:
    """Could the same ``value`` written twice from a copy that read ``read`` be a lost
    update? Only a flag is sure not to be: a bool, or a text not made from the text read
    (a status set to "done" twice). A number, a list, a dict of counts, a text grown from
    the one read ("a" + "b" by both) is what a lost count or a lost append leaves."""
    if type(value) is bool:
        return False
    if type(value) is str:
        return type(read) is str and bool(read) and read in value
    return True


def _duplicate_write(
    key: str,
    steps: list[Step],
    agents: tuple[str, ...],
    witness: tuple[Event, ...],
    opening: str,
    stale: str,
) -> Finding:
    """Stale overwrites that wrote the very flag they overwrote: a status set twice, an
    answer cached twice. Nothing is lost, so no error; the decision was still made on an
    old copy, which is worth knowing when the work behind it must run once."""
    conclusion = (
        f"{opening}, so nothing is lost in this run; but {stale} (check-then-act), so "
        "whatever produced the value ran again. If it must run once, check and act in one "
        "atomic step: store.claim(), compare_and_set(), or one lock held from the read to "
        "the write."
    )
    return Finding(
        kind="duplicate-write",
        severity="warning",
        agents=agents,
        keys=(key,),
        events=witness,
        explanation=Explanation("duplicate-write", tuple(steps), conclusion),
    )


def _lost_update(
    key: str,
    steps: list[Step],
    agents: tuple[str, ...],
    witness: tuple[Event, ...],
    conclusion: str,
    lost: tuple[Lost, ...],
) -> Finding:
    return Finding(
        kind="lost-update",
        severity="error",
        agents=agents,
        keys=(key,),
        events=witness,
        explanation=Explanation("lost-update", tuple(steps), conclusion),
        lost=lost,
    )


def _episode(key: str, episode: list[_Stale], alive: set[int]) -> Finding:
    """Several agents overwrote ``key`` from copies older than each other's writes."""
    victims = dict(sorted({i: v for e in episode for i, v in e.victims}.items()))
    late = {e.late.seq: e for e in episode}
    told: dict[int, Step] = {}
    for entry in episode:
        looked = entry.looked
        if looked.op in READS or looked.version_written is None:
            text = f"{looked.agent} {_looked(looked)} {key}{version_of(looked)}{_value(looked)}."
        else:
            text = f"{looked.agent} {verb(looked)} {key}{version_of(looked, written=True)}."
        told.setdefault(looked.seq, Step(text, looked.seq))
    for victim in list(victims.values())[:_SHOWN]:
        if victim.seq not in late:
            value = f": {short(victim.value)}" if victim.value is not None else ""
            text = f"{victim.agent} {verb(victim)} {key}{version_of(victim, written=True)}{value}."
            told[victim.seq] = Step(text, victim.seq)
    for seq, entry in late.items():
        looked, over = entry.looked, entry.late
        base = looked.version_read if looked.version_written is None else looked.version_written
        if looked.op in READS:
            base = looked.version_read
        told[seq] = Step(
            f"{over.agent} then {verb(over)} {key}{version_of(over, written=True)} from its "
            f"copy{_of(base, over)}{_value(over)}.",
            seq,
        )
    steps = [told[seq] for seq in sorted(told)]
    if len(victims) > _SHOWN:
        steps.append(Step(f"... and {len(victims) - _SHOWN} more write(s) overwritten."))
    agents = tuple(
        dict.fromkeys([*(e.late.agent for e in episode), *(v.agent for v in victims.values())])
    )
    witness = {e.seq: e for e in (*(x.looked for x in episode), *victims.values())}
    witness.update((e.late.seq, e.late) for e in episode)
    events = tuple(witness[seq] for seq in sorted(witness))[: _LISTED + 2 * len(episode)]
    value = _same_value([*(e.late for e in episode), *victims.values()])
    if value is not _DIFFERENT and not any(_tallies(value, e.looked.value) for e in episode):
        writers = _names(e.agent for e in events if e.seq in late or e in victims.values())
        opening = f"{writers} all wrote the same value"
        stale = "each decided to write from a copy made before the others' writes"
        return _duplicate_write(key, steps, agents, events, opening, stale)
    gone = [v for i, v in victims.items() if i not in alive]
    back = [v for i, v in victims.items() if i in alive]
    change = _change(list(victims.values()))
    noun = change or "write"
    if value is not _DIFFERENT:
        conclusion = (
            "All wrote the same value, but each worked from a copy made before the others' "
            "writes: a value worked out from what each read (a count plus one, the list plus "
            "an item) comes out the same every time, so updates are lost"
        )
    elif gone:
        whose = _names(v.agent for v in gone)
        if len({v.agent for v in gone} if change else gone) == 1:
            conclusion = f"{_possessive(whose)} {noun} is gone"
        else:
            conclusion = f"The {noun}s of {whose} are gone"
        if back:
            conclusion += f" ({_names(v.agent for v in back)} came back later)"
    else:
        conclusion = (
            f"The {noun}s of {_names(v.agent for v in back)} were erased here, though a later "
            "write from an older copy brought them back"
        )
    fix = word(episode[-1].late, "fix", _ADVICE)
    if value is _DIFFERENT:
        conclusion += ". Each agent wrote back a copy made before the others' writes"
    lost = tuple(
        Lost(v.agent, v.seq, v.value, restored=i in alive)
        for i, v in list(victims.items())[:_LISTED]
    )
    return _lost_update(key, steps, agents, events, f"{conclusion}. {fix}", lost)


def _value(event: Event) -> str:
    return "" if event.value is None else f": {short(event.value)}"


def _of(version: int | None, event: Event) -> str:
    return "" if version is None else f" of {version_name(event, version)}"


def _change(victims: list[Event]) -> str:
    """The recorder's word for what the victims' writes were ("turn"), if they share one."""
    words = {word(v, "change", "") for v in victims}
    return words.pop() if len(words) == 1 else ""


def _names(names: Iterable[str]) -> str:
    unique: list[str] = list(dict.fromkeys(names))
    if len(unique) <= 1:
        return "".join(unique)
    return ", ".join(unique[:-1]) + " and " + unique[-1]


def _possessive(names: str) -> str:
    return f"{names}'" if names.endswith("s") else f"{names}'s"
