"""Helpers the engine backends (SQLite, Redis) share: JSON text, guards, fair waits.

Values cross an engine boundary as JSON text, never pickle: ``dumps`` writes
the compact form (the store already checked that the value is JSON), and
``loads_list`` rebuilds a list from its items' texts in one parse.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from racefree.errors import UsageError
from racefree.state._core import Op
from racefree.state._values import on_fresh_stack

__all__ = [
    "FairSemaphore",
    "dumps",
    "loads",
    "loads_list",
    "loads_record",
    "query_options",
    "record_text",
    "reentrant_call_error",
]

_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
).encode

_decode = json.loads


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")  # the store checked every value


# json's C encoder and scanner called directly: json.dumps and json.loads
# spend as long again in Python around them (about 1 us of 2 per value).
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_chunks = (
    _c_encoder(None, _refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    if _c_encoder is not None
    else None
)
_scan: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


_encode_ascii = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), check_circular=False
).encode


def dumps(value: Any) -> str:
    """The compact JSON text of an already checked value, always valid UTF-8.

    A lone surrogate (``"\\ud800"``, no Unicode character) cannot be encoded
    as UTF-8 by the engine's driver: text holding one is written with
    ``\\uXXXX`` escapes instead (valid JSON, read back as the same string).
    """
    try:
        text: str = "".join(_encode_chunks(value, 0)) if _encode_chunks else _encode(value)
    except RecursionError:  # called from deep in the caller's stack
        text = on_fresh_stack(_encode, value)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _encode_ascii(value)
    return text


def loads(text: str | bytes) -> Any:
    """The value of a JSON text that :func:`dumps` wrote."""
    if type(text) is bytes:
        text = text.decode()
    try:
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except RecursionError:  # called from deep in the caller's stack
        return on_fresh_stack(_decode, text)
    except StopIteration:
        pass
    return _decode(text)  # not the compact text dumps writes: json's own parse, or its error


def loads_list(items: list[Any]) -> list[Any]:
    """A list from the JSON texts (``str`` or ``bytes``) of its items."""
    if not items:
        return []
    texts = [item.decode() if isinstance(item, bytes) else item for item in items]
    result: list[Any] = loads("[" + ",".join(texts) + "]")
    return result


def record_text(op: Op, result: Any) -> str:
    """The idempotency record of ``op`` (name, keys, result) as JSON text."""
    return dumps([op.name, list(op.keys) if op.keys is not None else None, result])


def loads_record(text: str | bytes) -> tuple[str, tuple[str, ...] | None, Any]:
    """The ``(name, keys, result)`` record that :func:`record_text` wrote."""
    name, keys, result = loads(text)
    return name, tuple(keys) if keys is not None else None, result


def reentrant_call_error(op: Op) -> UsageError:
    """The error for a store call made from inside an update function or reducer."""
    return UsageError(
        f"The store was called ({op.name}) from inside a function the store is "
        "running (an update function or a custom reducer). Such a function must "
        "only compute the new value from the one it is given; do other store "
        "calls before or after."
    )


def query_options(url: str, known: dict[str, type], shown: str) -> dict[str, Any]:
    """The ``?name=value`` options of ``url`` that racefree reads, converted.

    An unknown option or a value of the wrong type raises ``UsageError``
    naming ``shown`` (the URL without its password).
    """
    options: dict[str, Any] = {}
    for name, raw in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        kind = known.get(name)
        if kind is None:
            choices = f"Known options: {', '.join(sorted(known))}; " if known else "It takes none; "
            raise UsageError(
                f"The store URL {shown!r} has the unknown option {name!r}. {choices}"
                "remove it or fix its spelling."
            )
        try:
            options[name] = kind(raw)
        except ValueError:
            raise UsageError(
                f"The option {name}={raw!r} in the store URL {shown!r} is not a valid "
                f"{kind.__name__}. Give a {kind.__name__}."
            ) from None
    return options


def wait_to_be_handed(
    turn: threading.Lock, line: deque[threading.Lock], mutex: threading.Lock, timeout: float
) -> bool:
    """Wait for a releasing thread to release ``turn`` (our place in ``line``, which
    ``mutex`` guards); on time-out, leave the line. False if the wait timed out."""
    if turn.acquire(timeout=timeout):
        return True  # a releasing thread handed its place over
    with mutex:
        if turn in line:
            line.remove(turn)
            return False
    return True  # handed over just as the wait ran out: ours now


class FairSemaphore:
    """``permits`` places handed to waiting threads in the order they came.

    ``threading.Lock`` and redis-py's blocking pool let a thread that just
    gave a place back take it again at once, ahead of threads that have been
    waiting; under a thousand threads some then wait far longer than the
    rest and time out while the others progress. Here a release hands the
    place straight to the longest waiter, so every wait is about the same.
    """

    def __init__(self, permits: int) -> None:
        self._mutex = threading.Lock()
        self._free = permits
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float) -> bool:
        """Take a place, waiting in line at most ``timeout`` seconds; False if it timed out."""
        with self._mutex:
            if self._free:  # a free place means nobody waits: release hands places over
                self._free -= 1
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        return wait_to_be_handed(turn, self._waiters, self._mutex, timeout)

    def idle(self) -> bool:
        """True when a place is free and nobody waits (a hint: it may change at once)."""
        return bool(self._free) and not self._waiters

    def release(self) -> None:
        """Hand the place to the longest waiter, or free it."""
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1
