"""Transactions across keys: all or nothing, optimistic, re-run on conflict."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import racefree
from racefree import ConflictError, ContentionError, UsageError, Versioned


def seeded(url: str) -> racefree.Store:
    store = racefree.open_store(url)
    store.set("balance:a", 100)
    store.set("balance:b", 0)
    store.append("log", "opened")
    return store


def test_a_transaction_moves_value_between_keys_atomically(store_url: str) -> None:
    store = seeded(store_url)
    with store.transaction() as tx:
        a = tx.get("balance:a")
        tx.set("balance:a", a - 30)
        tx.increment("balance:b", 30)
        tx.append("log", "moved 30")
        assert store.get("balance:a") == 100  # nothing visible before commit
    assert store.get("balance:a") == 70
    assert store.get("balance:b") == 30
    assert store.get("log") == ["opened", "moved 30"]
    assert store.versions() == {"balance:a": 2, "balance:b": 2, "log": 2}


def test_a_transaction_sees_its_own_writes(store_url: str) -> None:
    store = seeded(store_url)
    with store.transaction() as tx:
        tx.append("log", "one")
        tx.extend("log", ["two"])
        assert tx.get("log") == ["opened", "one", "two"]
        tx.increment("new")
        tx.increment("new", 2)
        assert tx.get("new") == 3
        assert tx.get_versioned("new") == Versioned(3, 0)
        assert tx.update("balance:b", lambda b: b + 5) == 5
        assert tx.get("untouched", "default") == "default"
    assert store.get("log") == ["opened", "one", "two"]
    assert store.get("new") == 3
    assert store.get("balance:b") == 5


def test_an_exception_inside_leaves_state_and_versions_exactly_as_they_were(store_url: str) -> None:
    store = seeded(store_url)
    before = store.snapshot()
    with pytest.raises(RuntimeError, match=r"^tool failed$"), store.transaction() as tx:
        tx.set("balance:a", 0)
        tx.increment("balance:b", 100)
        tx.append("log", "half done")
        tx.set("brand new", 1)
        raise RuntimeError("tool failed")
    assert store.snapshot() == before


def test_a_transaction_whose_read_changed_raises_conflict_and_writes_nothing(
    store_url: str,
) -> None:
    store = seeded(store_url)
    with (
        pytest.raises(
            ConflictError,
            match=r"^The transaction read 'balance:a' at version 1, but another agent has since "
            r"written version 2, so nothing was committed\. Run the transaction again; "
            r"store\.transaction\(fn\) re-runs fn by itself\.$",
        ) as caught,
        store.transaction() as tx,
    ):
        a = tx.get("balance:a")
        store.set("balance:a", 5)  # another agent, between our read and our commit
        tx.set("balance:a", a - 30)
        tx.set("balance:b", 30)
    assert (caught.value.key, caught.value.expected, caught.value.actual) == ("balance:a", 1, 2)
    assert store.get("balance:a") == 5
    assert store.get_versioned("balance:b") == Versioned(0, 1)


def test_a_second_read_of_a_changed_key_fails_at_once(store_url: str) -> None:
    store = seeded(store_url)
    with pytest.raises(ConflictError), store.transaction() as tx:
        tx.get("balance:a")
        store.set("balance:a", 5)
        tx.get("balance:a")
        pytest.fail("the second read should have raised")


def test_blind_writes_do_not_conflict(store_url: str) -> None:
    store = seeded(store_url)
    with store.transaction() as tx:
        tx.append("log", "mine")
        store.append("log", "theirs")
        tx.increment("balance:b")
        store.increment("balance:b")
    assert store.get("log") == ["opened", "theirs", "mine"]
    assert store.get("balance:b") == 2


def test_transaction_fn_is_re_run_on_conflict(store_url: str) -> None:
    store = seeded(store_url)
    attempts: list[int] = []

    def transfer(tx: racefree.Transaction) -> str:
        attempts.append(len(attempts))
        a = tx.get("balance:a")
        if len(attempts) == 1:
            store.set("balance:a", 50)  # someone interferes once
        tx.set("balance:a", a - 30)
        tx.increment("balance:b", 30)
        return "done"

    assert store.transaction(transfer) == "done"
    assert attempts == [0, 1]
    assert store.get("balance:a") == 20
    assert store.get("balance:b") == 30


def test_transaction_fn_gives_up_after_max_attempts(store_url: str) -> None:
    store = seeded(store_url)

    def always_spoilt(tx: racefree.Transaction) -> None:
        tx.get("balance:a")
        store.increment("balance:a")
        tx.set("balance:b", 1)

    with pytest.raises(
        ContentionError,
        match=r"^Gave up on the transaction after 3 attempts: each time another agent wrote "
        r"'balance:a' first \(last seen at version 4, expected 3\)\. .*",
    ) as caught:
        store.transaction(always_spoilt, max_attempts=3)
    assert caught.value.attempts == 3
    assert store.get("balance:b") == 0


def test_an_error_inside_transaction_fn_is_not_retried(store_url: str) -> None:
    store = seeded(store_url)
    calls: list[int] = []

    def broken(tx: racefree.Transaction) -> None:
        calls.append(1)
        tx.set("balance:a", 0)
        raise KeyError("x")

    with pytest.raises(KeyError):
        store.transaction(broken)
    assert calls == [1]
    assert store.get("balance:a") == 100


def test_a_finished_transaction_cannot_be_reused(store_url: str) -> None:
    store = seeded(store_url)
    with store.transaction() as tx:
        tx.set("k", 1)
    with pytest.raises(
        UsageError,
        match=r"^This transaction has already committed or been abandoned\. Start a new one "
        r"with store\.transaction\(\)\.$",
    ):
        tx.set("k", 2)
    assert store.get("k") == 1


def test_a_read_only_transaction_is_validated_at_commit(store_url: str) -> None:
    store = seeded(store_url)
    with pytest.raises(ConflictError), store.transaction() as tx:
        tx.get("balance:a")
        tx.get("balance:b")
        store.set("balance:b", 9)


def test_an_empty_transaction_is_fine(store_url: str) -> None:
    store = seeded(store_url)
    with store.transaction():
        pass
    assert store.version("log") == 1


def test_mixing_sync_and_async_transactions_fails_with_a_sentence(store_url: str) -> None:
    store = racefree.open_store(store_url)
    astore = racefree.open_async_store(store_url)

    async def main() -> None:
        with pytest.raises(
            UsageError,
            match=r"^Attempted to use a sync Store's transaction with 'async with'\. Use "
            r"'with', or open the store with open_async_store\(\)\.$",
        ):
            async with store.transaction():  # type: ignore[attr-defined]
                pass

    asyncio.run(main())
    with (
        pytest.raises(
            UsageError,
            match=r"^Attempted to use an AsyncStore's transaction with 'with'\. Use 'async "
            r"with', or open the store with open_store\(\)\.$",
        ),
        astore.transaction(),  # type: ignore[attr-defined]
    ):
        pass


def test_async_transactions_commit_abort_and_retry(store_url: str) -> None:
    async def main() -> None:
        store = racefree.open_async_store(store_url)
        await store.set("a", 1)
        async with store.transaction() as tx:
            value = await tx.get("a")
            tx.set("a", value + 1)
            tx.append("log", "bumped")
            assert await tx.update("b", lambda b: (b or 0) + 10) == 10
        assert await store.snapshot() == {
            "a": Versioned(2, 2),
            "b": Versioned(10, 1),
            "log": Versioned(["bumped"], 1),
        }
        before = await store.snapshot()
        with pytest.raises(ZeroDivisionError):
            async with store.transaction() as tx:
                tx.set("a", 100)
                1 / 0  # noqa: B018
        assert await store.snapshot() == before

        attempts: list[int] = []

        async def bump(tx: racefree.AsyncTransaction) -> int:
            attempts.append(1)
            a = await tx.get("a")
            if len(attempts) == 1:
                await store.set("a", 40)
            tx.set("a", a + 1)
            return int(a + 1)

        assert await store.transaction(bump) == 41
        assert len(attempts) == 2

        async def spoilt(tx: racefree.AsyncTransaction) -> None:
            await tx.get("a")
            await store.increment("a")
            tx.set("b", 0)

        with pytest.raises(ContentionError):
            await store.transaction(spoilt, max_attempts=2)
        with pytest.raises(ConflictError):
            async with store.transaction() as tx:
                await tx.get_versioned("a")
                await store.increment("a")
                tx.set("b", 0)
        assert await store.get("b") == 10
        await store.aclose()

    asyncio.run(main())


def _watch_list_reads(backend: str, store: racefree.Store, redis_url: str) -> Any:
    """A function that returns how many times the store read a whole list since the call."""
    if backend == "redis":
        import redis

        from racefree.state.backends.redis import parse_url

        admin = redis.Redis.from_url(parse_url(redis_url)[0])
        admin.config_resetstat()
        return lambda: admin.info("commandstats").get("cmdstat_lrange", {}).get("calls", 0)
    if backend == "sqlite":
        statements: list[str] = []
        store._backend._connection().set_trace_callback(statements.append)  # type: ignore[attr-defined]
        return lambda: sum(s.startswith("SELECT item FROM racefree_items") for s in statements)
    return lambda: 0  # memory keeps the list in place: nothing to read


def test_appends_in_transactions_and_the_append_reducer_never_read_the_list(
    backend: str, store_url: str
) -> None:
    store = racefree.open_store(store_url, reducers={"log": "append"})
    store.extend("log", list(range(1_000)))
    store.set("turn", 0)
    reads = _watch_list_reads(backend, store, store_url)
    for i in range(10):
        with store.transaction() as tx:
            turn = tx.get("turn")
            tx.set("turn", turn + 1)
            tx.append("log", {"turn": turn})
            tx.extend("log", ["a", "b"])
        store.apply({"log": [f"applied {i}"]})
    assert reads() == 0
    expected = list(range(1_000))
    for i in range(10):
        expected += [{"turn": i}, "a", "b", f"applied {i}"]
    assert store.get_versioned("log") == (expected, 21)
    assert store.get_versioned("turn") == (10, 11)
    reads = _watch_list_reads(backend, store, store_url)
    with store.transaction() as tx:  # a set first: the old items do not matter either
        tx.set("log", ["fresh"])
        tx.append("log", "after")
    assert reads() == 0
    assert store.get_versioned("log") == (["fresh", "after"], 22)
