"""Keys and values: what a store accepts, checked once, with no I/O.

Values are JSON: ``dict`` with ``str`` keys, ``list`` (a ``tuple`` is
accepted and stored as a list), ``str``, ``int``, finite ``float``, ``bool``
and ``None``. :func:`to_json` checks a value and returns the store's own copy
in one walk over the types (no ``json.dumps`` on the common path), so a later
change to the caller's object never reaches the store. :func:`copy_json`
copies an already checked value on its way out, so a value read never
aliases stored state. Nothing is ever pickled.
"""

from __future__ import annotations

import math
from typing import Any

from racefree.errors import InvalidKeyError, NotSerializableError

__all__ = ["MAX_KEY_LENGTH", "check_key", "copy_json", "json_kind", "to_json"]

MAX_KEY_LENGTH = 256

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
    if t is str or t is int or t is bool or value is None:
        return value
    try:
        if t is dict:  # the common case (a message), without one more call
            out: dict[str, Any] = {}
            for k, item in value.items():
                if type(k) is not str:
                    raise _NotJson
                ti = type(item)
                if ti is str or ti is int or ti is bool or item is None:
                    out[k] = item
                else:
                    out[k] = _walk(item)
            return out
        return _walk(value)
    except (_NotJson, RecursionError):
        raise _explain(value) from None


def _walk(value: Any) -> Any:
    t = type(value)
    if t is dict:
        out: dict[str, Any] = {}
        for k, item in value.items():
            if type(k) is not str:
                raise _NotJson
            ti = type(item)
            if ti is str or ti is int or ti is bool or item is None:
                out[k] = item
            else:
                out[k] = _walk(item)
        return out
    if t is list or t is tuple:
        return [
            item
            if (type(item) is str or type(item) is int or type(item) is bool or item is None)
            else _walk(item)
            for item in value
        ]
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if not math.isfinite(value):
            raise _NotJson
        return value
    # Subclasses of the JSON types (IntEnum, a str subclass, OrderedDict...):
    # store the plain value, as json.dumps would write it.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJson
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, dict):
        return _walk(dict(value))
    if isinstance(value, (list, tuple)):
        return _walk(list(value))
    raise _NotJson


def _explain(value: Any) -> NotSerializableError:
    """Build the error for a value that failed the fast walk (slow path only)."""
    where, why = _find(value, "value", set())
    why = why or "is not JSON"
    return NotSerializableError(
        f"{where} {why}, which cannot be stored as JSON. Convert it first "
        "(for example str() for a datetime, dataclasses.asdict() for a dataclass); "
        "nothing was written."
    )


def _find(value: Any, path: str, seen: set[int]) -> tuple[str, str]:
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"is the float {value!r}"
    if isinstance(value, (dict, list, tuple)):
        if id(value) in seen:
            return path, "contains itself"
        if len(seen) > 500:
            return path, "is nested more than 500 levels deep"
        seen = seen | {id(value)}
        if isinstance(value, dict):
            for k, item in value.items():
                if not isinstance(k, str):
                    return path, f"has the key {k!r}, a {type(k).__name__} rather than a str"
                found = _find(item, f"{path}[{k!r}]", seen)
                if found[1]:
                    return found
        else:
            for i, item in enumerate(value):
                found = _find(item, f"{path}[{i}]", seen)
                if found[1]:
                    return found
        return path, ""
    if value is None or isinstance(value, (str, int, float)):
        return path, ""
    return path, f"is a {type(value).__name__}"


def copy_json(value: Any) -> Any:
    """Deep-copy a value that already passed :func:`to_json` (tuples become lists)."""
    t = type(value)
    if t is list or t is tuple:
        return [
            item if (type(item) is not list and type(item) is not dict) else copy_json(item)
            for item in value
        ]
    if t is dict:
        return {
            k: item if (type(item) is not list and type(item) is not dict) else copy_json(item)
            for k, item in value.items()
        }
    return value


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
