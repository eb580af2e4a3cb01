"""Order anomalies: interleaved turns, unpaired tool calls, broken causality.

All three look at the messages added to a list key (by ``append``,
``extend``, ``append_turn``, ``turn``), in ``seq`` order.

**Turns.** A turn is a run of one agent's messages on one key that must stay
contiguous. Declare it with meta ``{"turn": "<id>"}`` on each of its appends,
or let the roles say it: an agent's message with role ``user`` opens a turn
that its next ``assistant`` message without tool calls closes. The role is
the message's ``"role"`` field, the value itself when it is a role name
(``"user"``), or meta ``role``. Another agent's message on the key inside an
open turn interleaves it. (The store's ``append_turn`` adds a whole turn in
one event, so it cannot be interleaved.)

**Tool calls.** A message asks for tool calls through ``tool_calls`` (a list
of ``{"id": ...}``), content blocks ``{"type": "tool_use", "id": ...}`` or
meta ``tool_call``; a result answers one through ``tool_call_id``, content
blocks ``{"type": "tool_result", "tool_use_id": ...}`` or meta
``tool_result``. Every call must be answered before any other message lands
on the key. An overwrite of the key resets the bookkeeping.

**Causality.** An event may declare what it depends on with meta
``{"after": ["results.A", "results.B"]}``: keys that must have been written
before it (a summary after the results it summarises). A declared key first
written later is a violation (an error); one never written is a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from racefree.check._events import APPENDS, OVERWRITES, is_write, short, word
from racefree.check.explain import Explanation, Step
from racefree.check.findings import Finding
from racefree.history import Event

__all__ = ["find_order_anomalies"]

_ROLES = frozenset({"user", "assistant", "tool", "system", "developer"})


def _messages(event: Event) -> Iterator[Any]:
    if event.op == "append":
        yield event.value
    elif isinstance(event.value, list):
        yield from event.value
    else:
        yield event.value


def _role(message: Any, event: Event) -> str | None:
    if isinstance(message, dict) and isinstance(message.get("role"), str):
        return str(message["role"])
    if isinstance(message, str) and message in _ROLES:
        return message
    role = event.meta.get("role")
    return role if isinstance(role, str) else None


def _ids(value: Any) -> list[str]:
    if isinstance(value, (str, int)):
        return [str(value)]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int))]
    return []


def _tool_calls(message: Any, event: Event) -> list[str]:
    ids = _ids(event.meta.get("tool_call"))
    if isinstance(message, dict):
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and "id" in call:
                ids.append(str(call["id"]))
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use" and "id" in block:
                    ids.append(str(block["id"]))
    return ids


def _tool_results(message: Any, event: Event) -> list[str]:
    ids = _ids(event.meta.get("tool_result"))
    if isinstance(message, dict):
        if "tool_call_id" in message:
            ids.append(str(message["tool_call_id"]))
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if (
                    isinstance(block, dict)
                    and block.get("type") == "tool_result"
                    and "tool_use_id" in block
                ):
                    ids.append(str(block["tool_use_id"]))
    return ids


class _Key:
    """Bookkeeping for one list key."""

    __slots__ = ("added", "count", "own", "pending", "turns")

    def __init__(self) -> None:
        self.added: list[Event] = []  # message events, in order
        self.count = 0
        self.own: dict[str, int] = {}  # agent -> its message events so far
        self.turns: dict[tuple[str, str], tuple[Event, int, int]] = {}  # (agent, id) -> open
        self.pending: dict[str, Event] = {}  # tool call id -> the event that asked


def find_order_anomalies(
    events: list[Event], *, findings: list[Finding] | None = None
) -> list[Finding]:
    """Interleaved turns, unpaired tool calls and causality violations in ``events``."""
    keys: dict[str, _Key] = {}
    findings = [] if findings is None else findings
    written: set[str] = set()
    waiting: dict[str, list[Event]] = {}  # key not yet written -> events that depend on it

    for event in events:
        after = event.meta.get("after") if event.meta else None
        if after is not None:
            for dep in _ids(after):
                if dep not in written:
                    waiting.setdefault(dep, []).append(event)
        key = event.key
        if key is None or not is_write(event):
            continue
        if key not in written:
            written.add(key)
            for early in waiting.pop(key, ()):
                findings.append(_causality(early, key, event))
        op = event.op
        if op in OVERWRITES:
            state = keys.get(key)
            if state is not None:
                state.pending.clear()
                state.turns.clear()
            continue
        if op not in APPENDS:
            continue
        state = keys.get(key)
        if state is None:
            state = keys[key] = _Key()
        _turns(state, key, event, findings)
        _tools(state, key, event, findings)
        state.added.append(event)
        state.count += 1
        state.own[event.agent] = state.own.get(event.agent, 0) + 1

    for key, state in keys.items():
        for call_id, call in state.pending.items():
            findings.append(_unanswered(key, call_id, call))
    for dep, dependents in waiting.items():
        for dependent in dependents:
            findings.append(_never_written(dependent, dep))
    findings.sort(key=lambda f: f.first_seq)
    return findings


def _turns(state: _Key, key: str, event: Event, findings: list[Finding]) -> None:
    agent = event.agent
    explicit = event.meta.get("turn") if event.meta else None
    messages = list(_messages(event))
    roles = [_role(m, event) for m in messages]
    slot = (agent, str(explicit)) if explicit is not None else (agent, "")
    opened = state.turns.get(slot)
    if opened is not None:
        first, count, own = opened
        others = (state.count - count) - (state.own.get(agent, 0) - own)
        if others > 0:
            intruders = [e for e in state.added[count:] if e.agent != agent]
            findings.append(_interleaved(key, first, intruders, event))
            del state.turns[slot]
            opened = None
    if explicit is not None:
        if opened is None:
            state.turns[slot] = (event, state.count + 1, state.own.get(agent, 0) + 1)
        return
    is_open = opened is not None
    for message, role in zip(messages, roles, strict=True):  # a turn may open and close here
        if role == "user" and not is_open:
            state.turns[slot] = (event, state.count + 1, state.own.get(agent, 0) + 1)
            is_open = True
        elif role == "assistant" and is_open and not _tool_calls(message, event):
            del state.turns[slot]
            is_open = False


def _tools(state: _Key, key: str, event: Event, findings: list[Finding]) -> None:
    for message in _messages(event):
        results = _tool_results(message, event)
        for call_id in results:
            if state.pending.pop(call_id, None) is None:
                findings.append(_orphan(key, call_id, event))
        if not results and state.pending:
            for call_id, call in state.pending.items():
                findings.append(_unpaired(key, call_id, call, event))
            state.pending.clear()
        for call_id in _tool_calls(message, event):
            state.pending[call_id] = event


def _interleaved(key: str, first: Event, intruders: list[Event], last: Event) -> Finding:
    agent = first.agent
    steps = [Step(f"{agent} began a turn on {key}: {short(first.value)}.", first.seq)]
    for other in intruders[:3]:
        added = word(other, "verb", "added")
        steps.append(Step(f"{other.agent} {added} {short(other.value)} to {key}.", other.seq))
    if len(intruders) > 3:
        steps.append(Step(f"... and {len(intruders) - 3} more message(s) from other agents."))
    steps.append(Step(f"{agent} continued its turn: {short(last.value)}.", last.seq))
    others = _names(e.agent for e in intruders)
    conclusion = (
        f"{agent}'s turn is split by messages from {others}: a reader of {key} (or the next "
        "model call) sees a reply that no longer follows what it answers. "
        + word(
            first,
            "fix",
            word(
                last,
                "fix",
                "Add the whole turn in one atomic step (store.append_turn), or hold a lock "
                "for the turn.",
            ),
        )
    )
    return Finding(
        kind="interleaved-turn",
        severity="error",
        agents=tuple(dict.fromkeys([agent, *(e.agent for e in intruders)])),
        keys=(key,),
        events=(first, *intruders[:3], last),
        explanation=Explanation("interleaved-turn", tuple(steps), conclusion),
    )


def _names(names: Iterator[str]) -> str:
    unique = list(dict.fromkeys(names))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]


def _unpaired(key: str, call_id: str, call: Event, other: Event) -> Finding:
    steps = (
        Step(f"{call.agent} added a message to {key} that calls tool {call_id}.", call.seq),
        Step(
            f"{other.agent} added {short(other.value)} to {key} before the result of "
            f"{call_id} arrived.",
            other.seq,
        ),
    )
    conclusion = (
        f"The call {call_id} is no longer directly followed by its result; model APIs reject "
        "such a conversation or answer from the wrong context. Add the call and its result "
        "in one atomic step, or hold a lock from the call to the result."
    )
    return Finding(
        kind="unpaired-tool-call",
        severity="error",
        agents=tuple(dict.fromkeys([call.agent, other.agent])),
        keys=(key,),
        events=(call, other),
        explanation=Explanation("unpaired-tool-call", steps, conclusion),
    )


def _orphan(key: str, call_id: str, result: Event) -> Finding:
    steps = (
        Step(
            f"{result.agent} added the result of tool call {call_id} to {key}, but no call "
            f"{call_id} was waiting for it there.",
            result.seq,
        ),
    )
    conclusion = (
        "The result answers a call that was already answered, was never made on this key, "
        "or was cut off by another message. Add each call and its result together."
    )
    return Finding(
        kind="unpaired-tool-call",
        severity="error",
        agents=(result.agent,),
        keys=(key,),
        events=(result,),
        explanation=Explanation("unpaired-tool-call", steps, conclusion),
    )


def _unanswered(key: str, call_id: str, call: Event) -> Finding:
    steps = (Step(f"{call.agent} added a message to {key} that calls tool {call_id}.", call.seq),)
    conclusion = (
        f"No result for {call_id} was recorded before the history ends. If the run was cut "
        "short this is expected; otherwise the result was lost."
    )
    return Finding(
        kind="unpaired-tool-call",
        severity="warning",
        agents=(call.agent,),
        keys=(key,),
        events=(call,),
        explanation=Explanation("unpaired-tool-call", steps, conclusion),
    )


def _causality(early: Event, dep: str, write: Event) -> Finding:
    target = f" {early.key}" if early.key else ""
    steps = (
        Step(
            f"{early.agent} did {early.op}{target}, declaring that it comes after {dep}.", early.seq
        ),
        Step(f"{write.agent} wrote {dep} only afterwards.", write.seq),
    )
    conclusion = (
        f"{early.agent}'s {early.op} was based on a state without {dep}: the order contradicts "
        f"what it claims to follow. Wait until {dep} is written (an event, a barrier, or a "
        "check of the key inside the same atomic step) before going on."
    )
    return Finding(
        kind="causality",
        severity="error",
        agents=tuple(dict.fromkeys([early.agent, write.agent])),
        keys=tuple(dict.fromkeys([k for k in (early.key, dep) if k])),
        events=(early, write),
        explanation=Explanation("causality", steps, conclusion),
    )


def _never_written(early: Event, dep: str) -> Finding:
    target = f" {early.key}" if early.key else ""
    steps = (
        Step(
            f"{early.agent} did {early.op}{target}, declaring that it comes after {dep}.", early.seq
        ),
    )
    conclusion = (
        f"{dep} was never written in this history, so what {early.agent} built on is missing."
    )
    return Finding(
        kind="causality",
        severity="warning",
        agents=(early.agent,),
        keys=tuple(dict.fromkeys([k for k in (early.key, dep) if k])),
        events=(early,),
        explanation=Explanation("causality", steps, conclusion),
    )
