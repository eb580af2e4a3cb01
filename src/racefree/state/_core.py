"""The store's decisions, once, with no I/O.

Every store operation is described as plain data, an :class:`Op`. A backend
reads the current :class:`KeyState` (value, version, writer) of the op's
keys inside its atomic section and hands them to :func:`decide` (or
:func:`decide_all` for ops over every key), a pure function that returns a
:class:`Decision`: the result for the caller and the effects to write. It
raises a ``StoreError`` instead when the op must not happen (a version
conflict, a concurrent last-value write, a key of the wrong type); then the
backend writes nothing. Reducers, version checks, conflict decisions and the
events a history records all live here, so the memory, SQLite and Redis
backends and the sync and asyncio stores share one copy of them.

Effects are tuples ``(kind, key, payload)``: ``PUT`` replaces the key's value
with ``payload``; ``EXTEND`` appends the items of the list ``payload`` to the
list the key holds. Every effect raises its key's version by exactly one and
makes ``op.agent`` the key's writer; a decision has at most one effect per key.
Payloads are owned by the op (already copied by :func:`~._values.to_json`),
so a backend may store them as they are.

A decision never mutates the states it is given, and may be computed more
than once for one op on an optimistic backend; only the last one is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from racefree.errors import (
    ConcurrentWriteError,
    ConflictError,
    NotSerializableError,
    UsageError,
    WrongTypeError,
)
from racefree.state._values import MAX_INT_DIGITS, check_number, copy_json, json_kind, to_json

__all__ = [
    "DECIDERS",
    "EMPTY",
    "EXTEND",
    "PUT",
    "Decision",
    "KeyState",
    "Op",
    "apply_pending",
    "decide",
    "decide_all",
    "describe_events",
    "needs_items",
    "replay",
]

PUT = 0
EXTEND = 1

Effect = tuple[int, str, Any]

# Op names whose decision runs the caller's code (update's function, a custom
# reducer); backends use this to refuse a store call made from inside it.
RUNS_USER_CODE = frozenset({"update", "apply"})


class KeyState:
    """One key as a backend holds it: value, version (0 = never written), last writer."""

    __slots__ = ("value", "version", "writer")

    def __init__(self, value: Any, version: int, writer: str | None) -> None:
        self.value = value
        self.version = version
        self.writer = writer

    def __repr__(self) -> str:
        return f"KeyState({self.value!r}, {self.version}, {self.writer!r})"


EMPTY = KeyState(None, 0, None)
"""The state of a key that was never written; shared, never mutated."""


class Op(NamedTuple):
    """One store operation as plain data.

    ``keys`` are the keys it reads and may write, sorted when there are
    several, or ``None`` for every key (``snapshot``, ``versions``). ``args``
    are aligned with the op's name (see the ``_decide_*`` functions). ``agent``
    is who acts, when the store needed to know (writes that track a writer,
    or any op while a history is recorded).
    """

    name: str
    keys: tuple[str, ...] | None
    args: tuple[Any, ...]
    idempotency_key: str | None = None
    agent: str | None = None


class Decision(NamedTuple):
    """What an op does: its result and its effects.

    ``shares_state`` is true when ``result`` may contain stored values; a
    backend that keeps live objects (memory) copies such a result before it
    leaves the atomic section.
    """

    result: Any
    effects: tuple[Effect, ...] = ()
    shares_state: bool = False


_new = tuple.__new__  # NamedTuple construction without the generated __new__ (hot path)


def decide(op: Op, states: Sequence[KeyState]) -> Decision:
    """Decide an op over its keys; ``states[i]`` is the state of ``op.keys[i]``."""
    try:
        decider = DECIDERS[op.name]
    except KeyError:
        raise UsageError(
            f"The store has no operation named {op.name!r}. Known operations: "
            f"{', '.join(sorted(DECIDERS))}."
        ) from None
    return decider(op, states)


_BLIND_REDUCERS = frozenset({"append", "last_value"})


def needs_items(op: Op) -> tuple[bool, ...]:
    """Per key of ``op``: False when its decision never looks at a stored list's items.

    An ``apply`` through the ``append`` or ``last_value`` reducer, and a
    transaction's commit whose writes to a key are all appends (or start with
    a ``set``), only need to know *whether* the key holds a list, never what
    is in it. A backend that keeps lists outside its process may then hand
    the decision ``KeyState([], version, writer)`` for such a key instead of
    reading the whole list, so that an append costs the same at 100,000 items
    as at 10: the decision's effects and result are the same either way (an
    ``EXTEND`` of the new items; versions), and the events it describes carry
    only the new items.
    """
    if op.name == "apply":
        return tuple(reducer not in _BLIND_REDUCERS for _, reducer, _ in op.args)
    if op.name == "commit":
        return tuple(
            not pending or not (pending[0][0] == "set" or all(k == "extend" for k, _ in pending))
            for _, pending in op.args
        )
    return (True,) * len(op.keys or ())


def decide_all(op: Op, states: Mapping[str, KeyState]) -> Decision:
    """Decide an op over every key (``op.keys is None``)."""
    if op.name == "snapshot":
        return Decision(
            {k: [states[k].value, states[k].version] for k in sorted(states)},
            shares_state=True,
        )
    if op.name == "versions":
        return Decision({k: states[k].version for k in sorted(states)})
    raise UsageError(f"The operation {op.name!r} does not read every key; give it its keys.")


def replay(op: Op, record: tuple[str, tuple[str, ...] | None, Any]) -> Any:
    """The first result of a write retried with the same idempotency key.

    ``record`` is ``(op name, keys, result)`` as the backend stored it with
    the first write. A different op under the same key is a caller's bug.
    """
    name, keys, result = record
    if name != op.name or keys != op.keys:
        raise UsageError(
            f"The idempotency key {op.idempotency_key!r} was first used for "
            f"{_describe(name, keys)}, not for {_describe(op.name, op.keys)}. "
            "Use a fresh idempotency key for each distinct write, and the same one "
            "only to retry that write."
        )
    return result


def _describe(name: str, keys: tuple[str, ...] | None) -> str:
    return f"{name} on {', '.join(repr(k) for k in keys or ())}"


_MIXED_EFFECTS = frozenset({"apply", "commit"})


def describe_events(
    op: Op, keys: Sequence[str], states: Sequence[KeyState], decision: Decision
) -> list[dict[str, Any]]:
    """The history events of one op, as keyword arguments for ``History.record``.

    Call it inside the atomic section, before the effects are applied (the
    states still hold the versions read): one event per key, a write event
    (``version_read`` and ``version_written``) for each key with an effect and
    a read event for the others. Values are copies.
    """
    written = {key: (kind, payload) for kind, key, payload in decision.effects}
    # apply and commit write some keys by extending and others by replacing;
    # the event says which, so a reader can rebuild the value.
    says_effect = op.name in _MIXED_EFFECTS
    events: list[dict[str, Any]] = []
    for key, state in zip(keys, states, strict=True):
        event: dict[str, Any] = {
            "op": op.name,
            "key": key,
            "agent": op.agent,
            "version_read": state.version,
        }
        if key in written:
            kind, payload = written[key]
            event["version_written"] = state.version + 1
            if says_effect:
                event["meta"] = {"effect": "extend" if kind == EXTEND else "put"}
            if op.name == "append":  # the item, whether it started the list or not
                payload = payload[0]
            event["value"] = copy_json(payload)
        elif op.name != "versions":
            event["value"] = copy_json(state.value)
        events.append(event)
    return events


# ---------------------------------------------------------------- deciders


def _decide_get(op: Op, states: Sequence[KeyState]) -> Decision:
    state = states[0]
    return _new(Decision, ([state.value, state.version], (), True))


def _decide_set(op: Op, states: Sequence[KeyState]) -> Decision:
    return _new(Decision, (states[0].version + 1, ((PUT, op.keys[0], op.args[0]),), False))  # type: ignore[index]


def _decide_compare_and_set(op: Op, states: Sequence[KeyState]) -> Decision:
    key = op.keys[0]  # type: ignore[index]
    value, expected = op.args
    actual = states[0].version
    if actual != expected:
        raise ConflictError(
            f"The key {key!r} is at version {actual}, not the expected version "
            f"{expected}: another agent wrote it after you read it. Nothing was "
            f"written; re-read it with get_versioned({key!r}) and decide again, or "
            "use update(), which retries by itself.",
            key=key,
            expected=expected,
            actual=actual,
        )
    return Decision(actual + 1, ((PUT, key, value),))


def _decide_extend(op: Op, states: Sequence[KeyState]) -> Decision:
    # append, extend and turn: args[0] is the list of items (owned by the op).
    key = op.keys[0]  # type: ignore[index]
    items = op.args[0]
    current = states[0].value
    if type(current) is list:
        return _new(Decision, (len(current), ((EXTEND, key, items),), False))
    if current is None:
        return _new(Decision, (0, ((PUT, key, items),), False))
    raise _wrong_type(key, op.name, current, "a list")


def _decide_increment(op: Op, states: Sequence[KeyState]) -> Decision:
    key = op.keys[0]  # type: ignore[index]
    new = _add(key, op.name, states[0].value, op.args[0])
    return _new(Decision, (new, ((PUT, key, new),), False))


def _add(key: str, op_name: str, current: Any, amount: int | float) -> int | float:
    if current is None:
        return amount
    if type(current) is not int and type(current) is not float:
        raise _wrong_type(key, op_name, current, "a number")
    try:
        new = current + amount
    except OverflowError:  # an int too large to become a float
        new = math.inf
    if not check_number(new):
        raise NotSerializableError(
            f"The {op_name} of {key!r} would store {_short(new)} (adding {_short(amount)} "
            f"to {_short(current)}), which cannot be stored as JSON: a number must be a "
            f"finite float or an int of at most {MAX_INT_DIGITS} digits. Nothing was "
            "written; keep the number in range, or store it as a string."
        )
    return new


def _short(number: int | float) -> str:
    """A number in words short enough for a message (an int of thousands of digits is not)."""
    if type(number) is int and not -(10**30) < number < 10**30:
        magnitude = abs(number)
        digits = int((magnitude.bit_length() - 1) * math.log10(2)) + 1  # exact or one short
        if magnitude >= 10**digits:
            digits += 1
        return f"an int of {digits} digits"
    return repr(number)


def _decide_update(op: Op, states: Sequence[KeyState]) -> Decision:
    key = op.keys[0]  # type: ignore[index]
    fn: Callable[[Any], Any] = op.args[0]
    new = to_json(fn(copy_json(states[0].value)))
    return _new(Decision, (new, ((PUT, key, new),), True))


def _decide_claim(op: Op, states: Sequence[KeyState]) -> Decision:
    key = op.keys[0]  # type: ignore[index]
    owner = op.args[0]
    current = states[0].value
    if current is None:
        return Decision(True, ((PUT, key, owner),))
    return Decision(current == owner)


def _decide_apply(op: Op, states: Sequence[KeyState]) -> Decision:
    # args: one (delta value, reducer, base version) per key, aligned with keys.
    effects: list[Effect] = []
    versions: dict[str, int] = {}
    for key, state, (delta, reducer, base) in zip(op.keys, states, op.args, strict=True):  # type: ignore[arg-type]
        effects.append(reduce_one(key, reducer, state, delta, base, op.agent))
        versions[key] = state.version + 1
    return Decision(versions, tuple(effects))


def reduce_one(
    key: str,
    reducer: str | Callable[[Any, Any], Any],
    state: KeyState,
    delta: Any,
    base_version: int,
    agent: str | None,
) -> Effect:
    """The effect of merging one delta value into one key through its reducer."""
    current = state.value
    if reducer == "append":
        if type(current) is list:
            return (EXTEND, key, delta)
        if current is None:
            return (PUT, key, delta)
        raise _wrong_type(key, "apply (append reducer)", current, "a list")
    if reducer == "add":
        return (PUT, key, _add(key, "apply (add reducer)", current, delta))
    if reducer == "merge":
        if current is None:
            return (PUT, key, delta)
        if type(current) is not dict:
            raise _wrong_type(key, "apply (merge reducer)", current, "a dict")
        return (PUT, key, {**current, **delta})
    if reducer == "last_value":
        if state.version > base_version and state.writer != agent:
            raise _concurrent_write(key, state, base_version, agent)
        return (PUT, key, delta)
    if callable(reducer):
        return (PUT, key, to_json(reducer(copy_json(current), copy_json(delta))))
    raise UsageError(f"Unknown reducer {reducer!r} for key {key!r}.")  # checked earlier


def _concurrent_write(
    key: str, state: KeyState, base_version: int, agent: str | None
) -> ConcurrentWriteError:
    first = state.writer or "an unnamed agent"
    second = agent or "an unnamed agent"
    return ConcurrentWriteError(
        f"Agents {first!r} and {second!r} both wrote the last-value key {key!r}: "
        f"{second!r} based its write on version {base_version}, but {first!r} has "
        f"since written version {state.version}, so one answer would be lost. "
        "Nothing was written; give each agent its own key, declare a reducer that "
        f"combines both writes (append, add, merge), or re-read {key!r} and decide again.",
        key=key,
        writers=(first, second),
    )


def _decide_commit(op: Op, states: Sequence[KeyState]) -> Decision:
    # args: one (read version or None, pending writes) per key, aligned with keys.
    # Loops by index: zip(strict=True) and nested unpacking cost more than the
    # rest of a small transaction's decision.
    keys: tuple[str, ...] = op.keys  # type: ignore[assignment]
    args = op.args
    count = len(keys)
    if len(states) != count or len(args) != count:
        raise ValueError("commit: one state and one (version, writes) pair per key")
    for i in range(count):
        read_version = args[i][0]
        if read_version is not None and states[i].version != read_version:
            key = keys[i]
            raise ConflictError(
                f"The transaction read {key!r} at version {read_version}, but another "
                f"agent has since written version {states[i].version}, so nothing was "
                "committed. Run the transaction again; store.transaction(fn) re-runs "
                "fn by itself.",
                key=key,
                expected=read_version,
                actual=states[i].version,
            )
    effects: list[Effect] = []
    versions: dict[str, int] = {}
    for i in range(count):
        pending = args[i][1]
        if pending:
            key = keys[i]
            state = states[i]
            kind, payload = apply_pending(key, state.value, pending)
            effects.append((kind, key, payload))
            versions[key] = state.version + 1
    return _new(Decision, (versions, tuple(effects), False))


def apply_pending(key: str, current: Any, pending: Sequence[tuple[str, Any]]) -> tuple[int, Any]:
    """Fold a transaction's buffered writes to one key into one effect.

    ``pending`` holds ``("set", value)``, ``("extend", items)`` and
    ``("increment", amount)`` in the order the transaction made them. Used at
    commit and for the transaction's own view of its writes. The payload
    never aliases ``current``; it may be the list of items of a single
    ``extend``.
    """
    if len(pending) == 1:  # the common case, without the loops below
        kind, arg = pending[0]
        if kind == "set":
            return PUT, arg
        if kind == "extend" and type(current) is list:
            return EXTEND, arg
    elif type(current) is list and all(kind == "extend" for kind, _ in pending):
        return EXTEND, [item for _, items in pending for item in items]
    value = current
    for kind, arg in pending:
        if kind == "set":
            value = arg
        elif kind == "extend":
            if value is None:
                value = list(arg)
            elif type(value) is list:
                value = [*value, *arg]
            else:
                raise _wrong_type(key, "extend", value, "a list")
        else:
            value = _add(key, "increment", value, arg)
    return PUT, value


def _wrong_type(key: str, operation: str, current: Any, needed: str) -> WrongTypeError:
    found = json_kind(current)
    return WrongTypeError(
        f"The key {key!r} holds {found}, but {operation} needs {needed} (or a key "
        f"never written). Nothing was written; use another key, or an operation that "
        f"fits {found}.",
        key=key,
        operation=operation,
        found=found,
    )


DECIDERS: dict[str, Callable[[Op, Sequence[KeyState]], Decision]] = {
    "get": _decide_get,
    "set": _decide_set,
    "compare_and_set": _decide_compare_and_set,
    "append": _decide_extend,
    "extend": _decide_extend,
    "append_turn": _decide_extend,
    "increment": _decide_increment,
    "update": _decide_update,
    "claim": _decide_claim,
    "apply": _decide_apply,
    "commit": _decide_commit,
}
