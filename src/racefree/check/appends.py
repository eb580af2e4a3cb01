"""Lost and duplicated appends: acknowledged appends against the final list.

An append event (``append``, ``extend``, ``append_turn``, ``turn``) is an
acknowledgement: the item was added. With the final state, every item
appended after the key's last overwrite must be in the final list as often
as it was appended (an item matches a final element equal to it, or a dict
element that has it as one of its fields, as lesson 01 records the
message text only). Fewer is a lost append; more (where the list's content
before those appends is known) is a duplicated append. Without a final state
only declared ids are checked: two appends to one key with the same meta
``id`` are a duplicate.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from racefree.check._events import APPENDS, OVERWRITES, is_write, short
from racefree.check._state import MISSING, resolve
from racefree.check.explain import Explanation, Step
from racefree.check.findings import Finding, Lost
from racefree.history import Event

__all__ = ["find_append_anomalies"]


def _canon(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return (type(value).__name__, value)
    return json.dumps(value, sort_keys=True, default=repr)


def _items(event: Event) -> Iterator[Any]:
    if event.op == "append":
        yield event.value
    elif isinstance(event.value, list):
        yield from event.value


class _Key:
    __slots__ = ("appended", "base", "ids")

    def __init__(self) -> None:
        self.appended: list[tuple[Event, Any]] = []  # since the last overwrite
        self.base: list[Any] | None = []  # the list before those appends, if known
        self.ids: dict[str, Event] = {}


def find_append_anomalies(
    events: list[Event],
    final_state: Any = None,
    *,
    notes: list[str] | None = None,
    findings: list[Finding] | None = None,
) -> list[Finding]:
    """Lost and duplicated appends; without ``final_state`` only duplicate meta ids.

    The findings are appended to ``findings`` (a fresh list if ``None``), which is returned.
    """
    keys: dict[str, _Key] = {}
    findings = [] if findings is None else findings
    for event in events:
        key = event.key
        if key is None or not is_write(event):
            continue
        op = event.op
        if op in APPENDS:
            state = keys.get(key)
            if state is None:
                state = keys[key] = _Key()
            item_id = event.meta.get("id") if event.meta else None
            if item_id is not None:
                first = state.ids.get(str(item_id))
                if first is not None:
                    findings.append(_duplicate_id(key, str(item_id), first, event))
                else:
                    state.ids[str(item_id)] = event
            if final_state is not None:
                state.appended.extend((event, item) for item in _items(event))
        elif key in keys or op in OVERWRITES:
            state = keys.get(key)
            if state is None:
                state = keys[key] = _Key()
            state.appended.clear()
            state.base = list(event.value) if isinstance(event.value, list) else None
            if op not in OVERWRITES:
                state.base = None  # an atomic change whose effect the event may not show
    if final_state is None:
        return findings
    for key, state in keys.items():
        if not state.appended:
            continue
        final = resolve(final_state, key)
        if final is MISSING or not isinstance(final, list):
            if notes is not None:
                notes.append(
                    f"Appends to {key} were not checked: the final state has no list there."
                )
            continue
        findings.extend(_compare(key, state, final))
    findings.sort(key=lambda f: f.first_seq)
    return findings


def _compare(key: str, state: _Key, final: list[Any]) -> list[Finding]:
    direct = Counter(_canon(element) for element in final)
    fields: Counter[Any] = Counter()
    for element in final:
        if isinstance(element, dict):
            fields.update({_canon(v) for v in element.values()})
    appended: dict[Any, list[tuple[Event, Any]]] = {}
    for event, item in state.appended:
        appended.setdefault(_canon(item), []).append((event, item))
    base = Counter(_canon(v) for v in state.base) if state.base is not None else None
    findings = []
    for canon, adds in appended.items():
        present = direct[canon] + fields[canon]
        before = base[canon] if base is not None else 0
        expected = len(adds) + before
        if present < expected:
            missing = min(expected - present, len(adds))
            findings.append(_lost(key, adds[-missing:], len(final)))
        elif base is not None and present > expected:
            findings.append(_duplicated(key, adds, present, expected))
    return findings


def _lost(key: str, adds: list[tuple[Event, Any]], size: int) -> Finding:
    steps = [
        Step(f"{event.agent} appended {short(item)} to {key}.", event.seq) for event, item in adds
    ]
    steps.append(Step(f"The final {key} ({size} items) does not have it."))
    conclusion = (
        "The store acknowledged the append, and nothing later in the history overwrote the "
        f"list, so {key} was changed without being recorded: a write that bypassed the "
        "recorder (an object reached outside track, another process) or a backend that "
        "dropped it. Record every writer, or append through the store."
    )
    return Finding(
        kind="lost-append",
        severity="error",
        agents=tuple(dict.fromkeys(event.agent for event, _ in adds)),
        keys=(key,),
        events=tuple(event for event, _ in adds),
        explanation=Explanation("lost-append", tuple(steps), conclusion),
        lost=tuple(Lost(event.agent, event.seq, item) for event, item in adds),
    )


def _duplicated(key: str, adds: list[tuple[Event, Any]], present: int, expected: int) -> Finding:
    times = "once" if expected == 1 else f"{expected} times"
    steps = [Step(f"{e.agent} appended {short(i)} to {key}.", e.seq) for e, i in adds]
    steps.append(Step(f"The final {key} has it {present} times, not {times}."))
    conclusion = (
        "An append was applied more than once: a retry after a timeout, or a copy written "
        "back on top of the append. Pass an idempotency_key to append() so that a retry is "
        "recognised."
    )
    return Finding(
        kind="duplicate-append",
        severity="error",
        agents=tuple(dict.fromkeys(e.agent for e, _ in adds)),
        keys=(key,),
        events=tuple(e for e, _ in adds),
        explanation=Explanation("duplicate-append", tuple(steps), conclusion),
    )


def _duplicate_id(key: str, item_id: str, first: Event, again: Event) -> Finding:
    steps = (
        Step(f"{first.agent} appended item {item_id} to {key}.", first.seq),
        Step(f"{again.agent} appended item {item_id} to {key} again.", again.seq),
    )
    conclusion = (
        f"Item {item_id} is in {key} twice. Pass an idempotency_key to append() so that a "
        "retry is recognised."
    )
    return Finding(
        kind="duplicate-append",
        severity="error",
        agents=tuple(dict.fromkeys([first.agent, again.agent])),
        keys=(key,),
        events=(first, again),
        explanation=Explanation("duplicate-append", steps, conclusion),
    )
