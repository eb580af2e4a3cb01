"""Choosing a backend by URL, and the backend contract seen from the store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import racefree
from racefree import ContentionError, UnknownBackendError
from racefree.history import History
from racefree.state._core import Op
from racefree.state.backends import BACKENDS
from racefree.state.backends.base import AsyncBackend, Backend, RetryOperation
from racefree.state.backends.memory import AsyncMemoryBackend, MemoryBackend


@pytest.mark.parametrize("opener", [racefree.open_store, racefree.open_async_store])
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgres://db/agents", "'postgres://db/agents'"),
        ("mongodb://:secret@cache:27017/0", r"'mongodb://\*\*\*@cache:27017/0'"),
        ("memory", "'memory'"),
    ],
)
def test_an_unknown_scheme_names_the_known_ones(opener: Any, url: str, shown: str) -> None:
    with pytest.raises(
        UnknownBackendError,
        match=rf"^No store backend serves the URL {shown}\. Known schemes: memory://, redis://, "
        r"rediss://, sqlite://; open "
        r"one of them, for example open_store\('memory://'\)\.$",
    ) as caught:
        opener(url)
    assert isinstance(caught.value, LookupError)


def test_memory_is_the_default_scheme() -> None:
    assert set(BACKENDS) >= {"memory", "redis", "rediss", "sqlite"}
    assert racefree.open_store().url == "memory://"
    assert racefree.open_store("MEMORY://").get("k") is None


def test_an_unknown_reducer_name_is_refused_before_opening() -> None:
    with pytest.raises(
        racefree.UsageError,
        match=r"^The reducer 'sum' declared for key 'tokens' is not known\. Use one of add, "
        r"append, last_value, merge, or a function fn\(current, delta\) -> new value\.$",
    ):
        racefree.open_store(reducers={"tokens": "sum"})


class FlakyBackend(Backend):
    """An optimistic backend that loses the first ``failures`` attempts of every op."""

    schemes = ("flaky",)
    guarantee = "For tests."
    optimistic = True

    def __init__(self, failures: int) -> None:
        self.inner = MemoryBackend()
        self.failures = failures
        self.calls: list[str] = []

    @property
    def history(self) -> History | None:
        return None

    def execute(self, op: Op) -> Any:
        self.calls.append(op.name)
        if self.calls.count(op.name) <= self.failures:
            raise RetryOperation("counter", 3, 4)
        return self.inner.execute(op)

    def close(self) -> None:
        pass


class AsyncFlakyBackend(AsyncBackend):
    schemes = ("flaky",)
    guarantee = "For tests."
    optimistic = True

    def __init__(self, failures: int) -> None:
        self.sync = FlakyBackend(failures)

    @property
    def history(self) -> History | None:
        return None

    async def execute(self, op: Op) -> Any:
        await asyncio.sleep(0)
        return self.sync.execute(op)

    async def aclose(self) -> None:
        pass


def test_an_optimistic_backend_is_retried_until_it_succeeds() -> None:
    backend = FlakyBackend(failures=3)
    store = racefree.Store(backend, max_attempts=4)
    assert store.update("counter", lambda v: (v or 0) + 1) == 1
    assert backend.calls == ["update"] * 4
    assert store.get("counter") == 1


CONTENTION = (
    r"^Gave up on update of 'counter' after 4 attempts: each time another agent wrote "
    r"'counter' first \(last seen at version 4, expected 3\)\. Reduce the contention "
    r"\(fewer writers on one key, or a reducer such as add or append that never conflicts\) "
    r"or pass a larger max_attempts\.$"
)


def test_an_optimistic_backend_that_keeps_conflicting_gives_up_with_contention_error() -> None:
    store = racefree.Store(FlakyBackend(failures=4), max_attempts=4)
    with pytest.raises(ContentionError, match=CONTENTION) as caught:
        store.update("counter", lambda v: (v or 0) + 1)
    assert (caught.value.attempts, caught.value.key) == (4, "counter")
    assert isinstance(caught.value, racefree.ConflictError)


def test_the_async_store_retries_the_same_way() -> None:
    async def main() -> None:
        store = racefree.AsyncStore(AsyncFlakyBackend(failures=3), max_attempts=4)
        assert await store.update("counter", lambda v: (v or 0) + 1) == 1
        failing = racefree.AsyncStore(AsyncFlakyBackend(failures=4), max_attempts=4)
        with pytest.raises(ContentionError, match=CONTENTION):
            await failing.update("counter", lambda v: (v or 0) + 1)

    asyncio.run(main())


def test_memory_backends_fulfil_both_flavours_of_the_contract() -> None:
    assert issubclass(MemoryBackend, Backend)
    assert issubclass(AsyncMemoryBackend, AsyncBackend)
    assert MemoryBackend.optimistic is False


def test_an_async_store_refuses_a_plain_with() -> None:
    store = racefree.open_async_store()
    with (
        pytest.raises(
            racefree.UsageError,
            match=r"^Attempted to use an AsyncStore with 'with'\. Use 'async with' \(or open a "
            r"sync store with open_store\(\)\)\.$",
        ),
        store,  # type: ignore[attr-defined]
    ):
        pass


def test_stores_close_through_their_context_managers() -> None:
    async def main() -> None:
        async with racefree.open_async_store() as store:
            await store.set("k", 1)
            assert await store.get("k") == 1
            assert repr(store) == "<AsyncStore 'memory://'>"

    asyncio.run(main())
    with racefree.open_store() as sync_store:
        sync_store.set("k", 1)


def test_an_async_store_works_in_a_second_asyncio_run(store_url: str) -> None:
    store = racefree.open_async_store(store_url, reducers={"log": "append"})

    async def first() -> None:
        assert await store.increment("count") == 1
        await store.apply({"log": ["first"]})

    async def second() -> list[str]:
        assert await store.increment("count") == 2
        await store.apply({"log": ["second"]})
        log: list[str] = await store.get("log")
        return log

    asyncio.run(first())
    assert asyncio.run(second()) == ["first", "second"]

    async def close() -> None:
        await store.aclose()

    asyncio.run(close())


def test_an_async_redis_store_refuses_a_second_loop_that_runs_at_the_same_time(
    new_url: Any, backend: str
) -> None:
    import threading

    if backend != "redis":
        pytest.skip("only redis.asyncio ties connections to one loop")
    store = racefree.open_async_store(new_url())
    inside = threading.Event()
    leave = threading.Event()

    async def hold() -> None:
        try:
            await store.increment("count")
        finally:
            inside.set()  # a failed increment must fail the test, not hang it
        while not leave.is_set():  # keep this loop running while the other one tries
            await asyncio.sleep(0.01)
        await store.aclose()

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    inside.wait()
    try:
        with pytest.raises(
            racefree.UsageError,
            match=r"^The asyncio Redis store redis://.+ is in use by another event loop that is "
            r"still running\. Use one store per event loop: open another with "
            r"open_async_store\(\) in this loop \(or thread\)\.$",
        ):
            asyncio.run(store.get("count"))
    finally:
        leave.set()
        holder.join()
