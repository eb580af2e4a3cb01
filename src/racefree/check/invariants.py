"""User invariants: predicates over the final state and every state in between.

An invariant is a function ``state -> bool`` (or a ``(name, function)``
pair). It is called on the final state you pass, and on each state rebuilt
from the history after every write. States are rebuilt as nested dicts by
splitting keys on dots (``"metadata.completed"`` is
``state["metadata"]["completed"]``; a store key without dots is a top-level
key), and when every key starts with one name that your final state does not
have at its top (``track(session, name="session")``), that name is dropped so
that the states have the final state's shape.

A write's effect is known when its value says it: ``write``/``set`` (the new
value), ``append`` (the item), ``extend``/``append_turn``/``turn`` (the
items), ``increment``/``update``/``compare_and_set``/``claim`` (the new
value), ``delete``. A ``commit`` or ``apply`` that leaves a list value is
ambiguous unless its meta says ``{"effect": "extend"}`` or ``"put"``; a
key whose value is unknown is left out of the states until it is written
again, and a read with a value fills in a key not yet known. A predicate that
raises on a rebuilt state (say a ``KeyError`` for a key not known yet) is not
applicable to that state; one that raises on the final state is an error in
the predicate and raises ``UsageError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from racefree.check._events import READS, is_write, short
from racefree.check._state import MISSING
from racefree.check.explain import Explanation, Step
from racefree.check.findings import Finding
from racefree.errors import UsageError
from racefree.history import Event

__all__ = ["Invariant", "find_broken_invariants", "named_invariants"]

Invariant = Callable[[Any], object] | tuple[str, Callable[[Any], object]]

_SETS_VALUE = frozenset({"write", "set", "increment", "update", "compare_and_set", "claim"})


def named_invariants(invariants: Iterable[Invariant]) -> list[tuple[str, Callable[[Any], object]]]:
    """``(name, predicate)`` pairs; a bare function is named after ``__name__``."""
    named = []
    for item in invariants:
        if isinstance(item, tuple) and len(item) == 2 and callable(item[1]):
            named.append((str(item[0]), item[1]))
        elif callable(item):
            named.append((getattr(item, "__name__", repr(item)), item))
        else:
            raise UsageError(
                f"An invariant must be a function state -> bool or a (name, function) pair, "
                f"not {item!r}."
            )
    return named


def _prefix(events: list[Event], final_state: Any) -> str:
    if not isinstance(final_state, Mapping):
        return ""
    first: str | None = None
    for event in events:
        key = event.key
        if key is None:
            continue
        head, dot, _ = key.partition(".")
        if not dot or (first is not None and head != first):
            return ""
        first = head
    if first is None or first in final_state:
        return ""
    return first + "."


def _parts(key: str, prefix: str) -> list[str]:
    if prefix and key.startswith(prefix):
        key = key[len(prefix) :]
    return key.split(".")


def _parent(state: dict[str, Any], parts: list[str], create: bool) -> Any:
    node: Any = state
    for part in parts[:-1]:
        if isinstance(node, dict):
            if part not in node:
                if not create:
                    return MISSING
                node[part] = {}
            node = node[part]
        elif isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                return MISSING
        else:
            return MISSING
    return node


def _put(state: dict[str, Any], parts: list[str], value: Any) -> None:
    parent = _parent(state, parts, create=True)
    if isinstance(parent, dict):
        parent[parts[-1]] = value
    elif isinstance(parent, list):
        with contextlib.suppress(ValueError, IndexError):
            parent[int(parts[-1])] = value


def _drop(state: dict[str, Any], parts: list[str]) -> None:
    parent = _parent(state, parts, create=False)
    if isinstance(parent, dict):
        parent.pop(parts[-1], None)


def _get(state: dict[str, Any], parts: list[str]) -> Any:
    parent = _parent(state, parts, create=False)
    if isinstance(parent, dict):
        return parent.get(parts[-1], MISSING)
    return MISSING


def _apply(state: dict[str, Any], parts: list[str], event: Event) -> bool:
    """Apply a write's effect; False when the effect is unknown (the key is dropped)."""
    op, value = event.op, event.value
    effect = event.meta.get("effect") if event.meta else None
    if op == "delete":
        _drop(state, parts)
        return True
    if op in _SETS_VALUE or effect == "put":
        _put(state, parts, value)
        return True
    current = _get(state, parts)
    if current is MISSING or current is None:
        current = []
    if op == "append" and isinstance(current, list):
        _put(state, parts, [*current, value])
        return True
    if (
        (op in ("extend", "append_turn", "turn") or effect == "extend")
        and isinstance(current, list)
        and isinstance(value, list)
    ):
        _put(state, parts, [*current, *value])
        return True
    if op in ("commit", "apply") and not isinstance(value, list) and value is not None:
        _put(state, parts, value)
        return True
    _drop(state, parts)
    return False


def find_broken_invariants(
    events: list[Event],
    invariants: Iterable[Invariant],
    final_state: Any = None,
    *,
    notes: list[str] | None = None,
    findings: list[Finding] | None = None,
) -> list[Finding]:
    """One finding per invariant that was false in some state (appended to ``findings``)."""
    named = named_invariants(invariants)
    if not named:
        return []
    prefix = _prefix(events, final_state)
    state: dict[str, Any] = {}
    broken: dict[str, Event] = {}
    unknown: Event | None = None
    for event in events:
        key = event.key
        if key is None:
            continue
        parts = _parts(key, prefix)
        if event.op in READS or not is_write(event):
            if event.value is not None and _get(state, parts) is MISSING:
                _put(state, parts, event.value)
            continue
        if not _apply(state, parts, event) and unknown is None:
            unknown = event
        for name, predicate in named:
            if name in broken:
                continue
            try:
                holds = predicate(state)
            except Exception:  # not applicable to a partly known state
                continue
            if not holds:
                broken[name] = event
    if unknown is not None and notes is not None:
        notes.append(
            f"The effect of {unknown.agent}'s {unknown.op} on {unknown.key} (seq {unknown.seq}) "
            "is not in its event, so that key was left out of the rebuilt states until "
            "written again."
        )
    findings = [] if findings is None else findings
    for name, predicate in named:
        final_broken = False
        if final_state is not None:
            try:
                final_broken = not predicate(final_state)
            except Exception as exc:
                raise UsageError(
                    f"The invariant {name!r} raised {exc!r} on the final state. Make it "
                    "return False for a bad state instead of raising."
                ) from exc
        if name in broken or final_broken:
            findings.append(_finding(name, broken.get(name), final_broken, final_state))
    return findings


def _finding(name: str, event: Event | None, final_broken: bool, final_state: Any) -> Finding:
    steps = []
    if event is not None:
        value = f" ({short(event.value)})" if event.value is not None else ""
        steps.append(
            Step(
                f"After {event.agent}'s {event.op} of {event.key}{value}, "
                f"the invariant {name} was false.",
                event.seq,
            )
        )
    if final_broken:
        steps.append(Step("It is false in the final state too."))
        conclusion = (
            f"The final state breaks {name}. Look at the first write that broke it and at the "
            "lost updates reported with it."
        )
    elif final_state is not None:
        steps.append(Step("It holds again in the final state."))
        conclusion = (
            f"Agents running at that moment could see a state that breaks {name}. Make the "
            "writes that must go together one atomic step (a transaction)."
        )
    else:
        conclusion = (
            f"Agents running after that write could see a state that breaks {name}. Make the "
            "writes that must go together one atomic step (a transaction)."
        )
    events = (event,) if event is not None else ()
    return Finding(
        kind="invariant",
        severity="error",
        agents=(event.agent,) if event is not None else (),
        keys=(event.key,) if event is not None and event.key else (),
        events=events,
        explanation=Explanation("invariant", tuple(steps), conclusion),
    )
