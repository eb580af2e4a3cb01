"""Event and History: the one data type that every pillar shares.

Agents act on shared state; each access can become an :class:`Event` in a
:class:`History`. The store's recorder and the lesson scenarios write
histories, the checker reads them, the reports draw them, the explorer hands
one per run to the checker.

On disk a history is JSON lines, one event per line, with the keys of
:meth:`Event.to_dict` (``seq``, ``time``, ``agent``, ``op`` required; ``key``,
``version_read``, ``version_written``, ``value``, ``meta`` optional).
Reading one is bounded, so that no file can exhaust memory or the stack: a
line holds at most :data:`MAX_LINE_BYTES` bytes and its JSON nests at most
:data:`MAX_DEPTH` levels (see :func:`parse_json`).
"""

from __future__ import annotations

import _thread
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from racefree import hooks
from racefree.agent import current_agent
from racefree.errors import HistoryEncodeError, HistoryFormatError

__all__ = ["MAX_DEPTH", "MAX_LINE_BYTES", "Event", "History", "parse_json"]

MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest line (one event, or a whole ``--final-state`` file) that is read: 16 MiB."""

MAX_DEPTH = 100
"""How deeply the JSON of one event (or a final state) may nest lists and objects."""


def parse_json(text: str) -> Any:
    """``json.loads(text)``, refusing nesting past :data:`MAX_DEPTH` with a ``ValueError``.

    The limit does not depend on the caller's stack: JSON too deep for the
    parser's recursion is refused with the same message.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(_too_deep()) from None
    # Counting brackets runs at C speed; only text that could be deep is walked.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise ValueError(_too_deep())
    return value


def _too_deep() -> str:
    return f"the JSON nests lists and objects more than {MAX_DEPTH} levels deep"


def _depth(value: Any) -> int:
    """How many levels of lists and dicts ``value`` nests (walked without recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((sub, level + 1) for sub in item if isinstance(sub, (list, dict)))
    return deepest


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "seq": int,
    "time": (int, float),
    "agent": str,
    "op": str,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "key": (str, type(None)),
    "version_read": (int, type(None)),
    "version_written": (int, type(None)),
    "meta": dict,
}


@dataclass(frozen=True)
class Event:
    """One access to shared state by one agent.

    ``seq`` orders events within their history (it is the order in which the
    accesses took effect); ``time`` is monotonic seconds since the history
    started. ``version_read`` / ``version_written`` are the key's version that
    the agent based its access on and the version it produced, where the
    source knows them. ``value`` is the value read, written or appended.
    """

    seq: int
    time: float
    agent: str
    op: str
    key: str | None = None
    version_read: int | None = None
    version_written: int | None = None
    value: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (optional fields left out when empty)."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "time": self.time,
            "agent": self.agent,
            "op": self.op,
        }
        if self.key is not None:
            out["key"] = self.key
        if self.version_read is not None:
            out["version_read"] = self.version_read
        if self.version_written is not None:
            out["version_written"] = self.version_written
        if self.value is not None:
            out["value"] = self.value
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Event:
        """Build an event from :meth:`to_dict` output; ``ValueError`` says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"an event must be a JSON object, not {type(data).__name__}")
        for name, kind in _REQUIRED.items():
            if name not in data:
                raise ValueError(f"the event has no {name!r}")
            if not isinstance(data[name], kind) or isinstance(data[name], bool):
                raise ValueError(f"{name!r} has the wrong type ({type(data[name]).__name__})")
        if not math.isfinite(data["time"]) or data["time"] < 0:
            raise ValueError(f"'time' must be a finite number of seconds >= 0, not {data['time']}")
        for name, kind in _OPTIONAL.items():
            if name in data and not isinstance(data[name], kind):
                raise ValueError(f"{name!r} has the wrong type ({type(data[name]).__name__})")
        unknown = set(data) - set(_REQUIRED) - set(_OPTIONAL) - {"value"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        return cls(
            seq=data["seq"],
            time=float(data["time"]),
            agent=data["agent"],
            op=data["op"],
            key=data.get("key"),
            version_read=data.get("version_read"),
            version_written=data.get("version_written"),
            value=data.get("value"),
            meta=dict(data.get("meta", {})),
        )


_new_event = object.__new__


class History:
    """An append-only, thread-safe sequence of events.

    ``record`` assigns ``seq`` and ``time``; call it at the moment the access
    takes effect (inside the store's critical section), so that ``seq`` order
    is the real order of effects.
    """

    def __init__(self, events: Iterable[Event] = ()) -> None:
        # A plain OS lock, also inside an exploration: it is held across no scheduling
        # point, so no agent ever finds it taken, and it costs nothing to explore.
        self._lock = _thread.allocate_lock()
        self._events: list[Event] = list(events)
        self._start = time.monotonic()

    def record(
        self,
        op: str,
        key: str | None = None,
        *,
        agent: str | None = None,
        version_read: int | None = None,
        version_written: int | None = None,
        value: Any = None,
        meta: dict[str, Any] | None = None,
    ) -> Event:
        """Append one event by ``agent`` (default: the current agent) and return it."""
        who = agent if agent is not None else current_agent()
        # An event is made for every recorded access; filling the frozen dataclass's
        # fields at once is a third of the cost of its generated __init__.
        event = _new_event(Event)
        fields = event.__dict__
        explorer = hooks._scheduler
        # In an explored run, the virtual clock (what time.monotonic() gives an agent there),
        # asked for directly: one call instead of the patched clock's four.
        now = None if explorer is None else explorer.clock_now()
        with self._lock:
            fields.update(
                seq=len(self._events),
                time=(time.monotonic() if now is None else now) - self._start,
                agent=who,
                op=op,
                key=key,
                version_read=version_read,
                version_written=version_written,
                value=value,
                meta=meta or {},
            )
            self._events.append(event)
        if explorer is not None:  # a running exploration: the event joins the agent's step
            explorer.note(op, key, event)
        return event

    @property
    def events(self) -> list[Event]:
        """A copy of the events so far, in ``seq`` order."""
        with self._lock:
            return list(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._events)

    def agents(self) -> list[str]:
        """Agent names in order of first appearance."""
        return list(dict.fromkeys(e.agent for e in self.events))

    def to_jsonl(self, path: str | Path, *, default: Callable[[Any], Any] | None = None) -> None:
        """Write the history as JSON lines, one event per line.

        ``default`` is called for a value JSON cannot hold (a datetime, a set, an
        enum), as by ``json.dumps``, and returns one it can (``default=str``).
        Without it, such a value raises ``HistoryEncodeError`` naming the event
        and the part, and nothing is written: every line is encoded first.
        """
        lines = []
        for event in self.events:
            data = event.to_dict()
            try:
                lines.append(json.dumps(data, sort_keys=True, default=default))
            except (TypeError, ValueError) as exc:  # ValueError: a value that holds itself
                raise HistoryEncodeError(_unencodable(event, data, exc, path, default)) from None
        with open(path, "w", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in lines))

    @classmethod
    def from_jsonl(cls, path: str | Path) -> History:
        """Read a JSON-lines history; a bad line raises ``HistoryFormatError``."""
        events: list[Event] = []
        seen: dict[int, int] = {}  # seq -> the line that had it
        with open(path, "rb") as source:  # decoded line by line, to name the bad line
            number = 0
            while raw := source.readline(MAX_LINE_BYTES + 1):
                number += 1
                if len(raw) > MAX_LINE_BYTES:
                    raise HistoryFormatError(
                        f"{path}, line {number}: longer than {MAX_LINE_BYTES:,} bytes, so it "
                        "was not read. A history is JSON lines, one event per line, each "
                        "at most 16 MiB; see docs/history.md."
                    )
                try:
                    line = raw.decode("utf-8")
                    if not line.strip():
                        continue
                    event = Event.from_dict(parse_json(line))
                    if event.seq in seen:
                        raise ValueError(
                            f"seq {event.seq} was already used on line {seen[event.seq]}"
                        )
                except UnicodeDecodeError:
                    raise HistoryFormatError(
                        f"{path}, line {number}: not UTF-8 text. A history is JSON lines in "
                        "UTF-8; see docs/history.md."
                    ) from None
                except ValueError as exc:  # json.JSONDecodeError is a ValueError
                    raise HistoryFormatError(
                        f"{path}, line {number}: {exc}. Each line must be one JSON object "
                        "with at least seq, time, agent and op; see docs/history.md."
                    ) from None
                seen[event.seq] = number
                events.append(event)
        return cls(events)


_JSON_SCALARS = (str, int, float, bool, type(None))  # also what a dict's keys may be


def _unencodable(
    event: Event,
    data: dict[str, Any],
    exc: Exception,
    path: str | Path,
    default: Callable[[Any], Any] | None,
) -> str:
    """The sentence for an event that ``json.dumps`` refused, naming the part at fault."""
    where = f" on {event.key!r}" if event.key is not None else ""
    found = _first_unencodable(data.get("value"), "value") or _first_unencodable(
        data.get("meta", {}), "meta"
    )
    if found is not None and found[2]:  # default= is never asked about keys
        fix = "Give its dicts keys of one JSON type (str) before recording them."
        what = f"{found[0]} is {found[1]}"
    elif default is not None:
        fix = "Make default= return a JSON value for it."
        what = f"default= raised {type(exc).__name__}: {exc}"
    else:
        fix = (
            "Pass default= to turn such values into JSON ones "
            "(to_jsonl(path, default=str)), or record plain JSON values."
        )
        what = f"{found[0]} is {found[1]}" if found else str(exc)
    return (
        f"event {event.seq} ({event.agent} {event.op}{where}) cannot be written as JSON: "
        f"{what}. Nothing was written to {path}. {fix}"
    )


def _first_unencodable(value: Any, where: str) -> tuple[str, str, bool] | None:
    """Where in ``value`` the first part JSON cannot hold is, what it is, and if it is a key."""
    stack = [(value, where)]
    while stack:
        item, place = stack.pop()
        if isinstance(item, dict):
            keys = list(item)
            for key in keys:
                if not isinstance(key, _JSON_SCALARS):
                    return place, f"a dict with a {type(key).__name__} key ({_short(key)})", True
            try:
                sorted(keys)  # what sort_keys does
            except TypeError:
                kinds = " and ".join(sorted({type(k).__name__ for k in keys}))
                return place, f"a dict whose keys mix {kinds}, which cannot be sorted", True
            stack.extend((item[k], f"{place}[{k!r}]") for k in reversed(keys))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, f"{place}[{i}]") for i, sub in reversed(list(enumerate(item))))
        elif not isinstance(item, _JSON_SCALARS):
            return place, f"a {type(item).__name__} ({_short(item)})", False
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
