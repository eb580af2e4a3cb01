"""The contract every store backend fulfils, in a sync and an asyncio flavour.

A backend moves state in and out of one storage engine; it decides nothing.
Its one required primitive is :meth:`Backend.execute`: *atomically* read the
state of an op's keys, hand them to the pure decision of
:mod:`racefree.state._core`, and write the effects, together with the
op's idempotency record and (when a history is attached) its events, or
write nothing at all if the decision raised. How each engine makes that
atomic is its own business:

* memory: one ``threading.Lock`` around read, decide and write;
* SQLite: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (one machine, many processes);
* Redis: for an op that runs Python code (``update``, a custom reducer) a
  Lua script reads the keys and their versions, the decision runs in
  Python, and a second Lua script commits only if the versions are still
  the ones read (many machines); when they are not, the backend raises
  :class:`RetryOperation` and the store runs the op again.

A backend may also recognise an op by its name and carry it out natively
(Redis decides every single-key write inside one script, appending with
``RPUSH``), provided the result, the versions and the stored value are
exactly those the decision would give, and that it refuses exactly what the
decision refuses; the shared conformance suite holds every backend to that.

A backend whose engine can keep a transaction open across calls may hand
out a :class:`Session` from ``session()``: the store then sends a
transaction's reads and its commit through it, so that they happen inside
one database transaction (SQLite).

The store validates keys and values and builds the op before it calls the
backend, and it calls the backend from the agent's own thread or task, so
``op.agent`` is already filled in when the backend needs it.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol

from racefree.history import History
from racefree.state._core import Op

__all__ = ["AsyncBackend", "AsyncSession", "Backend", "FastPath", "RetryOperation", "Session"]


class RetryOperation(Exception):
    """Raised by an optimistic backend when a concurrent write spoilt one attempt.

    Nothing was written. The store runs the op again (deciding afresh on the
    new state) up to its ``max_attempts`` and then raises ``ContentionError``.
    Never raised by a backend whose ``optimistic`` attribute is false, and
    never seen by users.
    """

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(key, expected, actual)
        self.key = key
        self.expected = expected
        self.actual = actual


class Session(Protocol):
    """One store transaction's reads and commit inside one database transaction of the engine.

    A backend whose engine can hold a transaction open across calls (SQLite)
    hands one out from :meth:`Backend.session`; the store sends the
    transaction's ``get`` ops and its ``commit`` op through it instead of
    :meth:`Backend.execute`, and closes it when the transaction ends
    (committed, abandoned, or raised). What the reads saw cannot change
    under the transaction before it commits, or the commit finds out and
    raises ``ConflictError`` as ``execute`` would.
    """

    def execute(self, op: Op) -> Any:
        """Carry out a ``get`` or the ``commit`` of this transaction."""

    def close(self) -> None:
        """End the database transaction without writing; calling it twice is harmless."""


class AsyncSession(Protocol):
    """:class:`Session` for an :class:`AsyncBackend`: ``execute`` is awaited."""

    async def execute(self, op: Op) -> Any:
        """Carry out a ``get`` or the ``commit`` of this transaction."""

    def close(self) -> None:
        """End the database transaction without writing (quick: it never waits)."""


class FastPath(Protocol):
    """The most common ops, called directly instead of through an :class:`Op` (optional).

    A backend that can carry out a read or an append in far less time than
    it takes to build and dispatch an op (memory; SQLite's sync flavour) hands this out from
    ``fast_path()``. The store calls it only when nothing watches the op:
    no history is attached (the backend returns ``None`` otherwise), no
    exploration is running (``racefree.hooks``), and no idempotency key is
    given; keys and values are checked by the store as for any op. Each
    method gives exactly the result, versions and stored value of
    :meth:`Backend.execute` on the op it stands for (the conformance tests
    compare the two); it may hand any case other than the common one to
    ``execute``. An asyncio backend's methods never do I/O, so an asyncio
    store may call them without awaiting; a sync backend's may block as its
    ``execute`` does (SQLite runs the op's statements).
    """

    def read(self, key: str) -> tuple[Any, int]:
        """``(value, version)`` of ``key``, the value a copy: ``Op("get", (key,), ())``."""

    def append(self, key: str, item: Any) -> int:
        """Append ``item`` (owned by the backend from now on): ``Op("append", (key,), ([item],))``.

        The op has no agent.
        """

    def extend(self, key: str, items: list[Any]) -> int:
        """Append ``items`` (owned by the backend from now on): ``Op("extend", (key,), (items,))``.

        The op has no agent.
        """

    def execute(self, op: Op) -> Any:
        """Any other op, as :meth:`Backend.execute` (never raising ``RetryOperation``)."""


class Backend(abc.ABC):
    """A synchronous backend: every method blocks until it is done."""

    #: URL schemes this backend serves, such as ``("memory",)``.
    schemes: tuple[str, ...] = ()

    #: One sentence: how far the store's guarantees reach with this backend.
    guarantee: str = ""

    #: True when :meth:`execute` may raise :class:`RetryOperation`.
    optimistic: bool = False

    @abc.abstractmethod
    def execute(self, op: Op) -> Any:
        """Carry out one op atomically and return its result.

        In one atomic step: if ``op.idempotency_key`` was recorded before,
        return ``_core.replay(op, record)`` and write nothing; else read the
        ``KeyState`` of every key in ``op.keys`` (of every key when it is
        ``None``, via ``_core.decide_all``), call ``_core.decide``, and if it
        returns, record the events from ``_core.describe_events`` in the
        attached history (if any, before applying the effects), apply the
        effects (each raises its key's version by one and sets the writer to
        ``op.agent``), store ``(op.name, op.keys, result)`` under the
        idempotency key (if any), and return the result with no reference to
        stored objects. If the decision raises, write nothing and let the
        error propagate. Translate engine errors into ``StoreError``
        subclasses with ``raise ... from``.
        """

    def session(self) -> Session | None:
        """A database transaction for one store transaction, or ``None`` (see :class:`Session`).

        ``None``, the default, sends a transaction's reads and its commit
        through :meth:`execute` as separate ops; the commit then compares the
        versions read.
        """
        return None

    def fast_path(self) -> FastPath | None:
        """The common ops without an op (see :class:`FastPath`), or ``None``, the default."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files; calling it twice is harmless."""

    @property
    @abc.abstractmethod
    def history(self) -> History | None:
        """The history that :meth:`execute` records events into, or ``None``."""


class AsyncBackend(abc.ABC):
    """An asyncio backend: the same contract as :class:`Backend`, awaited.

    ``execute`` must not block the event loop for longer than a critical
    section that does no I/O (the memory backend's lock); an engine with
    blocking I/O awaits its own asyncio client or runs the call in a worker
    thread.
    """

    schemes: tuple[str, ...] = ()
    guarantee: str = ""
    optimistic: bool = False

    @abc.abstractmethod
    async def execute(self, op: Op) -> Any:
        """Carry out one op atomically and return its result (see ``Backend.execute``)."""

    def session(self) -> AsyncSession | None:
        """A database transaction for one store transaction, or ``None`` (``Backend.session``)."""
        return None

    def fast_path(self) -> FastPath | None:
        """The common ops, called without awaiting (see :class:`FastPath`), or ``None``."""
        return None

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections and files; calling it twice is harmless."""

    @property
    @abc.abstractmethod
    def history(self) -> History | None:
        """The history that :meth:`execute` records events into, or ``None``."""
