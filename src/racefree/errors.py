"""Every error racefree raises, under one root.

The tree::

    RacefreeError
    ├── UsageError            bad arguments to racefree itself (also a ValueError)
    ├── StoreError            something went wrong in a shared store
    │   ├── UnknownBackendError   the URL names no backend (also a LookupError)
    │   ├── BackendUnavailableError  the backend cannot be reached
    │   ├── InvalidKeyError       a key that no backend accepts
    │   ├── NotSerializableError  a value that is not JSON (also a TypeError)
    │   ├── WrongTypeError        the key holds the wrong kind of value (also a TypeError)
    │   ├── ConflictError         a version check failed (compare-and-set, transaction)
    │   │   └── ContentionError       gave up retrying: others kept writing first
    │   └── ConcurrentWriteError  two agents wrote one last-value key at once
    ├── HistoryFormatError    a history file that cannot be read (also a ValueError)
    ├── HistoryEncodeError    an event JSON cannot hold: nothing written (also a TypeError)
    ├── ReplayDivergedError   a replayed schedule stopped matching the run
    ├── CassetteError         a recorded-call cassette cannot serve a call
    │   ├── CassetteMissError     replay found no recorded response for a request
    │   ├── CassetteFormatError   a cassette file that cannot be read (also a ValueError)
    │   └── NotRecordableError    a request or response that is not JSON (also a TypeError)
    └── RaceFoundError        an explored schedule failed a check (also an AssertionError)

Catch ``RacefreeError`` to catch anything of ours; lower-level errors
(``sqlite3``, ``redis``) are translated into these with ``raise ... from``.
Messages are whole sentences that end with what to do next.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CassetteError",
    "CassetteFormatError",
    "CassetteMissError",
    "ConcurrentWriteError",
    "ConflictError",
    "ContentionError",
    "HistoryEncodeError",
    "HistoryFormatError",
    "InvalidKeyError",
    "NotRecordableError",
    "NotSerializableError",
    "RaceFoundError",
    "RacefreeError",
    "ReplayDivergedError",
    "StoreError",
    "UnknownBackendError",
    "UsageError",
    "WrongTypeError",
]


class RacefreeError(Exception):
    """Root of every error racefree raises on purpose.

    An exception that is not a ``RacefreeError`` coming out of racefree is a
    bug in racefree (or an error from your own code passed through, such as
    an exception raised inside your transaction).
    """


class UsageError(RacefreeError, ValueError):
    """An argument to racefree's API or CLI is out of range or malformed.

    Raised before anything runs or is written; the message names the argument
    and the accepted values. At the CLI it becomes one line and exit status 2.
    """


class StoreError(RacefreeError):
    """Base of the errors a shared store raises.

    Catch this to handle any store failure; catch a subclass to handle one
    cause. When a store operation raises a ``StoreError`` nothing was written.
    """


class UnknownBackendError(StoreError, LookupError):
    """The store URL's scheme names no backend.

    The message lists the schemes that are known. Distinct from
    ``BackendUnavailableError``: here racefree does not know what to connect
    to at all; there it knows but cannot reach it.
    """


class BackendUnavailableError(StoreError):
    """The backend is known but cannot be reached (server down, file unwritable).

    The message names the URL with any password removed.
    """


class InvalidKeyError(StoreError, ValueError):
    """A key that is not a non-empty string of printable characters.

    Keys are plain names such as ``"conversation_history"``; the message says
    which rule the key broke.
    """


class NotSerializableError(StoreError, TypeError):
    """A value that cannot be stored as JSON.

    Stores keep values as JSON so that every backend, every process and every
    language reads the same thing; convert the value (for example a dataclass
    with ``dataclasses.asdict``) before storing it. Nothing was written.
    """


class WrongTypeError(StoreError, TypeError):
    """The operation does not fit the kind of value the key holds.

    For example ``append`` on a key holding a number, or ``increment`` on a
    key holding a list. A key that was never written (or holds ``null``)
    fits every operation. Distinct from ``NotSerializableError``, which is
    about the value *you* passed; here the value already stored is the
    problem. Nothing was written; use another key or the matching operation.
    """

    def __init__(self, message: str, *, key: str, operation: str, found: str) -> None:
        super().__init__(message)
        self.key = key
        self.operation = operation
        self.found = found


class ConflictError(StoreError):
    """A compare-and-set found a different version than the one expected.

    Another agent wrote the key after you read it. Re-read the key and decide
    again, or use ``update``, which retries by itself. Distinct from
    ``ConcurrentWriteError``, which a reducer raises when it refuses to pick a
    winner between two writers.
    """

    def __init__(self, message: str, *, key: str, expected: int, actual: int) -> None:
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.actual = actual


class ContentionError(ConflictError):
    """An operation that retries by itself gave up after its last attempt.

    Raised by ``update`` on optimistic backends and by ``transaction(fn)``
    when every attempt found that another agent had written a key first.
    ``key``, ``expected`` and ``actual`` describe the last conflict and
    ``attempts`` counts the tries. Catch ``ConflictError`` to handle both a
    single conflict and this one; reduce the contention (fewer writers on
    one key, or a reducer such as add or append that never conflicts) or
    allow more attempts.
    """

    def __init__(
        self, message: str, *, key: str, expected: int, actual: int, attempts: int
    ) -> None:
        super().__init__(message, key=key, expected=expected, actual=actual)
        self.attempts = attempts


class ConcurrentWriteError(StoreError):
    """Two agents wrote the same last-value key concurrently.

    A last-value key holds one agent's answer; when a second agent writes it
    from the same version, one of the two answers would silently vanish, so the
    store refuses. Give each agent its own key, or declare a reducer (append,
    add, merge) that combines both writes.
    """

    def __init__(self, message: str, *, key: str, writers: tuple[str, str]) -> None:
        super().__init__(message)
        self.key = key
        self.writers = writers


class HistoryFormatError(RacefreeError, ValueError):
    """A history file (JSON lines) has a line that is not a valid event.

    The message gives the file, the line number and what is wrong with it.
    """


class HistoryEncodeError(RacefreeError, TypeError):
    """``History.to_jsonl`` met an event whose value or meta JSON cannot hold.

    Raised before anything is written, so no partial file is left. The message
    names the event and the part that is not JSON (``value["created"]``: a
    datetime) and says to pass ``default=`` (for example ``default=str``).
    """


class ReplayDivergedError(RacefreeError):
    """A replayed schedule no longer matches what the workflow does.

    The workflow changed since the schedule was recorded (an agent was added,
    or a step moved), so the recorded choices cannot be followed. Re-run the
    exploration to find a fresh schedule.
    """


class CassetteError(RacefreeError):
    """Base of the errors a cassette (``racefree.Cassette``) raises.

    A cassette records a workflow's real model and tool calls once and
    replays them offline. Catch this to handle any cassette failure; catch a
    subclass to handle one cause. When a cassette raises, nothing was
    recorded or written.
    """


class CassetteMissError(CassetteError):
    """Replay found no recorded response for a call.

    Raised in ``mode="replay"`` when the cassette holds no response for the
    request (its name and arguments), or holds fewer identical calls than
    the run makes, and when the cassette file does not exist at all. The
    workflow asks something it did not ask when the cassette was recorded:
    record the missing calls once with ``mode="auto"``, or everything anew
    with ``mode="record"``. ``name``, ``request`` (canonical JSON) and
    ``occurrence`` (0 for the first identical call) describe the call;
    they are ``None`` when the file is missing.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str,
        name: str | None = None,
        request: str | None = None,
        occurrence: int | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.name = name
        self.request = request
        self.occurrence = occurrence


class CassetteFormatError(CassetteError, ValueError):
    """A cassette file that is not valid JSON or not a racefree cassette.

    The message names the file and what is wrong. Distinct from
    ``CassetteMissError``: there the file is fine but lacks a call; here
    the file itself cannot be read. Delete it and record again.
    """


class NotRecordableError(CassetteError, TypeError):
    """A call whose arguments or response a cassette cannot keep as JSON.

    Cassettes are JSON files, never pickles, so that they are safe to load
    and readable in a diff. Arguments must be JSON to key the call (or give
    ``wrap`` a ``key`` function that returns JSON); a response must come back
    from JSON unchanged (no objects, tuples or non-string dict keys: return
    plain data such as the reply's text or ``response.model_dump()``).
    Nothing was recorded. Distinct from ``NotSerializableError``, which a
    store raises for a value you write to shared state.
    """


class RaceFoundError(RacefreeError, AssertionError):
    """An explored schedule made the workflow fail a check.

    Raised by ``Exploration.check()`` and by tests marked for exploration
    with the pytest plugin; the message is the full failure report (what
    broke, the timeline, the schedule) and ends with the command that
    replays the failing run. Distinct from ``ReplayDivergedError``: here the
    explorer worked and your workflow has a race; there the explorer could
    not follow a recorded schedule. An ``AssertionError`` too, so test
    runners show it as a failed test rather than an error.
    """
