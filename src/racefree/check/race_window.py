"""Race windows: a read-modify-write that other agents could have split.

A warning, not an error: nothing needs to have been lost in this run. The
rule: agent A read key k (its last read of k), then A had a suspension (an
op in ``SUSPENSIONS``: a model or tool call, a sleep, an await, a lock
release), then A overwrote k (``write``, ``set``, ``delete``); no lock that
A acquired before the read was still held at the write; and at least one
other agent recorded an event inside the window, so the agents really were
running at the same time. (A run where the agents took turns shows no other
agent inside the window and is not flagged: the explorer is the tool that
tries the other orders.) A window in which another agent did write k is a
lost update, reported as such, not here.

One warning per (agent, key), with the first window as the witness and the
number of windows seen.
"""

from __future__ import annotations

from typing import Any

from racefree.check._events import ATOMIC, OVERWRITES, READS, SUSPENSIONS, version_of, word
from racefree.check.explain import Explanation, Step
from racefree.check.findings import Finding
from racefree.history import Event

__all__ = ["find_race_windows"]


def find_race_windows(
    events: list[Event], *, findings: list[Finding] | None = None
) -> list[Finding]:
    """One warning per (agent, key) that had an unguarded read-suspend-overwrite window."""
    suspended: dict[str, int] = {}  # agent -> suspensions so far
    last_suspension: dict[str, Event] = {}
    own: dict[str, int] = {}  # agent -> events so far
    last_event: dict[str, Event] = {}
    held: dict[str, dict[str, int]] = {}  # agent -> lock -> seq of its acquire
    key_writes: dict[str, int] = {}
    # (agent, key) -> (read event, suspensions, own events, index, writes to key, own writes)
    reads: dict[tuple[str, str], list[Any]] = {}
    own_writes: dict[tuple[str, str], int] = {}
    windows: dict[tuple[str, str], list[Any]] = {}  # -> [read, suspension, other, write, count]

    for index, event in enumerate(events):
        agent, op, key = event.agent, event.op, event.key
        if op in SUSPENSIONS:
            suspended[agent] = suspended.get(agent, 0) + 1
            last_suspension[agent] = event
            if op == "release" and key is not None and agent in held:
                held[agent].pop(key, None)
        elif op == "acquire" and key is not None:
            held.setdefault(agent, {})[key] = event.seq
        elif key is not None:
            if op in READS or (
                op in ATOMIC and event.version_written is None and event.version_read is not None
            ):
                reads[(agent, key)] = [
                    event,
                    suspended.get(agent, 0),
                    own.get(agent, 0),
                    index,
                    key_writes.get(key, 0),
                    own_writes.get((agent, key), 0),
                ]
            elif op in OVERWRITES or op in ATOMIC:
                if op in OVERWRITES:
                    window = reads.get((agent, key))
                    if window is not None and suspended.get(agent, 0) > window[1]:
                        _consider(
                            window,
                            event,
                            index,
                            own.get(agent, 0),
                            key_writes.get(key, 0),
                            own_writes.get((agent, key), 0),
                            held.get(agent),
                            last_suspension[agent],
                            last_event,
                            windows,
                        )
                key_writes[key] = key_writes.get(key, 0) + 1
                own_writes[(agent, key)] = own_writes.get((agent, key), 0) + 1
        own[agent] = own.get(agent, 0) + 1
        last_event[agent] = event

    findings = [] if findings is None else findings
    findings.extend(_finding(*value) for value in windows.values())
    return findings


def _consider(
    window: list[Any],
    write: Event,
    index: int,
    own_now: int,
    writes_now: int,
    own_writes_now: int,
    locks: dict[str, int] | None,
    suspension: Event,
    last_event: dict[str, Event],
    windows: dict[tuple[str, str], list[Any]],
) -> None:
    read, _, own_then, index_then, writes_then, own_writes_then = window
    others_active = (index - index_then) - (own_now - own_then) > 0
    if not others_active:
        return
    if (writes_now - writes_then) - (own_writes_now - own_writes_then) > 0:
        return  # another agent wrote the key meanwhile: a lost update, reported there
    if locks and min(locks.values()) < read.seq:
        return  # a lock taken before the read is still held: guarded
    slot = (write.agent, write.key or "")
    found = windows.get(slot)
    if found is not None:
        found[4] += 1
        return
    other = next(
        (
            e
            for name, e in last_event.items()
            if name != write.agent and read.seq < e.seq < write.seq
        ),
        None,
    )
    windows[slot] = [read, suspension, other, write, 1]


def _finding(
    read: Event, suspension: Event, other: Event | None, write: Event, count: int
) -> Finding:
    agent, key = write.agent, write.key or ""
    what = suspension.op if suspension.value is None else f"{suspension.op} ({suspension.value})"
    steps = [
        Step(f"{agent} {word(read, 'verb', 'read')} {key}{version_of(read)}.", read.seq),
        Step(f"{agent} then suspended: {what}; other agents could run.", suspension.seq),
    ]
    witness = [read, suspension]
    if other is not None:
        steps.append(Step(f"{other.agent} was running meanwhile ({other.op}).", other.seq))
        witness.append(other)
    steps.append(
        Step(
            f"{agent} {word(write, 'verb', 'overwrote')} {key}{version_of(write, written=True)} "
            "from what it read.",
            write.seq,
        )
    )
    witness.append(write)
    times = "" if count == 1 else f" This happened {count} times for {agent} and {key}."
    conclusion = (
        f"Nothing was lost this time, because no other agent wrote {key} inside the window, "
        f"but nothing stopped one from doing so.{times} Re-read {key} after the suspension "
        "and write in one atomic step (a store update() or compare_and_set), or hold a "
        "lock from the read to the write."
    )
    witness.sort(key=lambda e: e.seq)
    agents = (agent,) if other is None else (agent, other.agent)
    return Finding(
        kind="race-window",
        severity="warning",
        agents=agents,
        keys=(key,),
        events=tuple(witness),
        explanation=Explanation("race-window", tuple(steps), conclusion),
    )
