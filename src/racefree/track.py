"""Record the accesses to your own state (dicts, lists, objects), without moving to the store.

``shared = racefree.track(session)`` wraps an existing dict, list or object
(a dataclass, a pydantic v2 model, a plain class instance), and the dicts,
lists, dataclasses and pydantic models nested in it, so that every read and
write through the wrapper becomes an :class:`~racefree.history.Event` in a
history, by the current agent (``with agent(...)``, else the asyncio task
name, else the thread name). Hand the wrapper to your agents instead of the
original; then check the history with :func:`racefree.check`.

The wrapper behaves like the original: a tracked dict is a ``dict``, a
tracked list a ``list``, a tracked object an instance of a subclass of the
object's class, so ``isinstance`` holds, ``json.dumps``, ``|``, ``|=``,
``dict(x)``, ``list(x)``, ``==``, ``dataclasses.asdict`` and pydantic's
``model_dump`` work. ``copy.deepcopy`` and ``pickle`` give plain data (the
original types, no wrapper inside); ``copy.copy`` (and ``x.copy()``,
``dict(x)``, ``list(x)``, ``x | y``) copies only the top level, as on the
original, so the dicts, lists and objects nested in the copy are the tracked
ones: tracking is lost only where your code copied.

Keys are dotted paths from the root: ``"conversation_history"``,
``"metadata.completed"``, ``"tokens"`` (an attribute); with
``name="session"`` they start with ``"session."``. What is recorded:

- reading a value that is not tracked itself (``s["metadata"]["completed"]``,
  ``session.tokens``) is a ``read`` of its path, with the value; getting a
  nested container (``s["metadata"]``) records nothing by itself and gives
  its wrapper;
- reading a dict or object as a whole is a ``read`` of its path and one of
  each value it holds that is not tracked itself: iterating a dict's
  ``items()`` or ``values()`` (what ``json.dumps`` does), ``copy.copy``,
  ``x | y``; iterating its keys, ``len`` and ``in`` read only the dict's own
  path (``in`` the key's);
- a *deep* read (``copy.deepcopy``, ``pickle``, ``==``, an object's
  ``__dict__``: ``vars()``, pydantic's ``model_dump``) also reads every
  nested dict and object that way;
- reading a list, as a whole or an item (iterating it, ``json.dumps``,
  ``list(x)``, a slice, a copy, ``+``, a comparison, ``len``, ``in``,
  ``lst[i]``, being part of a deep read) is one ``read`` of the list's path,
  without a value;
- ``d[k] = v`` or ``obj.attr = v`` is a ``write`` of ``path.k`` (with a copy
  of ``v``), ``del`` a ``delete``; ``pop`` / ``popitem`` / ``setdefault`` a
  ``read`` and a change in one step; ``update`` (and ``|=``) one ``write`` per
  key, in one step; ``lst[i] = v`` a ``write`` of ``path.i``. A key added to
  or removed from a dict is also, for the explorer only (no event), a write
  of the dict's own path: ``len``, iterating its keys and a listing of them
  are ordered against it, and two such changes against each other (they
  order its keys);
- ``append``, ``extend`` (and ``+=``), ``insert``, ``pop``, ``remove`` on a
  list are atomic ops on the list's path (one step each in CPython, as in
  the store); ``clear()`` is a ``write`` of ``[]``; ``sort`` / ``reverse`` an
  ``update``.

A write's ``version_read`` is the version of that key this agent last read
(its last read, or its own last write; ``None`` when the history shows no
read: a blind write), as the checker means it; an atomic op's is the
version just before it. Each access and its events happen under one lock
per tracked root, so the history's order is the order in which the
accesses took effect, and a whole or deep read is one step.

Your original object is the data: every access through the wrapper reads
it and every write goes through to it (read it to inspect the final state:
that records nothing), so a change made to it directly, or through a second
wrapper of it, is seen by the next access through the wrapper. A tracked
dict's or list's own storage (what ``isinstance`` makes it) holds a copy of
the original's contents, nested parts as their wrappers, brought up to date
at every access through the wrapper, so that C code reading that storage
directly sees the data as of the last such access.

What it cannot see:

- accesses that bypass the wrapper: the original object and references to
  its parts taken before wrapping, an object you stored (``s["m"] = m``)
  changed afterwards through your own reference ``m``, and anything in a
  copy your code made (a deep copy, ``json.loads(json.dumps(x))``,
  ``model_dump()``);
- C code that reads a tracked dict's or list's storage without calling its
  methods: ``dict.copy(x)`` or ``list.__getitem__(x, i)`` called on the
  class, pydantic-core validating or serialising a dict or list field, a C
  extension's ``PyDict_GetItem``; the parts of such an access that go
  through a method (a model's ``__dict__``, ``dict(x)``'s ``keys()``,
  ``json``'s ``items()``, ``str.join``'s iteration) are recorded, and such
  code sees the data as of the last access through the wrapper. C code that
  *changes* the storage
  directly (``heapq.heappush(x, v)``, ``list.append(x, v)`` called on the
  class, writing into ``vars(obj)``) changes only that copy, not your
  original, and the next access through the wrapper replaces it with the
  original's data: the change is lost and nothing is recorded; call the
  wrapper's methods instead;
- ``repr()``, ``str()`` and printing a wrapper (reading it to show it is not
  an agent's read);
- a key that did not exist when an agent copied its container: a later
  write of it by that agent is a blind write, so the checker cannot say it
  lost another agent's creation of that key;
- ``lst[i]`` reads and ``lst[i] = v`` writes of items are on different keys
  (the list's, the item's): an item overwritten from a stale read is not a
  lost update to the checker; keep lists append-only or write them whole;
- plain class instances nested in your state (only dicts, lists,
  dataclasses and pydantic models are tracked inside it); objects whose
  class has no ``__dict__`` (``__slots__`` only); dict and list subclasses
  (``defaultdict``, ``OrderedDict``): they are read as values; reads of
  attributes kept in ``__slots__`` beside a ``__dict__`` (writes of them are
  recorded);
- ``type(x) is dict`` is false for a tracked dict, and ``type(obj) is Cls``
  for a tracked object (``isinstance`` holds; the subclass has ``Cls``'s
  name).

Other differences from the original: ``keys()``, ``items()`` and
``values()`` are views of a snapshot taken when you call them, not live
views; calling a tracked class (``type(x)(...)``, as ``dataclasses.replace``
and ``asdict`` do) builds a plain object; an object stored at two places in
one tracked state is recorded under the path where it was stored last.
``dict(x)`` and ``{**x}`` call ``keys()`` and then read key by key, so
another agent may run between two keys (as between two lines of your code),
and one that deletes a key there makes them raise ``KeyError``; ``x.copy()``
is one step.
"""

from __future__ import annotations

import _thread
import contextlib
import copy as _copy
import sys
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex, overload

from racefree import hooks as _hooks
from racefree.agent import current_agent
from racefree.errors import UsageError
from racefree.history import Event, History

__all__ = ["history_of", "suspension", "track"]

# Atomic ops after which the agent holds the key's new value (as the checker counts them).
_KNOWS_RESULT = frozenset({"update"})
_OVERWRITES = frozenset({"write", "delete"})
_MISSING: Any = object()
# Values that are never wrapped and are their own plain copy: the fast path of every access.
_SCALARS = frozenset({str, int, float, bool, type(None), bytes})


_get_ident = _thread.get_ident


class _SwitchPointLock:
    """The tracker's lock. Taking it is a scheduling point for a running exploration.

    Every tracked access takes this lock, so announcing here lets the explorer
    run another agent before any access; which keys the access touched, it
    learns from the events recorded inside. The lock itself is a real one, also
    inside an exploration, which takes it through ``hooks.enter``: free (almost
    always), it costs an agent one C call; taken, the agent waits for it as a
    scheduling decision.
    """

    __slots__ = ("_depth", "_owner", "holder", "lock")

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self._owner: int | None = None  # the thread holding it; reentrant for that thread
        self._depth = 0
        self.holder: object = None  # the explorer's agent holding it (hooks.enter sets it)

    def __enter__(self) -> None:
        me = _get_ident()
        if self._owner != me:
            explorer = _hooks._scheduler
            # Never while held: the scheduling point may switch agents.
            if explorer is None or not explorer.enter(self):
                self.lock.acquire()
            self._owner = me
        self._depth += 1

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = self.holder = None
            self.lock.release()

    def drop(self) -> None:
        """Let go of a hold its holder will never release (an abandoned exploration run)."""
        self._owner, self._depth = None, 0
        with contextlib.suppress(RuntimeError):
            self.lock.release()


class _Tracker:
    """What every wrapper of one tracked root shares: history, lock, versions, wrappers."""

    __slots__ = ("history", "lock", "looked", "versions", "wrappers")

    def __init__(self, history: History) -> None:
        self.history = history
        self.lock = _SwitchPointLock()
        self.versions: dict[str, int] = {}
        # (agent, key) -> the key's version at that agent's last look (read or own write)
        self.looked: dict[tuple[str, str], int] = {}
        # id(original part) -> its wrapper: one wrapper per object, so aliases stay one
        self.wrappers: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()

    def read(self, key: str, value: Any = None, *, has_value: bool = True) -> None:
        who = current_agent()
        version = self.versions.get(key, 0)
        self.looked[(who, key)] = version
        if has_value and type(value) not in _SCALARS:
            value = _plain(value)
        self.history.record(
            "read", key, agent=who, version_read=version, value=value if has_value else None
        )

    def write(self, op: str, key: str, value: Any = None) -> None:
        who = current_agent()
        before = self.versions.get(key, 0)
        after = self.versions[key] = before + 1
        if op in _OVERWRITES:
            based_on = self.looked.get((who, key))  # None: nothing this agent read
            self.looked[(who, key)] = after
        else:
            based_on = before
            if op in _KNOWS_RESULT:
                self.looked[(who, key)] = after
        self.history.record(
            op,
            key,
            agent=who,
            version_read=based_on,
            version_written=after,
            value=value if type(value) in _SCALARS else _plain(value),
        )

    # --- wrapping -------------------------------------------------------------------------

    def wrap(self, value: Any, path: str) -> Any:
        """The wrapper of ``value`` stored at ``path`` (``value`` itself if it is not tracked)."""
        kind = type(value)
        if kind in _SCALARS or (kind is not dict and kind is not list and not _is_model(value)):
            return value
        found = self.wrappers.get(id(value))
        if found is not None and _raw(found) is value:
            if _path(found) != path:
                _repath(found, path)
            return found
        return self._new(value, path)

    def _new(self, value: Any, path: str) -> Any:
        if type(value) is dict:
            made: Any = TrackedDict._make(value, self, path)
            self.wrappers[id(value)] = made
            for k, v in value.items():
                dict.__setitem__(made, k, self.wrap(v, _join(path, k)))
            return made
        if type(value) is list:
            made = TrackedList._make(value, self, path)
            self.wrappers[id(value)] = made
            list.extend(made, [self.wrap(v, _join(path, i)) for i, v in enumerate(value)])
            return made
        return _make_object(value, self, path)


def _join(path: str, part: object) -> str:
    return f"{path}.{part}" if path else str(part)


def _self_key(path: str) -> str:
    return path or "$"


def _changed_keys(path: str) -> None:
    """A key was added to or removed from the dict at ``path``: for the explorer, a write
    of the dict itself, so that ``len()``, ``keys()`` and iteration (reads of it) do not
    commute with the change, nor two changes with each other (they order its keys).
    No event: to the checker each key is its own."""
    _hooks.note("write", _self_key(path))


def _is_model(value: Any) -> bool:
    """A dataclass instance or a pydantic model: objects tracked when nested in state."""
    cls = type(value)
    if hasattr(cls, "__dataclass_fields__") and not isinstance(value, type):
        return cls.__dictoffset__ != 0  # a slots dataclass has no __dict__ to mirror
    pydantic = sys.modules.get("pydantic")  # never imported here: loaded only if you use it
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


# --- what every kind of wrapper answers -----------------------------------------------------

_WRAPPER_CLASSES: set[type] = set()  # the tracked subclasses made for objects


def _is_wrapper(value: Any) -> bool:
    kind = type(value)
    return kind is TrackedDict or kind is TrackedList or kind in _WRAPPER_CLASSES


def _node(value: Any) -> _Node:
    """The wrapper's raw object, tracker and path (any kind of wrapper)."""
    if type(value) in _WRAPPER_CLASSES:
        node: _Node = object.__getattribute__(value, "_racefree")
        return node
    return value._node  # type: ignore[no-any-return]


def _raw(value: Any) -> Any:
    return _node(value).raw


def _path(value: Any) -> str:
    return _node(value).path


class _Node:
    """A wrapper's link to what it wraps."""

    __slots__ = ("iterated", "path", "raw", "tracker")

    def __init__(self, raw: Any, tracker: _Tracker, path: str) -> None:
        self.raw = raw
        self.tracker = tracker
        self.path = path
        # Where a list's iteration began (thread, calling frame, its instruction): see
        # TrackedList.__len__
        self.iterated: tuple[int, int, int] | None = None


def _children(wrapper: Any) -> list[tuple[object, Any]]:
    """``(part, value)`` for each value a wrapper holds, read without recording."""
    kind = type(wrapper)
    if kind is TrackedDict:
        return list(dict.items(wrapper))
    if kind is TrackedList:
        return list(enumerate(list.__iter__(wrapper)))
    return list(object.__getattribute__(wrapper, "__dict__").items())


def _refresh(wrapper: Any) -> None:
    """Make what a wrapper holds its original's contents again."""
    kind = type(wrapper)
    if kind is TrackedDict:
        wrapper._refresh()
    elif kind is TrackedList:
        wrapper._sync()
    else:
        _object_sync(wrapper)


def _repath(wrapper: Any, path: str, seen: set[int] | None = None) -> None:
    """Give a wrapper (and what it holds) the path of the place it now sits at."""
    seen = set() if seen is None else seen
    if id(wrapper) in seen:
        return
    seen.add(id(wrapper))
    _node(wrapper).path = path
    for part, value in _children(wrapper):
        if _is_wrapper(value):
            _repath(value, _join(path, part), seen)


def _read_whole(wrapper: Any, *, deep: bool, seen: set[int] | None = None) -> None:
    """Record a read of a container as a whole (call with the tracker's lock held).

    A dict or object: its own path, then each value it holds that is not
    tracked itself (with the value); ``deep`` also reads each nested dict and
    object that way. A list: one read of its path.
    """
    node = _node(wrapper)
    tracker, path = node.tracker, node.path
    if type(wrapper) is TrackedList:
        tracker.read(_self_key(path), has_value=False)
        return
    seen = set() if seen is None else seen
    if id(wrapper) in seen:
        return
    seen.add(id(wrapper))
    _refresh(wrapper)
    tracker.read(_self_key(path), has_value=False)
    nested = []
    for part, value in _children(wrapper):
        if _is_wrapper(value):
            nested.append(value)
        else:
            tracker.read(_join(path, part), value)
    if deep:  # else the nested parts, still tracked, record their own reads
        for value in nested:
            _read_whole(value, deep=True, seen=seen)


def _plain(value: Any) -> Any:
    """A JSON-like deep copy for an event's value, with wrappers replaced by what they wrap."""
    if type(value) in _SCALARS:
        return value
    if _is_wrapper(value):
        value = _raw(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if _is_model(value):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


def _unwrap(value: Any) -> Any:
    """``value`` with any wrappers in it replaced by the objects they wrap."""
    if _is_wrapper(value):
        return _raw(value)
    if type(value) is list and any(_is_wrapper(v) or type(v) in (list, dict) for v in value):
        return [_unwrap(v) for v in value]
    if type(value) is dict and any(
        _is_wrapper(v) or type(v) in (list, dict) for v in value.values()
    ):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _deepcopy(wrapper: Any, memo: dict[int, Any] | None = None) -> Any:
    node = _node(wrapper)
    with node.tracker.lock:
        _read_whole(wrapper, deep=True)
        memo = {} if memo is None else memo
        copied = _copy.deepcopy(node.raw, memo)
    memo[id(wrapper)] = copied
    return copied


def _equal(wrapper: Any, other: object) -> bool:
    """``==`` as on the originals: a deep read of each tracked side."""
    node = _node(wrapper)
    if _is_wrapper(other):
        other_node = _node(other)
        if other_node.tracker is not node.tracker:
            # Another root: its read under its own lock, never both locks at once (two
            # agents comparing the two roots in opposite orders must not deadlock).
            with other_node.tracker.lock:
                _read_whole(other, deep=True)
        with node.tracker.lock:
            _read_whole(wrapper, deep=True)
            if other_node.tracker is node.tracker:
                _read_whole(other, deep=True)
            return bool(node.raw == other_node.raw)
    with node.tracker.lock:
        _read_whole(wrapper, deep=True)
        return bool(node.raw == _unwrap(other))


# --- dicts ----------------------------------------------------------------------------------


class TrackedDict(dict[Any, Any]):
    """A dict whose accesses are recorded (see :func:`track`).

    Every access reads and changes the original dict; its own storage holds
    a copy of it (nested parts as their wrappers), brought up to date at each
    access, for C code that reads a dict directly. Calling
    ``TrackedDict(...)`` (as ``dataclasses.asdict`` does with
    ``type(x)(...)``) makes a plain dict.
    """

    __slots__ = ("__weakref__", "_node")
    _node: _Node

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return dict(*args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # never called: __new__ returns a dict
        pass

    @classmethod
    def _make(cls, raw: dict[Any, Any], tracker: _Tracker, path: str) -> TrackedDict:
        made = dict.__new__(cls)
        made._node = _Node(raw, tracker, path)
        return made

    def _key(self, part: object) -> str:
        return _join(self._node.path, part)

    def _put(self, key: Any, value: Any) -> Any:
        """Store ``value`` (unwrapped) at ``key`` in the original and its wrapper here."""
        node = self._node
        node.raw[key] = value
        wrapped = node.tracker.wrap(value, self._key(key))
        dict.__setitem__(self, key, wrapped)
        return wrapped

    def _drop(self, key: Any) -> Any:
        node = self._node
        value = self._current(key)
        del node.raw[key]
        dict.pop(self, key, None)
        node.tracker.write("delete", self._key(key))
        _changed_keys(node.path)
        return value

    def _current(self, key: Any) -> Any:
        """The value at ``key`` in the original (``KeyError`` if none), as held here."""
        node = self._node
        value = node.raw[key]
        held = dict.get(self, key, _MISSING)
        if type(value) in _SCALARS:  # a scalar is its own wrapper: no path, no look-up
            if held is not value:
                dict.__setitem__(self, key, value)  # the original was changed directly
            return value
        kind = type(held)
        if kind is TrackedDict or kind is TrackedList:
            # The wrapper held here still wraps this very object: it is the one wrap()
            # would find (one wrapper per object, and this one is alive), so skip the
            # look-up; only its path may need updating, as wrap() would.
            held_node = held._node
            if held_node.raw is value and held_node.tracker is node.tracker:
                where = _join(node.path, key)
                if held_node.path != where:
                    _repath(held, where)
                return held
        wrapped = node.tracker.wrap(value, self._key(key))
        if held is not wrapped:
            dict.__setitem__(self, key, wrapped)  # the original was changed directly
        return wrapped

    def _refresh(self) -> None:
        """Make what is held here the original's contents (a change made to it directly)."""
        node = self._node
        raw = node.raw
        if dict.__len__(self) != len(raw) or any(k not in raw for k in dict.keys(self)):
            for key in [k for k in dict.keys(self) if k not in raw]:
                dict.__delitem__(self, key)
        for key in raw:
            self._current(key)

    # reads

    def __getitem__(self, key: Any) -> Any:
        node = self._node
        tracker = node.tracker
        with tracker.lock:
            try:
                value = self._current(key)
            except KeyError:
                tracker.read(self._key(key))
                raise
            kind = type(value)
            if kind in _SCALARS or not _is_wrapper(value):
                path = node.path
                tracker.read(f"{path}.{key}" if path else str(key), value)
            return value

    def get(self, key: Any, default: Any = None) -> Any:
        """``d[key]`` if present, else ``default`` (a read of ``key`` either way)."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        with self._node.tracker.lock:
            self._node.tracker.read(self._key(key), has_value=False)
            return key in self._node.raw

    def __len__(self) -> int:
        with self._node.tracker.lock:
            self._node.tracker.read(_self_key(self._node.path), has_value=False)
            return len(self._node.raw)

    def __iter__(self) -> Iterator[Any]:
        with self._node.tracker.lock:
            self._node.tracker.read(_self_key(self._node.path), has_value=False)
            return iter(list(self._node.raw))

    def __reversed__(self) -> Iterator[Any]:
        with self._node.tracker.lock:
            self._node.tracker.read(_self_key(self._node.path), has_value=False)
            return iter(list(reversed(self._node.raw)))

    def _snapshot(self) -> dict[Any, Any]:
        """A shallow plain copy, read as a whole (nested parts stay tracked)."""
        with self._node.tracker.lock:
            _read_whole(self, deep=False)
            return dict(dict.items(self))

    def keys(self) -> Any:
        """The keys now (a view of a snapshot, not live): a read of the dict."""
        with self._node.tracker.lock:
            self._node.tracker.read(_self_key(self._node.path), has_value=False)
            return dict.fromkeys(self._node.raw).keys()

    def items(self) -> Any:
        """The items now (a view of a snapshot, not live): a read of the dict and its values."""
        return self._snapshot().items()

    def values(self) -> Any:
        """The values now (a view of a snapshot, not live): a read of the dict and its values."""
        return self._snapshot().values()

    def copy(self) -> dict[Any, Any]:
        """A shallow copy, as a plain dict whose nested parts are still tracked."""
        return self._snapshot()

    __copy__ = copy

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> dict[Any, Any]:
        return _deepcopy(self, memo)  # type: ignore[no-any-return]

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        with self._node.tracker.lock:
            _read_whole(self, deep=True)
            return (dict, (dict(self._node.raw),))

    def __eq__(self, other: object) -> bool:
        return _equal(self, other)

    def __ne__(self, other: object) -> bool:
        return not _equal(self, other)

    __hash__ = None

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        merged = self._snapshot()
        merged.update(other)
        return merged

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        merged = dict(other)
        merged.update(self._snapshot())
        return merged

    def __repr__(self) -> str:
        return repr(self._node.raw)

    # writes

    def __setitem__(self, key: Any, value: Any) -> None:
        scalar = type(value) in _SCALARS
        if not scalar:
            value = _unwrap(value)
        node = self._node
        tracker = node.tracker
        with tracker.lock:
            raw = node.raw
            if not scalar and key in raw and raw[key] is value and _is_container(value):
                return  # ``d[k] += [x]`` rebinds the same list: the extend was recorded
            path = node.path
            where = f"{path}.{key}" if path else str(key)
            new = key not in raw
            same = scalar and not new and type(raw[key]) is type(value) and raw[key] == value
            raw[key] = value  # _put's body, with the path made once
            dict.__setitem__(self, key, value if scalar else tracker.wrap(value, where))
            tracker.write("write", where, value)
            if new:
                _changed_keys(path)
            elif same:
                _left_as_it_was(where)

    def __delitem__(self, key: Any) -> None:
        with self._node.tracker.lock:
            self._drop(key)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value: a read and a ``delete`` in one step."""
        tracker = self._node.tracker
        with tracker.lock:
            if key not in self._node.raw:
                tracker.read(self._key(key))
                if default is _MISSING:
                    raise KeyError(key)
                return default
            value = self._current(key)
            tracker.read(self._key(key), value)
            return self._drop(key)

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the last item: a read and a ``delete`` in one step."""
        with self._node.tracker.lock:
            if not self._node.raw:
                self._node.tracker.read(_self_key(self._node.path), has_value=False)
                raise KeyError("popitem(): dictionary is empty")
            key = next(reversed(self._node.raw))
            return key, self.pop(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """``d[key]``, first setting it to ``default`` if absent (a read, maybe a write)."""
        tracker = self._node.tracker
        with tracker.lock:
            if key in self._node.raw:
                return self[key]
            tracker.read(self._key(key))
            self[key] = default
            return self._current(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set every key given, in one step: one ``write`` per key."""
        items = dict(*args, **kwargs)
        with self._node.tracker.lock:
            for key, value in items.items():
                self[key] = value

    def __ior__(self, other: Any) -> TrackedDict:
        self.update(other)
        return self

    def clear(self) -> None:
        """Remove every key, in one step: one ``delete`` per key."""
        with self._node.tracker.lock:
            for key in list(self._node.raw):
                self._drop(key)
            dict.clear(self)


def _left_as_it_was(key: str) -> None:
    """Tell a running exploration that the write just recorded changed nothing."""
    explorer = _hooks._scheduler
    if explorer is not None:
        explorer.left_as_it_was(key)


def _is_container(value: Any) -> bool:
    return type(value) in (dict, list) or _is_model(value)


# --- lists ----------------------------------------------------------------------------------


class TrackedList(list[Any]):
    """A list whose accesses are recorded (see :func:`track`).

    Every access reads and changes the original list; its own storage holds
    a copy of it (nested parts as their wrappers), brought up to date at each
    access, for C code that reads a list directly. Calling
    ``TrackedList(...)`` makes a plain list.
    """

    __slots__ = ("__weakref__", "_node")
    _node: _Node

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return list(*args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # never called: __new__ returns a list
        pass

    @classmethod
    def _make(cls, raw: list[Any], tracker: _Tracker, path: str) -> TrackedList:
        made = list.__new__(cls)
        made._node = _Node(raw, tracker, path)
        return made

    @property
    def _key(self) -> str:
        return _self_key(self._node.path)

    def _read(self) -> None:
        """A read of the list as a whole (without its value: a copy per read would cost)."""
        self._node.tracker.read(self._key, has_value=False)

    def _sync(self) -> None:
        """Rebuild the wrappers here from the original after a change that moved items."""
        node = self._node
        list.__setitem__(
            self,
            slice(None),
            [node.tracker.wrap(v, _join(node.path, i)) for i, v in enumerate(node.raw)],
        )

    def _current(self, index: SupportsIndex) -> Any:
        """The item at ``index`` in the original (``IndexError`` if none), as held here."""
        node = self._node
        raw = node.raw
        value = raw[index]  # raises as the original does
        if list.__len__(self) != len(raw):
            self._sync()  # the original was changed directly
        i = self._index(index)
        wrapped = node.tracker.wrap(value, _join(node.path, i))
        if list.__getitem__(self, i) is not wrapped:
            list.__setitem__(self, i, wrapped)
        return wrapped

    def _index(self, index: SupportsIndex) -> int:
        i = index.__index__()
        return i + len(self._node.raw) if i < 0 else i

    # reads

    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        with self._node.tracker.lock:
            if isinstance(index, slice):
                self._read()
                self._sync()
                return list.__getitem__(self, index)
            value = self._current(index)
            if not _is_wrapper(value):
                self._read()
            return value

    def __len__(self) -> int:
        node = self._node
        iterated = node.iterated
        if iterated is not None:
            node.iterated = None
            caller = sys._getframe(1)
            if iterated == (_get_ident(), id(caller), caller.f_lasti):
                # list(x), tuple(x), sorted(x), [*x]: C code begins the iteration, then, in
                # the same call, asks the length as a size hint. That is the iteration's
                # read, not a second one: a switch point here showed the copy as made after
                # writes it had missed. (Any other len() is a call of its own: recorded.)
                return len(node.raw)
        with node.tracker.lock:
            self._read()
            return len(node.raw)

    def __iter__(self) -> Iterator[Any]:
        node = self._node
        with node.tracker.lock:
            self._read()
            self._sync()
            items = list(list.__iter__(self))
            caller = sys._getframe(1)
            node.iterated = (_get_ident(), id(caller), caller.f_lasti)
            return iter(items)

    def __reversed__(self) -> Iterator[Any]:
        with self._node.tracker.lock:
            self._read()
            self._sync()
            return iter(list(list.__reversed__(self)))

    def __contains__(self, value: object) -> bool:
        with self._node.tracker.lock:
            self._read()
            return _unwrap(value) in self._node.raw

    def index(self, value: Any, *args: Any) -> int:
        """The first index of ``value`` (a read of the list)."""
        with self._node.tracker.lock:
            self._read()
            return int(self._node.raw.index(_unwrap(value), *args))

    def count(self, value: Any) -> int:
        """How many items equal ``value`` (a read of the list)."""
        with self._node.tracker.lock:
            self._read()
            return int(self._node.raw.count(_unwrap(value)))

    def copy(self) -> list[Any]:
        """A shallow copy, as a plain list whose nested parts are still tracked."""
        with self._node.tracker.lock:
            self._read()
            self._sync()
            return list(list.__iter__(self))

    __copy__ = copy

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> list[Any]:
        return _deepcopy(self, memo)  # type: ignore[no-any-return]

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
        with self._node.tracker.lock:
            self._read()
            return (list, (list(self._node.raw),))

    def __eq__(self, other: object) -> bool:
        return _equal(self, other)

    def __ne__(self, other: object) -> bool:
        return not _equal(self, other)

    def _compare(self, other: Any) -> tuple[list[Any], Any]:
        with self._node.tracker.lock:
            self._read()
            return list(self._node.raw), _unwrap(other)

    def __lt__(self, other: Any) -> bool:
        mine, theirs = self._compare(other)
        return bool(mine < theirs)

    def __le__(self, other: Any) -> bool:
        mine, theirs = self._compare(other)
        return bool(mine <= theirs)

    def __gt__(self, other: Any) -> bool:
        mine, theirs = self._compare(other)
        return bool(mine > theirs)

    def __ge__(self, other: Any) -> bool:
        mine, theirs = self._compare(other)
        return bool(mine >= theirs)

    __hash__ = None

    def __add__(self, other: Any) -> list[Any]:
        return [*self.copy(), *other]

    def __radd__(self, other: Any) -> list[Any]:
        return [*other, *self.copy()]

    def __mul__(self, times: SupportsIndex) -> list[Any]:
        return self.copy() * times

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return repr(self._node.raw)

    # writes

    @overload
    def __setitem__(self, index: SupportsIndex, value: Any) -> None: ...

    @overload
    def __setitem__(self, index: slice, value: Iterable[Any]) -> None: ...

    def __setitem__(self, index: SupportsIndex | slice, value: Any) -> None:
        node = self._node
        with node.tracker.lock:
            if isinstance(index, slice):
                node.raw[index] = [_unwrap(v) for v in value]
                self._sync()
                node.tracker.write("write", self._key, node.raw)
                return
            value = _unwrap(value)
            node.raw[index] = value
            i = self._index(index)
            self._current(i)
            node.tracker.write("write", _join(node.path, i), value)

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        node = self._node
        with node.tracker.lock:
            before = len(node.raw)
            del node.raw[index]
            self._sync()
            node.tracker.write("remove", self._key)
            if len(node.raw) == before:  # ``del buffer[:0]``: an empty batch taken
                _left_as_it_was(self._key)

    def insert(self, index: SupportsIndex, value: Any) -> None:
        """Insert ``value`` before ``index`` (an atomic ``insert`` of the list)."""
        value = _unwrap(value)
        node = self._node
        with node.tracker.lock:
            node.raw.insert(index, value)
            self._sync()
            node.tracker.write("insert", self._key, value)

    def append(self, value: Any) -> None:
        """Append ``value`` (an atomic ``append``, like the store's)."""
        value = _unwrap(value)
        node = self._node
        with node.tracker.lock:
            node.raw.append(value)
            if list.__len__(self) == len(node.raw) - 1:
                list.append(self, node.tracker.wrap(value, _join(node.path, len(node.raw) - 1)))
            else:
                self._sync()  # the original was changed directly
            node.tracker.write("append", self._key, value)

    def extend(self, values: Iterable[Any]) -> None:
        """Append every item of ``values`` in one atomic ``extend``."""
        items = [_unwrap(v) for v in values]
        node = self._node
        with node.tracker.lock:
            start = len(node.raw)
            node.raw.extend(items)
            if list.__len__(self) == start:
                list.extend(
                    self,
                    [
                        node.tracker.wrap(v, _join(node.path, start + i))
                        for i, v in enumerate(items)
                    ],
                )
            else:
                self._sync()  # the original was changed directly
            node.tracker.write("extend", self._key, items)

    def __iadd__(self, values: Iterable[Any]) -> TrackedList:  # type: ignore[misc]
        self.extend(values)
        return self

    def __imul__(self, times: SupportsIndex) -> TrackedList:
        node = self._node
        with node.tracker.lock:
            node.raw *= times
            self._sync()
            node.tracker.write("write", self._key, node.raw)
        return self

    def pop(self, index: SupportsIndex = -1) -> Any:
        """Remove and return the item at ``index`` (an atomic ``pop``)."""
        node = self._node
        with node.tracker.lock:
            value = self._current(index)
            raw_value = node.raw.pop(index)
            self._sync()
            node.tracker.write("pop", self._key, raw_value)
            return value

    def remove(self, value: Any) -> None:
        """Remove the first item equal to ``value`` (an atomic ``remove``)."""
        value = _unwrap(value)
        node = self._node
        with node.tracker.lock:
            node.raw.remove(value)
            self._sync()
            node.tracker.write("remove", self._key, value)

    def clear(self) -> None:
        """Empty the list: a ``write`` of ``[]``."""
        node = self._node
        with node.tracker.lock:
            was_empty = not node.raw
            node.raw.clear()
            list.clear(self)
            node.tracker.write("write", self._key, [])
            if was_empty:
                _left_as_it_was(self._key)

    def sort(self, **kwargs: Any) -> None:
        """Sort in place (an atomic ``update`` of the list)."""
        node = self._node
        with node.tracker.lock:
            node.raw.sort(**kwargs)
            self._sync()
            node.tracker.write("update", self._key, node.raw)

    def reverse(self) -> None:
        """Reverse in place (an atomic ``update`` of the list)."""
        node = self._node
        with node.tracker.lock:
            node.raw.reverse()
            self._sync()
            node.tracker.write("update", self._key, node.raw)


# --- objects ----------------------------------------------------------------------------------

_CLASSES: dict[type, type] = {}  # original class -> its tracked subclass


def _object_class(cls: type) -> type:
    """The tracked subclass of ``cls``: same name, attribute accesses recorded."""
    made = _CLASSES.get(cls)
    if made is not None:
        return made

    def __new__(sub: type, *args: Any, **kwargs: Any) -> Any:
        # Code that builds a new instance from the tracked one's class (dataclasses.replace)
        # gets a plain one: only track() makes wrappers.
        return cls(*args, **kwargs)

    slots: tuple[str, ...] = ("_racefree",)
    if not cls.__weakrefoffset__:
        slots += ("__weakref__",)
    namespace: dict[str, Any] = {
        "__slots__": slots,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__new__": __new__,
        "__getattribute__": _object_getattribute,
        "__setattr__": _object_setattr,
        "__delattr__": _object_delattr,
        "__eq__": _equal,
        "__ne__": lambda self, other: not _equal(self, other),
        "__hash__": None if cls.__hash__ is None else _object_hash,
        "__copy__": _object_copy,
        "__deepcopy__": _deepcopy,
        "__reduce_ex__": _object_reduce_ex,
        # Shown as the original is, without recording: printing is not a read by an agent.
        "__repr__": lambda self: repr(object.__getattribute__(self, "_racefree").raw),
        "__str__": lambda self: str(object.__getattribute__(self, "_racefree").raw),
    }
    try:
        made = type(cls)(cls.__name__, (cls,), namespace)
    except TypeError as exc:
        raise UsageError(
            f"track() cannot follow attribute accesses of {cls.__qualname__} objects ({exc}). "
            "Keep this state in a dict, a dataclass or a pydantic model and track that."
        ) from exc
    _CLASSES[cls] = made
    _WRAPPER_CLASSES.add(made)
    return made


def _make_object(raw: Any, tracker: _Tracker, path: str) -> Any:
    cls = _object_class(type(raw))
    made: Any = object.__new__(cls)
    object.__setattr__(made, "_racefree", _Node(raw, tracker, path))
    tracker.wrappers[id(raw)] = made
    object.__setattr__(made, "__dict__", {})
    _object_sync(made)
    return made


def _object_sync(wrapper: Any) -> None:
    """Make the wrapper's attributes those of the original (nested parts as wrappers)."""
    node: _Node = object.__getattribute__(wrapper, "_racefree")
    mine: dict[str, Any] = object.__getattribute__(wrapper, "__dict__")
    theirs: dict[str, Any] = object.__getattribute__(node.raw, "__dict__")
    for name in [n for n in mine if n not in theirs]:
        del mine[name]
    for name, value in theirs.items():
        held = mine.get(name, _MISSING)
        if held is value or (_is_wrapper(held) and _raw(held) is value):
            continue
        mine[name] = node.tracker.wrap(value, _join(node.path, name))
    # Attributes in __slots__ (pydantic keeps its fields-set and extras there): the same
    # objects as the original's, so that bookkeeping stays one; read without recording.
    for name in _slot_names(type(node.raw)):
        try:
            value = object.__getattribute__(node.raw, name)
        except AttributeError:
            with contextlib.suppress(AttributeError):
                object.__delattr__(wrapper, name)
            continue
        object.__setattr__(wrapper, name, value)


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slot_names(cls: type) -> tuple[str, ...]:
    """The names of ``cls``'s attributes kept in ``__slots__`` (not ``__dict__``)."""
    known = _SLOTS.get(cls)
    if known is not None:
        return known
    names: list[str] = []
    for klass in cls.__mro__:
        declared = klass.__dict__.get("__slots__", ())
        for name in (declared,) if isinstance(declared, str) else declared:
            if name not in ("__dict__", "__weakref__") and name not in names:
                # A private name is stored mangled, as the class body spelled it.
                mangled = (
                    f"_{klass.__name__.lstrip('_')}{name}"
                    if name.startswith("__") and not name.endswith("__")
                    else name
                )
                names.append(mangled)
    _SLOTS[cls] = tuple(names)
    return _SLOTS[cls]


def _object_getattribute(self: Any, name: str) -> Any:
    node: _Node = object.__getattribute__(self, "_racefree")
    if name.startswith("__") or name == "_racefree":
        if name == "__dict__":  # vars(), pydantic's model_dump: the whole object is read
            with node.tracker.lock:
                _read_whole(self, deep=True)
                return object.__getattribute__(self, "__dict__")
        if name in _slot_names(type(node.raw)):  # pydantic's fields-set: the original's
            return object.__getattribute__(node.raw, name)
        return object.__getattribute__(self, name)
    if name not in object.__getattribute__(node.raw, "__dict__"):
        if name in _slot_names(type(node.raw)):
            return object.__getattribute__(node.raw, name)  # a slot: read, not recorded
        if name in object.__getattribute__(self, "__dict__"):
            with node.tracker.lock:
                _object_sync(self)  # deleted from the original directly
        return object.__getattribute__(self, name)  # a method, a property, a class attribute
    with node.tracker.lock:
        value = object.__getattribute__(node.raw, "__dict__").get(name, _MISSING)
        if value is _MISSING:  # deleted meanwhile
            _object_sync(self)
            return object.__getattribute__(self, name)
        wrapped = node.tracker.wrap(value, _join(node.path, name))
        mine = object.__getattribute__(self, "__dict__")
        if mine.get(name, _MISSING) is not wrapped:
            mine[name] = wrapped  # the original was changed directly
        if not _is_wrapper(wrapped):
            node.tracker.read(_join(node.path, name), wrapped)
        return wrapped


def _class_attribute(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return _MISSING


def _object_setattr(self: Any, name: str, value: Any) -> None:
    node: _Node = object.__getattribute__(self, "_racefree")
    attribute = _class_attribute(type(node.raw), name)
    if isinstance(attribute, property):
        attribute.__set__(self, value)  # the setter's own accesses, through the wrapper
        return
    value = _unwrap(value)
    with node.tracker.lock:
        theirs = object.__getattribute__(node.raw, "__dict__")
        if theirs.get(name, _MISSING) is value and _is_container(value):
            return  # ``obj.items += [x]`` rebinds the same list: the extend was recorded
        setattr(node.raw, name, value)  # the class's own rules: validation, frozen, slots
        _object_sync(self)
        # What was stored (pydantic may have converted it, into a new __dict__ even).
        stored = object.__getattribute__(node.raw, "__dict__").get(name, value)
        node.tracker.write("write", _join(node.path, name), stored)


def _object_delattr(self: Any, name: str) -> None:
    node: _Node = object.__getattribute__(self, "_racefree")
    with node.tracker.lock:
        delattr(node.raw, name)
        _object_sync(self)
        node.tracker.write("delete", _join(node.path, name))


def _object_hash(self: Any) -> int:
    return hash(object.__getattribute__(self, "_racefree").raw)


def _object_copy(self: Any) -> Any:
    """A shallow copy of the original object, whose nested parts are still tracked."""
    node: _Node = object.__getattribute__(self, "_racefree")
    with node.tracker.lock:
        _read_whole(self, deep=False)
        copied = _copy.copy(node.raw)
        attributes = getattr(copied, "__dict__", None)
        if isinstance(attributes, dict):
            for name, value in object.__getattribute__(self, "__dict__").items():
                if _is_wrapper(value) and attributes.get(name) is _raw(value):
                    attributes[name] = value
        return copied


def _object_reduce_ex(self: Any, protocol: SupportsIndex) -> Any:
    node: _Node = object.__getattribute__(self, "_racefree")
    with node.tracker.lock:
        _read_whole(self, deep=True)
    # The original, pickled as it would be; unpickling gives a copy of it. Not its own
    # reduce tuple: pickle refuses a __newobj__ of another class than the wrapper's.
    return (_copy.copy, (node.raw,))


# --- the public functions -----------------------------------------------------------------


def track(obj: Any, *, history: History | None = None, name: str | None = None) -> Any:
    """Wrap a dict, list or object so that reads and writes through the wrapper are recorded.

    ``obj`` is a dict, a list, a dataclass instance, a pydantic (v2) model
    or an instance of a plain class with a ``__dict__``. ``history``
    receives the events (a new :class:`History` when ``None``; get it back
    with :func:`history_of`). ``name`` starts every key
    (``"session.metadata.completed"``); give one when you track several
    objects into one history. Returns a ``dict`` / ``list`` subclass or an
    instance of a subclass of ``obj``'s class: hand it to your agents in
    place of ``obj``, which it reads and changes.
    """
    if _is_wrapper(obj):
        if history is not None and history is not _node(obj).tracker.history:
            raise UsageError(
                "This object is already tracked into another history. Track the original "
                "object again, or use history_of(obj) to get its history."
            )
        return obj
    if name is not None and (not isinstance(name, str) or not name or "." in name):
        raise UsageError(
            f"track() needs name= to be a non-empty string without dots, not {name!r}."
        )
    kind = type(obj)
    trackable = kind is dict or kind is list or _is_model(obj) or _is_plain_object(obj)
    if not trackable:
        raise UsageError(
            f"track() wraps a dict, a list or an object with attributes, not "
            f"{kind.__name__}{_why_not(obj)}. Keep your shared state in a dict, a list, a "
            "dataclass or a pydantic model and track that."
        )
    tracker = _Tracker(history if history is not None else History())
    if kind is dict or kind is list:
        return tracker.wrap(obj, name or "")
    return _make_object(obj, tracker, name or "")


def _is_plain_object(obj: Any) -> bool:
    """An instance of a class defined in Python, with a ``__dict__`` to hold its state."""
    cls = type(obj)
    if isinstance(obj, (type, dict, list, tuple, set, frozenset, str, bytes, int, float)):
        return False
    return bool(cls.__flags__ & (1 << 9)) and hasattr(obj, "__dict__")  # Py_TPFLAGS_HEAPTYPE


def _why_not(obj: Any) -> str:
    if isinstance(obj, (dict, list)):
        return f" (a {type(obj).__mro__[1].__name__} subclass: convert it first)"
    if (
        not isinstance(obj, type)
        and not hasattr(obj, "__dict__")
        and type(obj).__flags__ & (1 << 9)
    ):
        return " (its class has __slots__ and no __dict__)"
    return ""


def history_of(tracked: Any) -> History:
    """The history that a wrapper made by :func:`track` records into."""
    if not _is_wrapper(tracked):
        raise UsageError(
            f"history_of() takes an object returned by track(), not {type(tracked).__name__}."
        )
    return _node(tracked).tracker.history


def suspension(where: Any, what: str = "call") -> Event:
    """Record that the current agent lets others run now (a model or tool call, a sleep).

    ``where`` is a tracked object or a :class:`History`. The checker's race
    windows need these: a read and a later overwrite of one key with a
    suspension in between. Call it just before the slow step::

        racefree.suspension(shared, "llm")
        reply = await model(prompt)
    """
    history = where if isinstance(where, History) else history_of(where)
    if _is_wrapper(where):
        with _node(where).tracker.lock:
            return history.record("call", value=what)
    return history.record("call", value=what)
