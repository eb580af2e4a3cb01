"""Keys and values: what a store accepts, checked once, with no I/O.

Values are JSON: ``dict`` with ``str`` keys, ``list`` (a ``tuple`` is
accepted and stored as a list), ``str``, ``int``, finite ``float``, ``bool``
and ``None``, nested at most :data:`MAX_DEPTH` levels. Every backend must
be able to write a value as JSON text and read it back, so the same limits
hold on all of them: an ``int`` has at most :data:`MAX_INT_DIGITS` digits
(Python's own limit for turning an int into text). A string may hold a lone
surrogate (``"\\ud800"``): the engines write it as a JSON escape. The
depth limit does not depend on how deep the caller's own stack is: a value
that the quick recursive walk cannot finish is walked again without
recursion.

:func:`to_json` checks a value and returns the store's own copy in one walk
over the types (no ``json.dumps`` on the common path), so a later
change to the caller's object never reaches the store. :func:`copy_json`
copies an already checked value on its way out, so a value read never
aliases stored state. Nothing is ever pickled.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from racefree.errors import InvalidKeyError, NotSerializableError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_KEY_LENGTH",
    "check_key",
    "check_number",
    "copy_json",
    "json_kind",
    "on_fresh_stack",
    "to_json",
]

MAX_KEY_LENGTH = 256

MAX_DEPTH = 100
"""How many levels of lists and dicts a value may nest (a flat list is 1)."""

MAX_INT_DIGITS = 4300
"""The most digits an ``int`` may have: Python's default int-to-text limit."""

# An int is storable when _INT_LOW < value < _INT_HIGH (both computed once: a
# comparison with them looks at the sizes first, so it costs next to nothing).
_INT_HIGH = 10**MAX_INT_DIGITS
_INT_LOW = -_INT_HIGH

# Keys that passed check_key; a set lookup is the whole cost for a known key.
# Bounded so that a workload with endless distinct keys cannot grow it forever.
_known_keys: set[str] = set()
_KNOWN_KEYS_LIMIT = 65_536


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid store key, else raise ``InvalidKeyError``."""
    try:
        if key in _known_keys:
            return key
    except TypeError:  # unhashable: certainly not a str
        pass
    if not isinstance(key, str):
        raise InvalidKeyError(
            f"The key {key!r} is a {type(key).__name__}, not a str. "
            "Name keys with strings such as 'conversation_history'."
        )
    if not key:
        raise InvalidKeyError(
            "The key is an empty string. Name keys with non-empty strings such as "
            "'conversation_history'."
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"The key {key[:40]!r}... is {len(key)} characters long, more than the "
            f"{MAX_KEY_LENGTH} every backend accepts. Use a shorter name."
        )
    if not key.isprintable():
        bad = next(ch for ch in key if not ch.isprintable())
        raise InvalidKeyError(
            f"The key {key!r} contains the unprintable character {bad!r}. "
            "Use printable characters only."
        )
    if type(key) is not str:  # a str subclass: store the plain str
        key = str.__str__(key)
    if len(_known_keys) >= _KNOWN_KEYS_LIMIT:
        _known_keys.clear()
    _known_keys.add(key)
    return key


class _NotJson(Exception):
    """Internal: raised by the fast walk; the slow walk then finds the path."""


def to_json(value: Any) -> Any:
    """Check that ``value`` is JSON and return the store's own deep copy of it.

    Raises ``NotSerializableError`` naming the first offending place, such as
    ``value['messages'][2]['when']``.
    """
    t = type(value)
    if t is str or (t is int and _INT_LOW < value < _INT_HIGH) or t is bool or value is None:
        return value
    try:
        if t is dict:  # the common case (a message), without one more call
            # Copy in C first, then check the copy and replace its containers
            # by checked copies: a flat message costs one pass of type tests.
            out: dict[str, Any] = value.copy()
            for k, item in out.items():
                ti = type(item)
                if type(k) is str and (
                    ti is str
                    or (ti is int and _INT_LOW < item < _INT_HIGH)
                    or ti is bool
                    or item is None
                ):
                    continue
                if type(k) is not str:
                    raise _NotJson
                out[k] = _walk(item, MAX_DEPTH - 1)
            return out
        return _walk(value, MAX_DEPTH)
    except _NotJson:
        pass
    except RecursionError:
        # The caller's stack is deep: check again without recursion, so that
        # what is accepted does not depend on where the call came from.
        try:
            return _walk_flat(value)
        except _NotJson:
            pass
    raise _explain(value) from None


def _leaf(value: Any) -> Any:
    """The stored form of a value that is no list or dict; raises ``_NotJson``."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if _INT_LOW < value < _INT_HIGH:
            return value
        raise _NotJson
    if t is float:
        if not math.isfinite(value):
            raise _NotJson
        return value
    # Subclasses of the JSON types (IntEnum, a str subclass, OrderedDict...):
    # store the plain value, as json.dumps would write it.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _leaf(int.__index__(value))
    if isinstance(value, float):
        return _leaf(float(value))
    if isinstance(value, str):
        return _leaf(str.__str__(value))
    raise _NotJson


def _walk(value: Any, depth: int) -> Any:
    t = type(value)
    if t is dict or t is list or t is tuple:
        if depth == 0:
            raise _NotJson
        depth -= 1
        if t is dict:
            out: dict[str, Any] = value.copy()
            for k, item in out.items():
                ti = type(item)
                if type(k) is str and (
                    ti is str
                    or ti is bool
                    or item is None
                    or (ti is int and _INT_LOW < item < _INT_HIGH)
                ):
                    continue
                if type(k) is not str:
                    raise _NotJson
                out[k] = _walk(item, depth)
            return out
        return [
            item
            if (
                type(item) is str
                or type(item) is bool
                or item is None
                or (type(item) is int and _INT_LOW < item < _INT_HIGH)
            )
            else _walk(item, depth)
            for item in value
        ]
    if isinstance(value, dict):
        return _walk(dict(value), depth)
    if isinstance(value, (list, tuple)):
        return _walk(list(value), depth)
    return _leaf(value)


def _walk_flat(value: Any) -> Any:
    """What :func:`_walk` returns, with an explicit stack instead of recursion."""
    root: list[Any] = [None]
    # Each entry: (the container to fill, its index or key, the value to store there, depth).
    stack: list[tuple[Any, Any, Any, int]] = [(root, 0, value, MAX_DEPTH)]
    while stack:
        parent, slot, item, depth = stack.pop()
        if isinstance(item, dict):
            if depth == 0:
                raise _NotJson
            out: dict[str, Any] = {}
            parent[slot] = out
            for k, sub in item.items():
                if not isinstance(k, str):
                    raise _NotJson
                out[str.__str__(k)] = None
                stack.append((out, str.__str__(k), sub, depth - 1))
        elif isinstance(item, (list, tuple)):
            if depth == 0:
                raise _NotJson
            copy: list[Any] = [None] * len(item)
            parent[slot] = copy
            stack.extend((copy, i, sub, depth - 1) for i, sub in enumerate(item))
        else:
            parent[slot] = _leaf(item)
    return root[0]


def _explain(value: Any) -> NotSerializableError:
    """Build the error for a value that failed the fast walk (slow path only)."""
    where, why = _find(value, "value")
    why = why or "is not JSON"
    return NotSerializableError(
        f"{where} {why}, which cannot be stored as JSON. Convert it first "
        "(for example str() for a datetime, dataclasses.asdict() for a dataclass); "
        "nothing was written."
    )


def _find(value: Any, path: str) -> tuple[str, str]:
    """The first place in ``value`` that is not storable, and why (without recursion)."""
    stack: list[tuple[Any, str, tuple[int, ...]]] = [(value, path, ())]
    while stack:
        item, where, parents = stack.pop()
        why = _why_not(item)
        if why:
            return where, why
        if isinstance(item, (dict, list, tuple)):
            if id(item) in parents:
                return where, "contains itself"
            if len(parents) >= MAX_DEPTH:
                return where, f"is nested more than {MAX_DEPTH} levels deep"
            inner = (*parents, id(item))
            if isinstance(item, dict):
                for k in item:
                    if not isinstance(k, str):
                        return where, f"has the key {k!r}, a {type(k).__name__} rather than a str"
                children = [(sub, f"{where}[{k!r}]", inner) for k, sub in item.items()]
            else:
                children = [(sub, f"{where}[{i}]", inner) for i, sub in enumerate(item)]
            stack.extend(reversed(children))  # depth first, in order: the first bad place
    return path, ""


def _why_not(value: Any) -> str:
    """Why a value that is no list or dict cannot be stored ('' when it can)."""
    if isinstance(value, (dict, list, tuple)) or value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float):
        return "" if math.isfinite(value) else f"is the float {value!r}"
    if isinstance(value, int):
        if _INT_LOW < value < _INT_HIGH:
            return ""
        return f"is an int of more than {MAX_INT_DIGITS} digits"
    if isinstance(value, str):
        return ""
    return f"is a {type(value).__name__}"


def check_number(value: Any) -> bool:
    """True when a number (the result of an increment, say) can be stored."""
    if type(value) is float:
        return math.isfinite(value)
    return bool(_INT_LOW < value < _INT_HIGH)


def copy_json(value: Any) -> Any:
    """Deep-copy a value that already passed :func:`to_json` (tuples become lists)."""
    t = type(value)
    if t is dict:  # the common case (a message), without one more call
        out = value.copy()
        try:
            for k, item in out.items():
                if type(item) is list or type(item) is dict:
                    out[k] = _copy(item)
        except RecursionError:
            return on_fresh_stack(_copy, value)
        return out
    if t is not list and t is not tuple:
        return value
    try:
        return _copy(value)
    except RecursionError:
        return on_fresh_stack(_copy, value)


def _copy(value: Any) -> Any:
    # A shallow copy in C, then a deeper copy only of the items that are
    # containers: a flat message costs one C call and one pass of type checks.
    if type(value) is dict:
        out = value.copy()
        for k, item in out.items():
            if type(item) is list or type(item) is dict:
                out[k] = _copy(item)
        return out
    return [
        item if (type(item) is not list and type(item) is not dict) else _copy(item)
        for item in value
    ]


def on_fresh_stack(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a new thread, whose stack starts empty.

    For the rare call that needs up to :data:`MAX_DEPTH` levels of recursion
    (a copy, ``json.dumps``) but comes from deep inside the caller's own
    stack: the store then behaves the same wherever it is called from.
    """
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as exc:  # handed back to the caller's thread
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="racefree-fresh-stack")
    worker.start()
    worker.join()
    ok, result = outcome[0]
    if not ok:
        raise result
    return result


def json_kind(value: Any) -> str:
    """A stored value's kind in words, with its article: 'a list', 'a number'..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a dict"
    return f"a {type(value).__name__}"
