"""Store and AsyncStore: one set of decisions, two ways to wait.

``_StoreBase`` does everything that involves no I/O: it checks keys and
values, resolves reducers, builds the :class:`~racefree.state._core.Op`,
and turns the backend's raw result into what the caller gets (tracking
which versions each agent has seen). ``Store`` and ``AsyncStore`` only pass
the op to their backend, blocking or awaiting. Transactions are split the
same way: ``_TransactionBase`` buffers writes and folds reads; only ``get``
and ``commit`` talk to the backend.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, NamedTuple, TypeVar, overload

from racefree import hooks as _hooks
from racefree.agent import current_agent
from racefree.errors import ConflictError, ContentionError, UsageError
from racefree.history import History
from racefree.state._core import EXTEND, Op, apply_pending
from racefree.state._values import _known_keys, check_key, copy_json, to_json
from racefree.state.backends import open_async_backend, open_backend, redact
from racefree.state.backends.base import AsyncBackend, Backend, FastPath, RetryOperation

__all__ = [
    "REDUCERS",
    "AsyncStore",
    "AsyncTransaction",
    "Reducer",
    "Store",
    "Transaction",
    "Versioned",
    "open_async_store",
    "open_store",
]

T = TypeVar("T")

_new = tuple.__new__  # builds an Op without the NamedTuple's generated __new__ (hot path)

Reducer = str | Callable[[Any, Any], Any]
"""A reducer: one of :data:`REDUCERS` by name, or ``fn(current, delta) -> new``."""

REDUCERS = ("add", "append", "last_value", "merge")
"""The built-in reducers' names; a key without a declared reducer uses ``last_value``."""

DEFAULT_MAX_ATTEMPTS = 10

_DELTA_NEEDS = {
    "append": ((list, tuple), "a list of the items to append, such as [item]"),
    "add": ((int, float), "a number to add"),
    "merge": ((dict,), "a dict to merge into the stored dict"),
}


class Versioned(NamedTuple):
    """A value together with the version of its key (0 = never written)."""

    value: Any
    version: int


def _check_reducers(reducers: Mapping[str, Reducer] | None) -> dict[str, Reducer]:
    checked: dict[str, Reducer] = {}
    for key, reducer in (reducers or {}).items():
        key = check_key(key)
        if not callable(reducer) and reducer not in REDUCERS:
            raise UsageError(
                f"The reducer {reducer!r} declared for key {key!r} is not known. Use one of "
                f"{', '.join(REDUCERS)}, or a function fn(current, delta) -> new value."
            )
        checked[key] = reducer
    return checked


def _check_idempotency_key(idempotency_key: object) -> None:
    if not isinstance(idempotency_key, str) or not idempotency_key:
        raise UsageError(
            f"The idempotency key {idempotency_key!r} is not a non-empty string. Pass a "
            "string that names this one write (a request id, a message id) and reuse it "
            "only to retry that write."
        )


def _check_amount(amount: object) -> None:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise UsageError(
            f"increment() needs a number to add, not {amount!r}. Pass an int or a float."
        )
    if isinstance(amount, float) and not math.isfinite(amount):
        raise UsageError(
            f"increment() needs a finite number, not {amount!r}. Pass an int or a float."
        )


def _list_of(what: str, items: object) -> list[Any]:
    if not isinstance(items, (list, tuple)):
        raise UsageError(
            f"{what} takes a list of items, not {type(items).__name__}. "
            "To add a single item use append()."
        )
    checked: list[Any] = to_json(items)
    return checked


def _contention(what: str, exc: ConflictError | RetryOperation, attempts: int) -> ContentionError:
    return ContentionError(
        f"Gave up on {what} after {attempts} attempts: each time another agent wrote "
        f"{exc.key!r} first (last seen at version {exc.actual}, expected {exc.expected}). "
        "Reduce the contention (fewer writers on one key, or a reducer such as add or "
        "append that never conflicts) or pass a larger max_attempts.",
        key=exc.key,
        expected=exc.expected,
        actual=exc.actual,
        attempts=attempts,
    )


def _announce(op: Op) -> None:
    """Tell a running exploration what ``op`` is about to touch: a scheduling point.

    Called before the backend takes its lock, never inside it, so that the
    explorer may run another agent first.
    """
    keys = op.keys
    _hooks.point(op.name, keys[0] if keys else None)
    for key in keys[1:] if keys else ():
        _hooks.note(op.name, key)


class _StoreBase:
    """Everything the two stores share: checks, ops, results. No I/O here."""

    def __init__(
        self,
        *,
        url: str,
        guarantee: str,
        history: History | None,
        reducers: Mapping[str, Reducer] | None,
        max_attempts: int,
    ) -> None:
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise UsageError(f"max_attempts must be a positive int, not {max_attempts!r}.")
        # Only the masked URL is kept: neither url, repr() nor a traceback's
        # locals can show a password the caller put in it.
        self._url = redact(url)
        self._guarantee = guarantee
        self._history = history
        self._recording = history is not None
        self._reducers = _check_reducers(reducers)
        self._max_attempts = max_attempts
        # (agent, key) -> the highest version of key that agent has seen.
        self._seen: dict[tuple[str, str], int] = {}
        # The backend's direct calls for the common ops (memory, no history), or None.
        self._fast: FastPath | None = None

    # ------------------------------------------------------------ properties

    @property
    def url(self) -> str:
        """The URL the store was opened with, every credential masked as ``***``.

        To open the same store elsewhere, pass the original URL along (from
        your configuration), not this one.
        """
        return self._url

    @property
    def guarantee(self) -> str:
        """One sentence: how far this store's atomicity reaches (from its backend)."""
        return self._guarantee

    @property
    def history(self) -> History | None:
        """The history that records every operation, or ``None`` when recording is off."""
        return self._history

    @property
    def reducers(self) -> dict[str, Reducer]:
        """The reducers declared per key (a copy); other keys use ``last_value``."""
        return dict(self._reducers)

    def reducer(self, key: str) -> Reducer:
        """The reducer that ``apply`` uses for ``key``."""
        return self._reducers.get(check_key(key), "last_value")

    # ------------------------------------------------------------ seen versions

    def _tracks(self, key: str) -> bool:
        return self._reducers.get(key, "last_value") == "last_value"

    def _saw(self, agent: str | None, key: str, version: int) -> None:
        if agent is not None and self._seen.get((agent, key), -1) < version:
            self._seen[(agent, key)] = version

    # ------------------------------------------------------------ ops

    def _op_get(self, key: str) -> Op:
        key = check_key(key)
        agent = current_agent() if self._recording or self._tracks(key) else None
        return Op("get", (key,), (), None, agent)

    def _fast_read(self, fast: FastPath, key: str) -> tuple[Any, int]:
        """``get`` on the fast path: what ``_op_get`` and ``_done_get_versioned`` do."""
        if type(key) is not str or key not in _known_keys:
            key = check_key(key)
        raw = fast.read(key)
        if self._reducers.get(key, "last_value") == "last_value":  # _tracks, _saw inlined
            seen = self._seen
            agent_key = (current_agent(), key)
            if seen.get(agent_key, -1) < raw[1]:
                seen[agent_key] = raw[1]
        return raw

    def _done_get_versioned(self, op: Op, raw: list[Any]) -> Versioned:
        value, version = raw
        self._saw(op.agent, op.keys[0], version)  # type: ignore[index]
        return Versioned(value, version)

    def _op_all(self, name: str) -> Op:
        return Op(name, None, (), None, current_agent())

    def _done_snapshot(self, op: Op, raw: dict[str, list[Any]]) -> dict[str, Versioned]:
        out = {}
        for key, (value, version) in raw.items():
            if self._tracks(key):
                self._saw(op.agent, key, version)
            out[key] = Versioned(value, version)
        return out

    def _op_set(self, key: str, value: Any) -> Op:
        return _new(Op, ("set", (check_key(key),), (to_json(value),), None, current_agent()))

    def _done_write(self, op: Op, version: int) -> int:
        self._saw(op.agent, op.keys[0], version)  # type: ignore[index]
        return version

    def _op_compare_and_set(self, key: str, value: Any, expected_version: int) -> Op:
        if type(expected_version) is not int or expected_version < 0:
            raise UsageError(
                f"expected_version must be an int >= 0 (0 = never written), not "
                f"{expected_version!r}. Pass the version that get_versioned() returned."
            )
        return _new(
            Op,
            (
                "compare_and_set",
                (check_key(key),),
                (to_json(value), expected_version),
                None,
                current_agent(),
            ),
        )

    def _op_append(self, key: str, item: Any, idempotency_key: str | None) -> Op:
        key = check_key(key)
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
        return _new(
            Op,
            (
                "append",
                (key,),
                ([to_json(item)],),
                idempotency_key,
                current_agent() if self._recording else None,
            ),
        )

    def _op_extend(self, key: str, items: Any, idempotency_key: str | None) -> Op:
        key = check_key(key)
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
        return Op(
            "extend",
            (key,),
            (_list_of("extend()", items),),
            idempotency_key,
            current_agent() if self._recording else None,
        )

    def _op_append_turn(self, key: str, messages: Any, idempotency_key: str | None) -> Op:
        key = check_key(key)
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
        checked = _list_of("append_turn()", messages)
        if not checked or not all(type(m) is dict for m in checked):
            raise UsageError(
                "append_turn() takes a non-empty list of messages, each a dict such as "
                "{'role': 'user', 'content': '...'}. Pass the whole turn in one call."
            )
        return Op("append_turn", (key,), (checked,), idempotency_key, current_agent())

    def _op_increment(self, key: str, amount: int | float) -> Op:
        key = check_key(key)
        _check_amount(amount)
        return _new(
            Op, ("increment", (key,), (amount,), None, current_agent() if self._recording else None)
        )

    def _op_update(self, key: str, fn: Callable[[Any], Any]) -> Op:
        key = check_key(key)
        if not callable(fn):
            raise UsageError(f"update() needs a function fn(current) -> new value, not {fn!r}.")
        return _new(
            Op, ("update", (key,), (fn,), None, current_agent() if self._recording else None)
        )

    def _op_claim(self, key: str, owner: str) -> Op:
        key = check_key(key)
        if not isinstance(owner, str) or not owner:
            raise UsageError(
                f"claim() needs the owner's name as a non-empty string, not {owner!r}."
            )
        return _new(
            Op, ("claim", (key,), (owner,), None, current_agent() if self._recording else None)
        )

    def _op_apply(
        self,
        delta: Mapping[str, Any],
        expected: Mapping[str, int] | None,
        idempotency_key: str | None,
    ) -> Op:
        if not isinstance(delta, Mapping):
            raise UsageError(f"apply() takes a dict of key -> value, not {type(delta).__name__}.")
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
        agent = current_agent()
        expected = expected or {}
        args = {}
        for key, raw in delta.items():
            key = check_key(key)
            reducer = self._reducers.get(key, "last_value")
            value = to_json(raw)
            need = _DELTA_NEEDS.get(reducer) if isinstance(reducer, str) else None
            if need is not None and (not isinstance(value, need[0]) or isinstance(value, bool)):
                raise UsageError(
                    f"apply() got {raw!r} for {key!r}, whose reducer is {reducer}: "
                    f"give {need[1]}. Nothing was written."
                )
            base = expected.get(key)
            if base is None:
                base = self._seen.get((agent, key), 0)
            args[key] = (value, reducer, base)
        keys = tuple(sorted(args))
        return Op("apply", keys, tuple(args[k] for k in keys), idempotency_key, agent)

    def _done_apply(self, op: Op, versions: dict[str, int]) -> dict[str, int]:
        for key, version in versions.items():
            self._saw(op.agent, key, version)
        return versions

    def _retry_error(self, op: Op, exc: RetryOperation) -> ContentionError:
        return _contention(f"{op.name} of {exc.key!r}", exc, self._max_attempts)


class Store(_StoreBase):
    """A shared store for agents; every operation is atomic across the threads of one process
    (across processes or machines too when its backend says so, see ``guarantee``).

    Open one with :func:`open_store`. Values are JSON and are copied on the way
    in and out, so no agent holds a live reference to shared state.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        url: str = "memory://",
        reducers: Mapping[str, Reducer] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        super().__init__(
            url=url,
            guarantee=backend.guarantee,
            history=backend.history,
            reducers=reducers,
            max_attempts=max_attempts,
        )
        self._backend = backend
        if self._history is None:
            self._fast = backend.fast_path()
        # A pessimistic backend never asks for a retry: call it directly.
        execute = self._run_with_retries if backend.optimistic else backend.execute

        def run(op: Op) -> Any:
            if _hooks._scheduler is not None:  # an exploration is running
                _announce(op)
            return execute(op)

        self._run: Callable[[Op], Any] = run

    def _run_with_retries(self, op: Op) -> Any:
        for _ in range(self._max_attempts - 1):
            try:
                return self._backend.execute(op)
            except RetryOperation:
                continue
        try:
            return self._backend.execute(op)
        except RetryOperation as exc:
            raise self._retry_error(op, exc) from None

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` if it was never written."""
        fast = self._fast
        if fast is not None and _hooks._scheduler is None:  # _fast_read, inlined (hot path)
            if type(key) is not str or key not in _known_keys:
                key = check_key(key)
            value, version = fast.read(key)
            if self._reducers.get(key, "last_value") == "last_value":
                seen = self._seen
                agent_key = (current_agent(), key)
                if seen.get(agent_key, -1) < version:
                    seen[agent_key] = version
            return value if version else default
        else:
            op = self._op_get(key)
            value, version = self._done_get_versioned(op, self._run(op))
        return value if version else default

    def get_versioned(self, key: str) -> Versioned:
        """``(value, version)`` of ``key`` read together; ``(None, 0)`` if never written."""
        fast = self._fast
        if fast is not None and _hooks._scheduler is None:
            return _new(Versioned, self._fast_read(fast, key))
        op = self._op_get(key)
        return self._done_get_versioned(op, self._run(op))

    def version(self, key: str) -> int:
        """The version of ``key``: how many writes it has had (0 = never written)."""
        return self.get_versioned(key).version

    def versions(self) -> dict[str, int]:
        """The version of every key that was ever written, read at one instant."""
        result: dict[str, int] = self._run(self._op_all("versions"))
        return result

    def snapshot(self) -> dict[str, Versioned]:
        """Every key with its value and version, read at one instant (a consistent view)."""
        op = self._op_all("snapshot")
        return self._done_snapshot(op, self._run(op))

    def set(self, key: str, value: Any) -> int:
        """Replace the value of ``key``; returns its new version."""
        op = self._op_set(key, value)
        return self._done_write(op, self._run(op))

    def compare_and_set(self, key: str, value: Any, *, expected_version: int) -> int:
        """Set ``key`` only if it is still at ``expected_version``; returns the new version.

        Raises ``ConflictError`` (with ``key``, ``expected``, ``actual``) otherwise.
        """
        op = self._op_compare_and_set(key, value, expected_version)
        return self._done_write(op, self._run(op))

    def append(self, key: str, item: Any, *, idempotency_key: str | None = None) -> int:
        """Append ``item`` to the list at ``key``; returns the item's index."""
        fast = self._fast
        if fast is not None and idempotency_key is None and _hooks._scheduler is None:
            if type(key) is not str or key not in _known_keys:
                key = check_key(key)
            return fast.append(key, to_json(item))
        result: int = self._run(self._op_append(key, item, idempotency_key))
        return result

    def extend(self, key: str, items: Any, *, idempotency_key: str | None = None) -> int:
        """Append all ``items`` at once, contiguously; returns the index of the first."""
        fast = self._fast
        if fast is not None and idempotency_key is None and _hooks._scheduler is None:
            return fast.extend(check_key(key), _list_of("extend()", items))
        result: int = self._run(self._op_extend(key, items, idempotency_key))
        return result

    def append_turn(self, key: str, messages: Any, *, idempotency_key: str | None = None) -> int:
        """Append a whole turn (a list of message dicts) contiguously; returns its first index.

        Messages of other agents' turns never land between them.
        """
        result: int = self._run(self._op_append_turn(key, messages, idempotency_key))
        return result

    def increment(self, key: str, amount: int | float = 1) -> int | float:
        """Add ``amount`` to the number at ``key`` (0 if never written); returns the new value."""
        result: int | float = self._run(self._op_increment(key, amount))
        return result

    def update(self, key: str, fn: Callable[[Any], Any]) -> Any:
        """Atomically replace the value of ``key`` with ``fn(value)``; returns the new value.

        ``fn`` gets a copy of the value (``None`` if never written) and must only
        compute; it may run more than once on an optimistic backend.
        """
        return self._run(self._op_update(key, fn))

    def claim(self, key: str, owner: str) -> bool:
        """Make ``owner`` the holder of ``key`` if nobody holds it; True if ``owner`` holds it.

        Exactly one of several owners racing for a key gets True. ``set(key, None)``
        releases it.
        """
        result: bool = self._run(self._op_claim(key, owner))
        return result

    def apply(
        self,
        delta: Mapping[str, Any],
        *,
        expected: Mapping[str, int] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, int]:
        """Merge one agent's update into the store atomically, through each key's reducer.

        Returns the new version of every key in ``delta``. A ``last_value`` key
        written by another agent after the version this agent last saw (or
        after ``expected[key]``) raises ``ConcurrentWriteError``.
        """
        op = self._op_apply(delta, expected, idempotency_key)
        return self._done_apply(op, self._run(op))

    @overload
    def transaction(self) -> Transaction: ...

    @overload
    def transaction(
        self, fn: Callable[[Transaction], T], *, max_attempts: int | None = None
    ) -> T: ...

    def transaction(
        self,
        fn: Callable[[Transaction], T] | None = None,
        *,
        max_attempts: int | None = None,
    ) -> Transaction | T:
        """An all-or-nothing group of reads and writes across keys.

        ``with store.transaction() as tx:`` commits at the end of the block
        (``ConflictError`` if a key read changed meanwhile; an exception in the
        block writes nothing). ``store.transaction(fn)`` calls ``fn(tx)`` and
        commits, re-running ``fn`` on a conflict up to ``max_attempts`` times.
        """
        if fn is None:
            return Transaction(self)
        attempts = max_attempts if max_attempts is not None else self._max_attempts
        last: ConflictError | None = None
        for _ in range(attempts):
            tx = Transaction(self)
            try:
                result = fn(tx)
                tx.commit()
            except ContentionError:
                raise
            except ConflictError as exc:
                last = exc
                continue
            finally:
                if tx._session is not None:
                    tx._end()
            return result
        assert last is not None
        raise _contention("the transaction", last, attempts) from None

    def close(self) -> None:
        """Release the backend's resources."""
        self._backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self._url!r}>"


class AsyncStore(_StoreBase):
    """A shared store for asyncio agents; every operation is atomic across the tasks of one
    process (across processes or machines too when its backend says so, see ``guarantee``).

    Open one with :func:`open_async_store`; it has the same operations as
    :class:`Store`, awaited.
    """

    def __init__(
        self,
        backend: AsyncBackend,
        *,
        url: str = "memory://",
        reducers: Mapping[str, Reducer] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        super().__init__(
            url=url,
            guarantee=backend.guarantee,
            history=backend.history,
            reducers=reducers,
            max_attempts=max_attempts,
        )
        self._backend = backend
        if self._history is None:
            self._fast = backend.fast_path()
        execute = self._run_with_retries if backend.optimistic else backend.execute

        async def run(op: Op) -> Any:
            if _hooks._scheduler is not None:  # an exploration is running
                _announce(op)
            return await execute(op)

        self._run: Callable[[Op], Awaitable[Any]] = run

    async def _run_with_retries(self, op: Op) -> Any:
        for _ in range(self._max_attempts - 1):
            try:
                return await self._backend.execute(op)
            except RetryOperation:
                continue
        try:
            return await self._backend.execute(op)
        except RetryOperation as exc:
            raise self._retry_error(op, exc) from None

    async def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` if it was never written."""
        fast = self._fast
        if fast is not None and _hooks._scheduler is None:
            value, version = self._fast_read(fast, key)
        else:
            op = self._op_get(key)
            value, version = self._done_get_versioned(op, await self._run(op))
        return value if version else default

    async def get_versioned(self, key: str) -> Versioned:
        """``(value, version)`` of ``key`` read together; ``(None, 0)`` if never written."""
        fast = self._fast
        if fast is not None and _hooks._scheduler is None:
            return _new(Versioned, self._fast_read(fast, key))
        op = self._op_get(key)
        return self._done_get_versioned(op, await self._run(op))

    async def version(self, key: str) -> int:
        """The version of ``key``: how many writes it has had (0 = never written)."""
        return (await self.get_versioned(key)).version

    async def versions(self) -> dict[str, int]:
        """The version of every key that was ever written, read at one instant."""
        result: dict[str, int] = await self._run(self._op_all("versions"))
        return result

    async def snapshot(self) -> dict[str, Versioned]:
        """Every key with its value and version, read at one instant (a consistent view)."""
        op = self._op_all("snapshot")
        return self._done_snapshot(op, await self._run(op))

    async def set(self, key: str, value: Any) -> int:
        """Replace the value of ``key``; returns its new version."""
        op = self._op_set(key, value)
        return self._done_write(op, await self._run(op))

    async def compare_and_set(self, key: str, value: Any, *, expected_version: int) -> int:
        """Set ``key`` only if it is still at ``expected_version``; returns the new version."""
        op = self._op_compare_and_set(key, value, expected_version)
        return self._done_write(op, await self._run(op))

    async def append(self, key: str, item: Any, *, idempotency_key: str | None = None) -> int:
        """Append ``item`` to the list at ``key``; returns the item's index."""
        fast = self._fast
        if fast is not None and idempotency_key is None and _hooks._scheduler is None:
            return fast.append(check_key(key), to_json(item))
        result: int = await self._run(self._op_append(key, item, idempotency_key))
        return result

    async def extend(self, key: str, items: Any, *, idempotency_key: str | None = None) -> int:
        """Append all ``items`` at once, contiguously; returns the index of the first."""
        fast = self._fast
        if fast is not None and idempotency_key is None and _hooks._scheduler is None:
            return fast.extend(check_key(key), _list_of("extend()", items))
        result: int = await self._run(self._op_extend(key, items, idempotency_key))
        return result

    async def append_turn(
        self, key: str, messages: Any, *, idempotency_key: str | None = None
    ) -> int:
        """Append a whole turn (a list of message dicts) contiguously; returns its first index."""
        result: int = await self._run(self._op_append_turn(key, messages, idempotency_key))
        return result

    async def increment(self, key: str, amount: int | float = 1) -> int | float:
        """Add ``amount`` to the number at ``key`` (0 if never written); returns the new value."""
        result: int | float = await self._run(self._op_increment(key, amount))
        return result

    async def update(self, key: str, fn: Callable[[Any], Any]) -> Any:
        """Atomically replace the value of ``key`` with ``fn(value)``; returns the new value."""
        return await self._run(self._op_update(key, fn))

    async def claim(self, key: str, owner: str) -> bool:
        """Make ``owner`` the holder of ``key`` if nobody holds it; True if ``owner`` holds it."""
        result: bool = await self._run(self._op_claim(key, owner))
        return result

    async def apply(
        self,
        delta: Mapping[str, Any],
        *,
        expected: Mapping[str, int] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, int]:
        """Merge one agent's update into the store atomically, through each key's reducer."""
        op = self._op_apply(delta, expected, idempotency_key)
        return self._done_apply(op, await self._run(op))

    @overload
    def transaction(self) -> AsyncTransaction: ...

    @overload
    def transaction(
        self,
        fn: Callable[[AsyncTransaction], Awaitable[T]],
        *,
        max_attempts: int | None = None,
    ) -> Coroutine[Any, Any, T]: ...

    def transaction(
        self,
        fn: Callable[[AsyncTransaction], Awaitable[T]] | None = None,
        *,
        max_attempts: int | None = None,
    ) -> AsyncTransaction | Coroutine[Any, Any, T]:
        """An all-or-nothing group of reads and writes across keys.

        ``async with store.transaction() as tx:`` commits at the end of the
        block; ``await store.transaction(fn)`` awaits ``fn(tx)`` and commits,
        re-running it on a conflict up to ``max_attempts`` times.
        """
        if fn is None:
            return AsyncTransaction(self)
        return self._run_transaction(fn, max_attempts)

    async def _run_transaction(
        self, fn: Callable[[AsyncTransaction], Awaitable[T]], max_attempts: int | None
    ) -> T:
        attempts = max_attempts if max_attempts is not None else self._max_attempts
        last: ConflictError | None = None
        for _ in range(attempts):
            tx = AsyncTransaction(self)
            try:
                result = await fn(tx)
                await tx.commit()
            except ContentionError:
                raise
            except ConflictError as exc:
                last = exc
                continue
            finally:
                tx._end()
            return result
        assert last is not None
        raise _contention("the transaction", last, attempts) from None

    async def aclose(self) -> None:
        """Release the backend's resources."""
        await self._backend.aclose()

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __enter__(self) -> None:
        raise UsageError(
            "Attempted to use an AsyncStore with 'with'. Use 'async with' (or open a "
            "sync store with open_store())."
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - never entered
        return None

    def __repr__(self) -> str:
        return f"<AsyncStore {self._url!r}>"


# ---------------------------------------------------------------- transactions


class _TransactionBase:
    """Buffered writes and validated reads; shared by both transaction kinds."""

    # One transaction object per attempt: slots make it cheaper to build.
    __slots__ = ("_base", "_fast", "_finished", "_pending", "_reads", "_session", "_store")

    def __init__(self, store: Any) -> None:
        session = store._backend.session()
        self._store = store
        self._base: _StoreBase = store
        self._reads: dict[str, int] = {}
        self._pending: dict[str, list[tuple[str, Any]]] = {}
        self._finished = False
        self._session: Any = session  # the backend's database transaction for this one, if any
        # Reads go straight to the backend's fast path when it has one and no
        # session holds them in a database transaction.
        self._fast: FastPath | None = store._fast if session is None else None

    def _check_open(self) -> None:
        if self._finished:
            raise UsageError(
                "This transaction has already committed or been abandoned. Start a new "
                "one with store.transaction()."
            )

    def _read_key(self, key: str) -> str:
        if self._finished:
            self._check_open()
        if type(key) is not str or key not in _known_keys:
            key = check_key(key)
        return key

    def _op_read(self, key: str) -> Op:
        return _new(
            Op, ("get", (key,), (), None, current_agent() if self._base._recording else None)
        )

    def _view(self, key: str, raw: tuple[Any, int] | list[Any]) -> tuple[Any, int]:
        """Record the read version and lay this transaction's own writes over the value."""
        value, version = raw
        first = self._reads.setdefault(key, version)
        if first != version:
            raise ConflictError(
                f"The transaction read {key!r} at version {first}, but another agent has "
                f"since written version {version}, so nothing was committed. Run the "
                "transaction again; store.transaction(fn) re-runs fn by itself.",
                key=key,
                expected=first,
                actual=version,
            )
        pending = self._pending.get(key)
        if pending:
            kind, payload = apply_pending(key, value, pending)
            value = [*value, *payload] if kind == EXTEND else payload
            value = copy_json(value)
        return value, version

    def _write(self, key: str, kind: str, arg: Any) -> None:
        if self._finished:
            self._check_open()
        if type(key) is not str or key not in _known_keys:
            key = check_key(key)
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = [(kind, arg)]
        else:
            pending.append((kind, arg))

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` at commit."""
        self._write(key, "set", to_json(value))

    def append(self, key: str, item: Any) -> None:
        """Append ``item`` to the list at ``key`` at commit."""
        self._write(key, "extend", [to_json(item)])

    def extend(self, key: str, items: Any) -> None:
        """Append ``items`` to the list at ``key`` at commit."""
        self._write(key, "extend", _list_of("extend()", items))

    def increment(self, key: str, amount: int | float = 1) -> None:
        """Add ``amount`` to the number at ``key`` at commit."""
        _check_amount(amount)
        self._write(key, "increment", amount)

    def _op_commit(self) -> Op | None:
        if self._finished:
            self._check_open()
        self._finished = True
        reads = self._reads
        pending = self._pending
        keys = tuple(sorted({**pending, **reads}))
        if not keys:
            return None
        # The pending lists go into the op as they are: the transaction is
        # finished, so nothing appends to them any more.
        args = tuple([(reads.get(key), pending.get(key, ())) for key in keys])
        return _new(Op, ("commit", keys, args, None, current_agent()))

    def _done_commit(self, op: Op, versions: dict[str, int]) -> None:
        # What _tracks and _saw do for each key, in one loop (a transaction's hot path).
        agent = op.agent
        if agent is None:
            return
        reads = self._reads
        reducers = self._base._reducers
        seen = self._base._seen
        for key in op.keys or ():
            if reducers.get(key, "last_value") == "last_value":
                version = versions[key] if key in versions else reads.get(key, 0)
                if seen.get((agent, key), -1) < version:
                    seen[(agent, key)] = version

    def _abandon(self) -> None:
        self._finished = True
        self._pending.clear()
        self._end()

    def _end(self) -> None:
        """Close the backend's database transaction (if any): the transaction is over."""
        session, self._session = self._session, None
        if session is not None:
            session.close()


class Transaction(_TransactionBase):
    """An optimistic, all-or-nothing transaction on a :class:`Store`.

    Reads go to the store and remember each key's version; writes are
    buffered (and visible to this transaction's own reads). ``commit`` checks
    that no key read has changed and applies every write in one atomic step,
    or raises ``ConflictError`` and writes nothing.
    """

    __slots__ = ()
    _store: Store

    def _send(self, op: Op) -> Any:
        session = self._session
        if session is None:
            return self._store._run(op)
        if _hooks._scheduler is not None:  # an exploration is running
            _announce(op)
        return session.execute(op)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` as this transaction sees it (its own writes included)."""
        key = self._read_key(key)
        fast = self._fast
        if fast is not None and _hooks._scheduler is None:
            value, version = self._view(key, fast.read(key))
        else:
            value, version = self._view(key, self._send(self._op_read(key)))
        return value if version or key in self._pending else default

    def get_versioned(self, key: str) -> Versioned:
        """``(value, version)`` as this transaction sees it; the version is the one read."""
        key = self._read_key(key)
        fast = self._fast
        if fast is not None and _hooks._scheduler is None:
            return _new(Versioned, self._view(key, fast.read(key)))
        return _new(Versioned, self._view(key, self._send(self._op_read(key))))

    def update(self, key: str, fn: Callable[[Any], Any]) -> Any:
        """Read ``key``, set it to ``fn(value)`` at commit; returns the new value."""
        new = to_json(fn(self.get(key)))
        self.set(key, new)
        return copy_json(new)

    def commit(self) -> None:
        """Apply every buffered write atomically, or raise ``ConflictError`` and write nothing."""
        op = self._op_commit()
        try:
            if op is not None:
                fast = self._fast
                if fast is not None and _hooks._scheduler is None:
                    self._done_commit(op, fast.execute(op))
                else:
                    self._done_commit(op, self._send(op))
        finally:
            if self._session is not None:
                self._end()

    def __enter__(self) -> Transaction:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._abandon()

    async def __aenter__(self) -> None:
        raise UsageError(
            "Attempted to use a sync Store's transaction with 'async with'. Use 'with', "
            "or open the store with open_async_store()."
        )

    async def __aexit__(self, *exc_info: object) -> None:  # pragma: no cover
        return None


class AsyncTransaction(_TransactionBase):
    """An optimistic, all-or-nothing transaction on an :class:`AsyncStore` (see ``Transaction``)."""

    __slots__ = ()
    _store: AsyncStore

    async def _send(self, op: Op) -> Any:
        session = self._session
        if session is None:
            return await self._store._run(op)
        if _hooks._scheduler is not None:  # an exploration is running
            _announce(op)
        return await session.execute(op)

    async def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` as this transaction sees it (its own writes included)."""
        value, version = await self.get_versioned(key)
        return value if version or key in self._pending else default

    async def get_versioned(self, key: str) -> Versioned:
        """``(value, version)`` as this transaction sees it; the version is the one read."""
        key = self._read_key(key)
        fast = self._fast
        if fast is not None and _hooks._scheduler is None:
            return _new(Versioned, self._view(key, fast.read(key)))
        return _new(Versioned, self._view(key, await self._send(self._op_read(key))))

    async def update(self, key: str, fn: Callable[[Any], Any]) -> Any:
        """Read ``key``, set it to ``fn(value)`` at commit; returns the new value."""
        new = to_json(fn(await self.get(key)))
        self.set(key, new)
        return copy_json(new)

    async def commit(self) -> None:
        """Apply every buffered write atomically, or raise ``ConflictError`` and write nothing."""
        op = self._op_commit()
        try:
            if op is not None:
                fast = self._fast
                if fast is not None and _hooks._scheduler is None:
                    self._done_commit(op, fast.execute(op))
                else:
                    self._done_commit(op, await self._send(op))
        finally:
            self._end()

    async def __aenter__(self) -> AsyncTransaction:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()
        else:
            self._abandon()

    def __enter__(self) -> None:
        raise UsageError(
            "Attempted to use an AsyncStore's transaction with 'with'. Use 'async with', "
            "or open the store with open_store()."
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover
        return None


# ---------------------------------------------------------------- opening


def open_store(
    url: str = "memory://",
    *,
    history: History | None = None,
    reducers: Mapping[str, Reducer] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Store:
    """Open a sync store; the URL's scheme picks the backend (``memory://`` is the default).

    ``history`` records every operation as an event (off when ``None``);
    ``reducers`` declares how ``apply`` merges each key; ``max_attempts``
    bounds the retries of ``update`` and ``transaction(fn)``.
    """
    checked = _check_reducers(reducers)
    return Store(
        open_backend(url, history=history),
        url=url,
        reducers=checked,
        max_attempts=max_attempts,
    )


def open_async_store(
    url: str = "memory://",
    *,
    history: History | None = None,
    reducers: Mapping[str, Reducer] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> AsyncStore:
    """Open an asyncio store; the same arguments as :func:`open_store`."""
    checked = _check_reducers(reducers)
    return AsyncStore(
        open_async_backend(url, history=history),
        url=url,
        reducers=checked,
        max_attempts=max_attempts,
    )
