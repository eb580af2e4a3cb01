"""Record real model and tool calls once; replay them offline, in virtual time.

A :class:`Cassette` wraps the functions through which a workflow reaches the
outside world (a model client call, a tool)::

    cassette = racefree.Cassette("tests/cassettes/agents.json")  # mode="auto"

    @cassette.wrap(name="llm")
    async def ask(prompt: str) -> str:
        reply = await client.responses.create(model="...", input=prompt)
        return reply.output_text

The first run calls the real function and records, for each request, the
response and how long it took. Later runs, and every run of
``racefree.explore``, get the recorded response after waiting the recorded
latency with ``time.sleep`` / ``asyncio.sleep``: inside an exploration that
wait is virtual (no wall time) and a scheduling point, so the explorer can
make any call answer first.

**Modes.** ``"record"`` calls the real function for every call and keeps only
what this session records (the file is replaced at the first recording).
``"replay"`` never calls it: a request that was not recorded raises
:class:`~racefree.errors.CassetteMissError`. ``"auto"`` replays what is
recorded and records what is not.

**Keys.** A request is its wrapped function's ``name`` and its arguments as
canonical JSON (``{"args": [...], "kwargs": {...}}``, keys sorted), or what
the ``key`` function given to :meth:`Cassette.wrap` returns for them.
Arguments that are not JSON raise :class:`~racefree.errors.NotRecordableError`
before anything is called.

**Identical requests, the rule.** A cassette numbers the calls of each
request (name and key) in the order the calls *start*, counting from 0 across
all agents: the n-th call of a request gets the n-th recorded response. Under
a fixed schedule that order is fixed, so a replay is deterministic; two
schedules may hand two agents' identical requests each other's responses
(identical requests are interchangeable). A call that does not complete (the
real function raised, its response is not JSON, or replay found nothing)
gives its number back to the next identical call, so a retry loop records its
successful attempt in the first place. The count starts again from 0 at every
exploration run (and after an exploration); call :meth:`Cassette.rewind` to
start again between plain runs, and make one cassette per run when runs
overlap (``racefree.stress``). When agents must get their own answers, make
their requests differ (put the agent's role in the prompt or in the key).

**Files.** JSON, never pickle: ``{"format": "racefree-cassette", "version": 1,
"calls": [{"name", "request", "occurrence", "latency", "response"}, ...]}``,
sorted, so re-recording gives a small diff. Every new recording saves the
file atomically (a temporary file in the same folder, then a rename).
Responses must come back from JSON unchanged; any other response raises
:class:`~racefree.errors.NotRecordableError` and records nothing.

Thread-safe and task-safe: the cassette's state sits behind a lock taken only
for bookkeeping, never across a call or a wait.
"""

from __future__ import annotations

import _thread
import functools
import hashlib
import heapq
import inspect
import json
import math
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, cast, overload

from racefree.errors import (
    CassetteFormatError,
    CassetteMissError,
    NotRecordableError,
    UsageError,
)
from racefree.explore import _patches, hooks

__all__ = ["Cassette", "Mode"]

P = ParamSpec("P")
R = TypeVar("R")

Mode = Literal["record", "replay", "auto"]
_MODES = ("record", "replay", "auto")
_FORMAT = "racefree-cassette"
_VERSION = 1
# The shortest wait a replayed call makes inside an exploration: a real timer,
# so that even a call recorded as instant is a place where another agent may run.
_MIN_WAIT = 1e-6
_SHOWN = 120  # characters of a request shown in a message

_Slot = tuple[str, str]  # (name, canonical request)


@dataclass(frozen=True)
class _Entry:
    response: str  # as JSON text: every replay parses a fresh copy
    latency: float


@dataclass(frozen=True)
class _Call:
    """One call under way: which request, which occurrence, and its recording if any."""

    name: str
    canon: str
    keyed: bool
    occurrence: int
    hit: _Entry | None


def _canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _render(name: str, canon: str, keyed: bool) -> str:
    """A request as a person reads it: ``llm("Plan the trip", temperature=0)``."""
    if keyed:
        return f"{name}(key {_shorten(canon)})"
    request = json.loads(canon)
    parts = [json.dumps(a, ensure_ascii=False) for a in request["args"]]
    parts += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in request["kwargs"].items()]
    return f"{name}({_shorten(', '.join(parts))})"


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class Cassette:
    """Recorded responses of a workflow's model and tool calls, kept in one JSON file.

    ``path`` is the file. ``mode`` is ``"auto"`` (replay what is recorded,
    record the rest), ``"replay"`` (offline; a missing call raises
    ``CassetteMissError``) or ``"record"`` (call the real functions and
    record everything anew). ``real_time`` applies to replays outside an
    exploration: True waits the recorded latency for real, False answers at
    once (still yielding, as a real call would). Inside ``racefree.explore``
    the recorded latency is always waited in virtual time.

    See the module docstring for how requests are keyed and numbered.
    """

    def __init__(
        self, path: str | os.PathLike[str], mode: Mode = "auto", *, real_time: bool = True
    ) -> None:
        if mode not in _MODES:
            raise UsageError(
                f"A cassette's mode must be 'record', 'replay' or 'auto', not {mode!r}."
            )
        self.path = Path(path)
        self.mode: Mode = mode
        self.real_time = real_time
        self.recorded = 0  # responses recorded by this object
        self.replayed = 0  # responses replayed by this object
        self._lock = _thread.allocate_lock()  # a real lock, even when made inside a run
        self._entries: dict[_Slot, dict[int, _Entry]] = {}
        self._next: dict[_Slot, int] = {}
        self._free: dict[_Slot, list[int]] = {}
        self._run: weakref.ref[Any] | None = None
        if mode == "record":
            return
        if self.path.exists():
            self._load()
        elif mode == "replay":
            raise CassetteMissError(
                f"The cassette file {self.path} does not exist, so there is nothing to "
                "replay. Record it once with mode='record' (or mode='auto', which records "
                "only what is missing).",
                path=str(self.path),
            )

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, mode={self.mode!r}, responses={len(self)})"

    def __len__(self) -> int:
        """How many responses the cassette holds."""
        with self._lock:
            return sum(len(calls) for calls in self._entries.values())

    # --- wrapping ---------------------------------------------------------------------

    @overload
    def wrap(
        self,
        fn: Callable[P, R],
        /,
        *,
        name: str | None = None,
        key: Callable[..., Any] | None = None,
    ) -> Callable[P, R]: ...

    @overload
    def wrap(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        key: Callable[..., Any] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    def wrap(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        key: Callable[..., Any] | None = None,
    ) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
        """Wrap a sync or async callable so that its calls are recorded and replayed.

        Use it as ``cassette.wrap(fn, name="llm")`` or as a decorator
        (``@cassette.wrap`` or ``@cassette.wrap(name="llm")``). ``name``
        (default: the function's ``__name__``) keys the calls in the file;
        give one that stays stable when you rename things. ``key``, when
        given, is called with the call's arguments and returns the JSON value
        that identifies the request, for arguments that are not JSON (a
        client object) or that should not count (a request id).
        """
        if fn is None:

            def decorator(f: Callable[P, R]) -> Callable[P, R]:
                return self.wrap(f, name=name, key=key)

            return decorator
        if not callable(fn):
            raise UsageError(f"Cassette.wrap needs a function or other callable, not {fn!r}.")
        call_name = name if name is not None else getattr(fn, "__name__", None)
        if not isinstance(call_name, str) or not call_name.strip():
            raise UsageError(
                f"Cannot name the calls of {fn!r} in the cassette; pass name='...' to wrap()."
            )
        if key is not None and not callable(key):
            raise UsageError(
                f"wrap()'s key must be a function of the call's arguments, not {key!r}."
            )
        wrapped = fn  # keep the narrowed type for the closures
        if _is_async(fn):

            async def async_call(*args: Any, **kwargs: Any) -> Any:
                import asyncio  # an async function runs only once asyncio is imported

                call = self._begin(call_name, key, args, kwargs)
                if call.hit is not None:
                    await asyncio.sleep(self._wait(call.hit.latency))
                    return json.loads(call.hit.response)
                started = time.perf_counter()
                try:
                    response = await wrapped(*args, **kwargs)  # type: ignore[misc]
                except BaseException:
                    self._abandon(call)
                    raise
                return self._finish(call, response, time.perf_counter() - started)

            return cast("Callable[P, R]", functools.wraps(fn)(async_call))

        def sync_call(*args: Any, **kwargs: Any) -> Any:
            call = self._begin(call_name, key, args, kwargs)
            if call.hit is not None:
                time.sleep(self._wait(call.hit.latency))
                return json.loads(call.hit.response)
            started = time.perf_counter()
            try:
                response = wrapped(*args, **kwargs)
            except BaseException:
                self._abandon(call)
                raise
            return self._finish(call, response, time.perf_counter() - started)

        return cast("Callable[P, R]", functools.wraps(fn)(sync_call))

    # --- the bookkeeping both wrappers share (no I/O but saving) ---------------------

    def _begin(
        self,
        name: str,
        key: Callable[..., Any] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> _Call:
        """Key the request, take its next occurrence, and find its recording (or miss)."""
        request: Any = key(*args, **kwargs) if key is not None else {"args": args, "kwargs": kwargs}
        try:
            canon = _canonical(request)
        except (TypeError, ValueError) as exc:
            if key is not None:
                raise NotRecordableError(
                    f"The key function of {name}() returned something that is not JSON, so "
                    f"the cassette cannot key the call: {exc}. Make it return JSON values "
                    "(strings, numbers, booleans, None, lists, dicts with string keys)."
                ) from exc
            raise NotRecordableError(
                f"The arguments of {name}() are not JSON, so the cassette cannot key the "
                f"call: {exc}. Pass only JSON values (strings, numbers, booleans, None, lists, "
                "dicts with string keys), or give wrap() a key function that returns one, "
                "such as key=lambda prompt, **_: prompt."
            ) from exc
        slot = (name, canon)
        # Identical requests race for their occurrence numbers: tell the explorer,
        # so that exhaustive search tries both orders of two identical calls.
        digest = hashlib.blake2b(f"{name}\0{canon}".encode(), digest_size=6).hexdigest()
        hooks.note("claim", f"internal-cassette#{digest}")
        with self._lock:
            self._follow_run()
            occurrence = self._take(slot)
            recorded = {} if self.mode == "record" else self._entries.get(slot, {})
            hit = recorded.get(occurrence)
            if hit is not None:
                self.replayed += 1
            elif self.mode == "replay":
                self._give_back(slot, occurrence)
        call = _Call(name, canon, key is not None, occurrence, hit)
        if hit is None and self.mode == "replay":
            raise self._miss(call, len(recorded))
        return call

    def _miss(self, call: _Call, held: int) -> CassetteMissError:
        shown = _render(call.name, call.canon, call.keyed)
        if held == 0:
            what = f"The cassette {self.path} has no recorded response for {shown}."
        else:
            what = (
                f"The cassette {self.path} holds {held} recorded response"
                f"{'s' if held != 1 else ''} for {shown}, but this is call "
                f"{call.occurrence + 1} of it."
            )
        return CassetteMissError(
            f"{what} Record the missing calls once with mode='auto', or record "
            "everything anew with mode='record'.",
            path=str(self.path),
            name=call.name,
            request=call.canon,
            occurrence=call.occurrence,
        )

    def _finish(self, call: _Call, response: Any, latency: float) -> Any:
        """Check that ``response`` is JSON, store it at the call's place and save."""
        kind = type(response).__name__
        kind = f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"
        try:
            text = json.dumps(response, ensure_ascii=False, allow_nan=False)
            changed = json.loads(text) != response
        except (TypeError, ValueError) as exc:
            self._abandon(call)
            raise NotRecordableError(
                f"{call.name}() returned {kind}, which is not JSON, so the cassette cannot "
                f"record it: {exc}. Nothing was recorded; return plain data instead, such as "
                "the reply's text or response.model_dump()."
            ) from exc
        if changed:
            self._abandon(call)
            raise NotRecordableError(
                f"{call.name}() returned {kind} that JSON would give back changed (a tuple "
                "comes back as a list, a non-string dict key as a string), so a replay would "
                "not match the recording. Nothing was recorded; return lists and dicts with "
                "string keys instead."
            )
        entry = _Entry(text, round(max(0.0, latency), 6))
        with self._lock:
            self._entries.setdefault((call.name, call.canon), {})[call.occurrence] = entry
            self.recorded += 1
            self._write()
        return response

    def _abandon(self, call: _Call) -> None:
        """The call did not complete: give its occurrence to the next identical call."""
        with self._lock:
            self._give_back((call.name, call.canon), call.occurrence)

    def _wait(self, latency: float) -> float:
        if _patches._scheduler() is not None:  # a controlled agent: virtual time
            return max(latency, _MIN_WAIT)
        return latency if self.real_time else 0.0

    # --- occurrences (called with the lock held) --------------------------------------

    def _take(self, slot: _Slot) -> int:
        free = self._free.get(slot)
        if free:
            return heapq.heappop(free)
        occurrence = self._next.get(slot, 0)
        self._next[slot] = occurrence + 1
        return occurrence

    def _give_back(self, slot: _Slot, occurrence: int) -> None:
        heapq.heappush(self._free.setdefault(slot, []), occurrence)

    def _follow_run(self) -> None:
        """Start counting anew when an exploration run starts or ends."""
        run = hooks._scheduler
        if run is None:
            if self._run is not None:
                self._run = None
                self._rewind()
        elif self._run is None or self._run() is not run:
            self._run = weakref.ref(run)
            self._rewind()

    def _rewind(self) -> None:
        self._next.clear()
        self._free.clear()

    def rewind(self) -> None:
        """Count identical requests from 0 again: the next call gets the first recording.

        Call it between two plain runs of a workflow in one process; every
        exploration run starts from 0 by itself.
        """
        with self._lock:
            self._rewind()

    # --- the file ------------------------------------------------------------------

    def save(self) -> None:
        """Write the cassette to its file now (atomically). Recording saves by itself."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        calls = [
            {
                "name": name,
                "request": json.loads(canon),
                "occurrence": occurrence,
                "latency": entry.latency,
                "response": json.loads(entry.response),
            }
            for (name, canon), by_occurrence in sorted(self._entries.items())
            for occurrence, entry in sorted(by_occurrence.items())
        ]
        document = {"format": _FORMAT, "version": _VERSION, "calls": calls}
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{id(self):x}.tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _load(self) -> None:
        path = self.path
        try:
            document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
        except ValueError as exc:  # also UnicodeDecodeError and json.JSONDecodeError
            raise CassetteFormatError(
                f"The cassette file {path} is not valid JSON ({exc}). Delete it and record again."
            ) from exc
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise CassetteFormatError(
                f'The file {path} is not a racefree cassette (it has no "format": "{_FORMAT}" '
                "field). Point the Cassette at a cassette file, or delete this one and record "
                "again."
            )
        if document.get("version") != _VERSION:
            raise CassetteFormatError(
                f"The cassette file {path} is version {document.get('version')!r}; this racefree "
                f"reads version {_VERSION}. Record it again with this version."
            )
        calls = document.get("calls")
        if not isinstance(calls, list):
            raise CassetteFormatError(
                f'The cassette file {path} has no "calls" list. Delete it and record again.'
            )
        for index, call in enumerate(calls):
            problem = _check_call(call)
            if problem is None:
                slot = (call["name"], _canonical(call["request"]))
                by_occurrence = self._entries.setdefault(slot, {})
                if call["occurrence"] in by_occurrence:
                    problem = "it repeats an earlier call's name, request and occurrence"
                else:
                    by_occurrence[call["occurrence"]] = _Entry(
                        json.dumps(call["response"], ensure_ascii=False), float(call["latency"])
                    )
            if problem is not None:
                raise CassetteFormatError(
                    f"The cassette file {path} has a malformed call at index {index}: {problem}. "
                    "Delete it and record again."
                )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _check_call(call: Any) -> str | None:
    """What is wrong with one stored call, or None."""
    if not isinstance(call, dict):
        return "it is not an object"
    missing = [f for f in ("name", "request", "occurrence", "latency", "response") if f not in call]
    if missing:
        return f"it lacks {', '.join(repr(f) for f in missing)}"
    if not isinstance(call["name"], str) or not call["name"]:
        return "its name is not a non-empty string"
    occurrence = call["occurrence"]
    if isinstance(occurrence, bool) or not isinstance(occurrence, int) or occurrence < 0:
        return "its occurrence is not a whole number of at least 0"
    latency = call["latency"]
    if isinstance(latency, bool) or not isinstance(latency, (int, float)):
        return "its latency is not a number of seconds"
    if not 0 <= latency < math.inf:
        return "its latency is not a number of seconds of at least 0"
    try:
        _canonical(call["request"])
    except ValueError:  # a number too large for a float
        return "its request holds a number that JSON cannot keep"
    return None
