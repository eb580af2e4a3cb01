"""Record the accesses to your own dict / list state, without moving to the store.

``shared = racefree.track(session)`` wraps an existing dict or list (nested
dicts and lists too) so that every read and write through the wrapper
becomes an :class:`~racefree.history.Event` in a history, by the current
agent (``with agent(...)``, else the asyncio task name, else the thread
name). Hand the wrapper to your agents instead of the original; then check
the history with :func:`racefree.check`.

Keys are dotted paths from the root: ``"conversation_history"``,
``"metadata.completed"``, ``"conversation_history.3.content"``; with
``name="session"`` they start with ``"session."``. What is recorded:

- reading a value that is not a container (``s["metadata"]["completed"]``)
  is a ``read`` of its path, with the value; ``len``, iteration, ``in``,
  ``==`` and copies of a container are a ``read`` of the container's path;
  getting a nested container (``s["metadata"]``) records nothing by itself
  and gives a wrapper for it;
- ``d[k] = v`` is a ``write`` of ``path.k`` (with a copy of ``v``), ``del``
  a ``delete``; ``lst[i] = v`` a ``write`` of ``path.i``;
- ``append``, ``extend`` (and ``+=``), ``insert``, ``pop``, ``remove`` on a
  list are atomic ops on the list's path (one step each in CPython, as in
  the store); ``clear()`` is a ``write`` of ``[]``; ``sort``/``reverse`` an
  ``update``.

Each access and its event happen under one lock per tracked root, so the
history's order is the order in which the accesses took effect.

What it cannot see: accesses that bypass the wrapper (the original object,
or references to inner dicts and lists taken before wrapping or out of a
slice or a ``copy()``), C code that reads the object directly, objects that
are not dicts or lists (their attributes are not tracked), and anything
your agents do outside the state (model calls are invisible unless you mark
them with :func:`suspension`). A wrapper is a ``MutableMapping`` /
``MutableSequence`` but not a ``dict`` / ``list`` subclass: code that
checks ``type(x) is dict`` or calls ``json.dumps`` on it needs the original
(keep a reference to it: reading the original records nothing, which is what
you want when you inspect the final state).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, MutableMapping, MutableSequence
from typing import Any, SupportsIndex, overload

from racefree import hooks as _hooks
from racefree.errors import UsageError
from racefree.history import Event, History

__all__ = ["history_of", "suspension", "track"]


class _SwitchPointLock:
    """The tracker's lock. Taking it is a scheduling point for a running exploration.

    Every tracked access takes this lock, so announcing here lets the explorer
    run another agent before any access; which keys the access touched, it
    learns from the events recorded inside.
    """

    __slots__ = ("_depth", "_lock", "_owner")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None  # the thread holding it; reentrant for that thread
        self._depth = 0

    def __enter__(self) -> None:
        me = threading.get_ident()
        if self._owner != me:
            if _hooks._scheduler is not None:  # never while held: the point may switch agents
                _hooks.point("access", None)
            self._lock.acquire()
            self._owner = me
        self._depth += 1

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


class _Tracker:
    """What every wrapper of one tracked root shares: history, lock, versions."""

    __slots__ = ("history", "lock", "versions")

    def __init__(self, history: History) -> None:
        self.history = history
        self.lock = _SwitchPointLock()
        self.versions: dict[str, int] = {}

    def read(self, key: str, value: Any = None) -> None:
        self.history.record(
            "read", key, version_read=self.versions.get(key, 0), value=_plain(value)
        )

    def write(self, op: str, key: str, value: Any = None) -> None:
        before = self.versions.get(key, 0)
        self.versions[key] = before + 1
        self.history.record(
            op, key, version_read=before, version_written=before + 1, value=_plain(value)
        )


def _plain(value: Any) -> Any:
    """A deep copy of plain containers, with wrappers replaced by what they wrap."""
    if isinstance(value, _Tracked):
        value = value._raw
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    """``value`` with any wrappers in it replaced by the objects they wrap."""
    if isinstance(value, _Tracked):
        return value._raw
    if isinstance(value, list) and any(isinstance(v, (_Tracked, list, dict)) for v in value):
        return [_unwrap(v) for v in value]
    if isinstance(value, dict) and any(
        isinstance(v, (_Tracked, list, dict)) for v in value.values()
    ):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


class _Tracked:
    """The part of a wrapper that does not depend on its kind."""

    __slots__ = ("_path", "_raw", "_tracker")
    _raw: Any

    def __init__(self, raw: Any, tracker: _Tracker, path: str) -> None:
        self._raw = raw
        self._tracker = tracker
        self._path = path

    def _key(self, part: object) -> str:
        return f"{self._path}.{part}" if self._path else str(part)

    @property
    def _self_key(self) -> str:
        return self._path or "$"

    def _wrap(self, value: Any, part: object) -> Any:
        if isinstance(value, dict):
            return TrackedDict(value, self._tracker, self._key(part))
        if isinstance(value, list):
            return TrackedList(value, self._tracker, self._key(part))
        return value

    def _read_self(self) -> None:
        self._tracker.read(self._self_key)

    def __eq__(self, other: object) -> bool:
        with self._tracker.lock:
            self._read_self()
            return bool(self._raw == _unwrap(other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._raw)


class TrackedDict(_Tracked, MutableMapping[Any, Any]):
    """A dict whose accesses are recorded (see :func:`track`)."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        tracker = self._tracker
        with tracker.lock:
            try:
                value = self._raw[key]
            except KeyError:
                tracker.read(self._key(key))
                raise
            if isinstance(value, (dict, list)):
                return self._wrap(value, key)
            tracker.read(self._key(key), value)
            return value

    def __setitem__(self, key: Any, value: Any) -> None:
        value = _unwrap(value)
        with self._tracker.lock:
            if key in self._raw and self._raw[key] is value and isinstance(value, (dict, list)):
                return  # ``d[k] += [x]`` rebinds the same list: the extend was recorded
            self._raw[key] = value
            self._tracker.write("write", self._key(key), value)

    def __delitem__(self, key: Any) -> None:
        with self._tracker.lock:
            del self._raw[key]
            self._tracker.write("delete", self._key(key))

    def __iter__(self) -> Iterator[Any]:
        with self._tracker.lock:
            self._read_self()
            return iter(list(self._raw))

    def __len__(self) -> int:
        with self._tracker.lock:
            self._read_self()
            return len(self._raw)

    def __contains__(self, key: object) -> bool:
        with self._tracker.lock:
            self._tracker.read(self._key(key))
            return key in self._raw

    def copy(self) -> dict[Any, Any]:
        """A shallow copy, as a plain dict (a read of the whole dict)."""
        with self._tracker.lock:
            self._read_self()
            return dict(self._raw)

    __copy__ = copy


class TrackedList(_Tracked, MutableSequence[Any]):
    """A list whose accesses are recorded (see :func:`track`)."""

    __slots__ = ()

    def _index(self, index: SupportsIndex) -> int:
        i = index.__index__()
        return i + len(self._raw) if i < 0 else i

    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        with self._tracker.lock:
            if isinstance(index, slice):
                self._read_self()
                return self._raw[index]
            value = self._raw[index]
            if isinstance(value, (dict, list)):
                return self._wrap(value, self._index(index))
            self._read_self()
            return value

    @overload
    def __setitem__(self, index: SupportsIndex, value: Any) -> None: ...

    @overload
    def __setitem__(self, index: slice, value: Iterable[Any]) -> None: ...

    def __setitem__(self, index: SupportsIndex | slice, value: Any) -> None:
        with self._tracker.lock:
            if isinstance(index, slice):
                self._raw[index] = [_unwrap(v) for v in value]
                self._tracker.write("write", self._self_key, self._raw)
                return
            value = _unwrap(value)
            self._raw[index] = value
            self._tracker.write("write", self._key(self._index(index)), value)

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        with self._tracker.lock:
            del self._raw[index]
            self._tracker.write("remove", self._self_key)

    def __len__(self) -> int:
        with self._tracker.lock:
            self._read_self()
            return len(self._raw)

    def __iter__(self) -> Iterator[Any]:
        with self._tracker.lock:
            self._read_self()
            items = list(self._raw)
        return (self._wrap(value, i) for i, value in enumerate(items))

    def __contains__(self, value: object) -> bool:
        with self._tracker.lock:
            self._read_self()
            return _unwrap(value) in self._raw

    def insert(self, index: SupportsIndex, value: Any) -> None:
        """Insert ``value`` before ``index`` (an atomic ``insert`` of the list)."""
        value = _unwrap(value)
        with self._tracker.lock:
            self._raw.insert(index, value)
            self._tracker.write("insert", self._self_key, value)

    def append(self, value: Any) -> None:
        """Append ``value`` (an atomic ``append``, like the store's)."""
        value = _unwrap(value)
        with self._tracker.lock:
            self._raw.append(value)
            self._tracker.write("append", self._self_key, value)

    def extend(self, values: Iterable[Any]) -> None:
        """Append every item of ``values`` in one atomic ``extend``."""
        items = [_unwrap(v) for v in values]
        with self._tracker.lock:
            self._raw.extend(items)
            self._tracker.write("extend", self._self_key, items)

    def __iadd__(self, values: Iterable[Any]) -> TrackedList:
        self.extend(values)
        return self

    def __add__(self, other: Iterable[Any]) -> list[Any]:
        with self._tracker.lock:
            self._read_self()
            return [*self._raw, *_unwrap(other)]

    def pop(self, index: int = -1) -> Any:
        """Remove and return the item at ``index`` (an atomic ``pop``)."""
        with self._tracker.lock:
            value = self._raw.pop(index)
            self._tracker.write("pop", self._self_key, value)
            return value

    def remove(self, value: Any) -> None:
        """Remove the first item equal to ``value`` (an atomic ``remove``)."""
        value = _unwrap(value)
        with self._tracker.lock:
            self._raw.remove(value)
            self._tracker.write("remove", self._self_key, value)

    def clear(self) -> None:
        """Empty the list: a ``write`` of ``[]``."""
        with self._tracker.lock:
            self._raw.clear()
            self._tracker.write("write", self._self_key, [])

    def sort(self, **kwargs: Any) -> None:
        """Sort in place (an atomic ``update`` of the list)."""
        with self._tracker.lock:
            self._raw.sort(**kwargs)
            self._tracker.write("update", self._self_key, self._raw)

    def reverse(self) -> None:
        """Reverse in place (an atomic ``update`` of the list)."""
        with self._tracker.lock:
            self._raw.reverse()
            self._tracker.write("update", self._self_key, self._raw)

    def copy(self) -> list[Any]:
        """A shallow copy, as a plain list (a read of the whole list)."""
        with self._tracker.lock:
            self._read_self()
            return list(self._raw)

    __copy__ = copy


def track(obj: Any, *, history: History | None = None, name: str | None = None) -> Any:
    """Wrap a dict or list so that reads and writes through the wrapper are recorded.

    ``history`` receives the events (a new :class:`History` when ``None``;
    get it back with :func:`history_of`). ``name`` starts every key
    (``"session.metadata.completed"``); give one when you track several
    objects into one history. Returns a ``TrackedDict`` or ``TrackedList``:
    hand it to your agents in place of ``obj``, which it reads and changes.
    """
    if isinstance(obj, _Tracked):
        if history is not None and history is not obj._tracker.history:
            raise UsageError(
                "This object is already tracked into another history. Track the original "
                "object again, or use history_of(obj) to get its history."
            )
        return obj
    if name is not None and (not isinstance(name, str) or not name or "." in name):
        raise UsageError(
            f"track() needs name= to be a non-empty string without dots, not {name!r}."
        )
    tracker = _Tracker(history if history is not None else History())
    if isinstance(obj, dict):
        return TrackedDict(obj, tracker, name or "")
    if isinstance(obj, list):
        return TrackedList(obj, tracker, name or "")
    raise UsageError(
        f"track() wraps a dict or a list, not {type(obj).__name__}. Keep your shared state "
        "in a dict (or list) and track that."
    )


def history_of(tracked: Any) -> History:
    """The history that a wrapper made by :func:`track` records into."""
    if not isinstance(tracked, _Tracked):
        raise UsageError(
            f"history_of() takes an object returned by track(), not {type(tracked).__name__}."
        )
    return tracked._tracker.history


def suspension(where: Any, what: str = "call") -> Event:
    """Record that the current agent lets others run now (a model or tool call, a sleep).

    ``where`` is a tracked object or a :class:`History`. The checker's race
    windows need these: a read and a later overwrite of one key with a
    suspension in between. Call it just before the slow step::

        racefree.suspension(shared, "llm")
        reply = await model(prompt)
    """
    history = where if isinstance(where, History) else history_of(where)
    if isinstance(where, _Tracked):
        with where._tracker.lock:
            return history.record("call", value=what)
    return history.record("call", value=what)
