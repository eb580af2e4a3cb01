"""Locks made before the exploration: the explorer's own while it runs.

A lock that user code makes at import (``LOCK = threading.Lock()`` at module
level, a lock as a default argument or class attribute, the lock of a
module-level object's ``__init__``) is a real OS lock, made before any
exploration patched ``threading``. An agent parked at a scheduling point while
it holds such a lock leaves every other agent that wants it blocked in C,
where no scheduler can see or wake it: the run stalls until the watchdog ends
it, a false "blocked" on code that is correct.

So at the start of an exploration the explorer looks where user code keeps
its locks and puts a virtual lock (:class:`VLock`, a real lock to every thread
outside the runs) in the place of each free one, and puts the originals back
at the end. Aliases stay aliases (one virtual lock per original), and a
``Condition``, ``Event``, ``Semaphore`` or ``queue.Queue`` found there gets
virtual locks inside.

Where it looks, in every module of user code (not the standard library,
installed packages or racefree): the module's globals; the defaults and
closures of its functions; the attributes of its classes (and their methods'
defaults and closures); and one level down, the attributes of module-level
objects and the values of module-level dicts, lists and tuples. A lock held
at the start is left alone (someone holds it: taking it from them is not the
explorer's to do), as are locks kept deeper, which the watchdog still
catches.
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import os
import queue
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from types import FunctionType, ModuleType
from typing import Any

from racefree.explore._scheduler import VLock, is_library

__all__ = ["Adopted", "adopt", "adopted"]

_LOCK = _thread.LockType
_RLOCK = type(threading.RLock())
_RACEFREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# What a Condition keeps of its lock: the lock and its bound methods.
_CONDITION_PARTS = ("_lock", "acquire", "release", "_release_save", "_acquire_restore", "_is_owned")


class _BeforeRuns:
    """Stands for "no run yet" in an adopted lock: its first use in a run rebinds it."""

    locks = 0
    outside = 0
    over = True
    aborting = False

    def lock_name(self, site: str) -> str:
        """Adopted locks are named in the order they were found, before any run."""
        self.locks += 1
        return f"a{self.locks}"


class _Place:
    """One place that holds a lock, and how to put another value there."""

    __slots__ = ("lock", "put")

    def __init__(self, lock: Any, put: Callable[[Any], None]) -> None:
        self.lock = lock
        self.put = put


class Adopted:
    """The swaps made by :func:`adopt`; :meth:`restore` undoes each one it can.

    A lock is adopted only when every reference to it is one the explorer can
    swap: a lock also referred to from anywhere else (a frame of a running
    thread, a bound ``acquire`` kept in a variable, a structure deeper than the
    places looked at) stays real, because agents taking the virtual lock while
    that code takes the real one would no longer exclude each other.
    """

    def __init__(self) -> None:
        self._places: dict[tuple[int, Any], _Place] = {}  # by (holder, key): each once
        self._conditions: list[tuple[threading.Condition, Any]] = []
        self._queues: list[tuple[queue.Queue[Any], Any]] = []
        self._seen: set[int] = set()
        self._undo: list[Callable[[], bool]] = []
        self.count = 0

    # --- where user code keeps locks ----------------------------------------------------

    def _value(self, value: Any, holder: Any, key: Any, put: Callable[[Any], None]) -> None:
        kind = type(value)
        if kind is _LOCK or kind is _RLOCK:
            self._places.setdefault((id(holder), key), _Place(value, put))
        elif isinstance(value, threading.Condition):
            self._condition(value)
        elif isinstance(value, (threading.Event, threading.Semaphore)):
            self._condition(value._cond)  # type: ignore[union-attr]
        elif (
            isinstance(value, queue.Queue)
            and id(value) not in self._seen
            and type(value.mutex) is _LOCK
        ):
            self._seen.add(id(value))
            self._queues.append((value, value.mutex))
            for cond in (value.not_empty, value.not_full, value.all_tasks_done):
                self._condition(cond)

    def _condition(self, cond: threading.Condition) -> None:
        lock = cond._lock  # type: ignore[attr-defined]
        if id(cond) in self._seen or type(lock) not in (_LOCK, _RLOCK):
            return  # already virtual, or a lock of the user's own kind
        self._seen.add(id(cond))
        self._conditions.append((cond, lock))

    def _function(self, fn: FunctionType) -> None:
        if id(fn) in self._seen:
            return
        self._seen.add(id(fn))
        defaults = fn.__defaults__
        if defaults:
            for i, value in enumerate(defaults):
                self._value(value, defaults, i, _default_setter(fn, i))
        kwdefaults = fn.__kwdefaults__
        if kwdefaults:
            for name, value in list(kwdefaults.items()):
                self._value(value, kwdefaults, name, _item_setter(kwdefaults, name))
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self._value(value, cell, None, _cell_setter(cell))

    def _class(self, cls: type) -> None:
        if id(cls) in self._seen:
            return
        self._seen.add(id(cls))
        # The class's own dict (behind its mappingproxy) is what refers to its attributes.
        found = [d for d in gc.get_referents(vars(cls)) if type(d) is dict]
        namespace: Any = found[0] if found else cls
        for name, value in list(vars(cls).items()):
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, FunctionType):
                self._function(value)
            else:
                self._value(value, namespace, name, _attr_setter(cls, name))

    def _object(self, obj: Any) -> None:
        """A module-level object: its attributes (one level), or a container's values."""
        if id(obj) in self._seen:
            return
        self._seen.add(id(obj))
        if type(obj) is dict:
            for key, value in list(obj.items()):
                self._value(value, obj, key, _item_setter(obj, key))
        elif type(obj) is list:
            for i, value in enumerate(obj):
                self._value(value, obj, i, _item_setter(obj, i))
        elif _is_user_type(type(obj)):
            attrs = getattr(obj, "__dict__", None)
            if type(attrs) is dict:
                for name, value in list(attrs.items()):
                    self._value(value, attrs, name, _item_setter(attrs, name))

    def module(self, module: ModuleType) -> None:
        name = module.__name__
        namespace = vars(module)
        for key, value in list(namespace.items()):
            if isinstance(value, FunctionType):
                if value.__module__ == name:
                    self._function(value)
            elif isinstance(value, type):
                if value.__module__ == name:
                    self._class(value)
            elif not isinstance(value, ModuleType):
                self._value(value, namespace, key, _item_setter(namespace, key))
                self._object(value)

    # --- the swap -----------------------------------------------------------------------

    def _swappable(self) -> set[int]:
        """The ids of the found locks that are free and referred to only from the places
        found (and the primitives built on them)."""
        # Counted references must not include this frame's own: no local here refers to a
        # lock while they are counted (a loop variable left over would be one).
        locks = self._found()
        bad = self._referred_elsewhere(locks)
        if bad:
            # A finished frame caught in a reference cycle (an exception kept with its
            # traceback) still refers to what its locals held until the collector frees
            # it: collect, then count again; but only when the count has moved since the
            # last collection that did not help (a collection can take a while).
            stale = [key for key in bad if _STILL_REFERRED.get(locks[key]) != _count(locks, key)]
            if stale:
                gc.collect()
                bad = self._referred_elsewhere(locks)
                for key in bad:
                    _STILL_REFERRED[locks[key]] = _count(locks, key)
        # A lock someone waits on through a Condition is left alone: the waiter takes the
        # real lock back when woken.
        for cond, lock in self._conditions:
            if cond._waiters:  # type: ignore[attr-defined]
                bad.add(id(lock))
        free = set()
        for key, lock in locks.items():
            held = lock.locked() if type(lock) is _LOCK else _rlock_held(lock)
            if key not in bad and not held:
                free.add(key)
        return free

    def _found(self) -> dict[int, Any]:
        """Every lock found, by id."""
        locks: dict[int, Any] = {}
        for place in self._places.values():
            locks[id(place.lock)] = place.lock
        for _cond, lock in self._conditions:
            locks[id(lock)] = lock
        for _q, mutex in self._queues:
            locks[id(mutex)] = mutex
        return locks

    def _expected(self, locks: dict[int, Any]) -> tuple[dict[int, int], set[int]]:
        """The references to each lock that the places found and this module's records
        hold; and the locks a bound method of which is kept elsewhere too."""
        expected = dict.fromkeys(locks, 0)
        for place in self._places.values():
            expected[id(place.lock)] += 2  # the place, and its record here
        bad: set[int] = set()
        for cond, lock in self._conditions:
            expected[id(lock)] += 2  # the Condition's _lock, and the record here
            attrs = cond.__dict__
            for part in _CONDITION_PARTS[1:]:
                if getattr(attrs.get(part), "__self__", None) is lock:
                    expected[id(lock)] += 1
                    if _count(attrs, part) != _ALONE:
                        bad.add(id(lock))
        for _q, mutex in self._queues:
            expected[id(mutex)] += 2  # the queue's mutex, and the record here
        return expected, bad

    def _referred_elsewhere(self, locks: dict[int, Any]) -> set[int]:
        """The ids of the locks that something other than the known places refers to.

        By reference counts, which cost nothing (a scan of every object for its
        referrers took hundreds of milliseconds per exploration in a large process):
        each place and each record of this module holds one reference, and a
        Condition holds its lock and bound methods of it; any reference beyond those
        is someone else's. A bound method of the lock kept elsewhere (``ACQUIRE =
        COND.acquire``) is someone else's too.
        """
        expected, bad = self._expected(locks)
        for key in locks:
            # _ALONE counts the dict it is kept in: ``locks`` here
            if _count(locks, key) - _ALONE != expected[key]:
                bad.add(key)
        return bad

    def swap(self) -> None:
        free = self._swappable()
        virtual: dict[int, VLock] = {}

        before = _BeforeRuns()

        def stand_in(lock: Any) -> VLock:
            made = virtual.get(id(lock))
            if made is None:
                made = virtual[id(lock)] = VLock(
                    before,  # type: ignore[arg-type]
                    reentrant=type(lock) is _RLOCK,
                )
            return made

        queues_ok = {
            id(q)
            for q, mutex in self._queues
            if id(mutex) in free
            and not any(c._waiters for c in (q.not_empty, q.not_full, q.all_tasks_done))  # type: ignore[attr-defined]
        }
        for q, mutex in self._queues:
            if id(q) not in queues_ok:
                free.discard(id(mutex))  # its conditions keep the real mutex too
        for place in self._places.values():
            if id(place.lock) in free:
                made = stand_in(place.lock)
                place.put(made)
                self._undo.append(_undo_place(place, made))
        for cond, lock in self._conditions:
            if id(lock) in free and not cond._waiters:  # type: ignore[attr-defined]
                self._undo.append(_swap_condition(cond, stand_in(lock)))
        for q, mutex in self._queues:
            if id(q) in queues_ok:
                made = stand_in(mutex)
                q.mutex = made  # type: ignore[assignment]
                self._undo.append(_undo_queue(q, mutex, made))
        self.count = len(virtual)
        self._places.clear()
        self._conditions.clear()
        self._queues.clear()
        self._seen.clear()

    def restore(self) -> int:
        """Put the originals back where their virtual locks are free; the number left."""
        left = sum(1 for undo in reversed(self._undo) if not undo())
        self._undo.clear()
        return left


def _count(container: Any, key: Any) -> int:
    """The references to ``container[key]``, counted the same way every time."""
    return sys.getrefcount(container[key])


# What _count says of an object kept in one dict and nowhere else: one reference, plus
# whatever counting itself holds (which differs between Python versions).
_ALONE = _count({0: object()}, 0)
# Locks that a collection did not free from other references, with the count then.
_STILL_REFERRED: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _held(made: VLock) -> bool:
    return made._owner is not None or made._real.locked()


def _undo_place(place: _Place, made: VLock) -> Callable[[], bool]:
    original = place.lock

    def undo() -> bool:
        if _held(made):
            return False  # held now: it stays, a real lock outside the runs
        place.put(original)
        return True

    return undo


def _swap_condition(cond: threading.Condition, made: VLock) -> Callable[[], bool]:
    attrs = cond.__dict__
    saved = {name: attrs[name] for name in _CONDITION_PARTS if name in attrs}
    fresh = threading.Condition(made)  # type: ignore[arg-type]
    for name in _CONDITION_PARTS:
        attrs.pop(name, None)
        if name in fresh.__dict__:
            attrs[name] = fresh.__dict__[name]

    def undo() -> bool:
        if _held(made) or cond._waiters:  # type: ignore[attr-defined]
            return False
        for name in _CONDITION_PARTS:
            attrs.pop(name, None)
        attrs.update(saved)
        return True

    return undo


def _undo_queue(q: queue.Queue[Any], original: Any, made: VLock) -> Callable[[], bool]:
    def undo() -> bool:
        if _held(made):
            return False
        q.mutex = original
        return True

    return undo


def _rlock_held(lock: Any) -> bool:
    # An RLock has no locked() before Python 3.14: a non-blocking try tells (and a hold
    # of this very thread counts: the caller of explore() may hold it).
    if lock._is_owned():
        return True
    if lock.acquire(False):
        lock.release()
        return False
    return True


def _is_user_type(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    return module is not None and _is_user_module(module)


def _is_user_module(module: ModuleType) -> bool:
    # from its dict: a module's __getattr__ (a lazy package) would be slow or import
    filename = vars(module).get("__file__")
    if not isinstance(filename, str):
        return False
    known = _USER_FILES.get(filename)
    if known is None:
        # by file, once: a large process has thousands of modules, and every exploration
        # looks at each
        path = os.path.abspath(filename)
        known = _USER_FILES[filename] = not is_library(path) and not path.startswith(_RACEFREE)
    return known


_USER_FILES: dict[str, bool] = {}


def _user_modules() -> Iterator[ModuleType]:
    for module in list(sys.modules.values()):
        if isinstance(module, ModuleType) and _is_user_module(module):
            yield module


def _item_setter(container: Any, key: Any) -> Callable[[Any], None]:
    def put(value: Any) -> None:
        container[key] = value

    return put


def _attr_setter(owner: Any, name: str) -> Callable[[Any], None]:
    def put(value: Any) -> None:
        setattr(owner, name, value)

    return put


def _cell_setter(cell: Any) -> Callable[[Any], None]:
    def put(value: Any) -> None:
        cell.cell_contents = value

    return put


def _default_setter(fn: FunctionType, index: int) -> Callable[[Any], None]:
    def put(value: Any) -> None:
        defaults = list(fn.__defaults__ or ())
        defaults[index] = value
        fn.__defaults__ = tuple(defaults)

    return put


@contextlib.contextmanager
def adopted() -> Iterator[Adopted]:
    """For one exploration: virtual locks in place of the free ones made before it."""
    swap = adopt()
    try:
        yield swap
    finally:
        swap.restore()


def adopt() -> Adopted:
    """Swap virtual locks in for the free locks user code made before the exploration."""
    adopted = Adopted()
    for module in _user_modules():
        adopted.module(module)
    adopted.swap()
    return adopted
