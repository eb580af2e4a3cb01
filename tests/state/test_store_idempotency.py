"""Idempotency keys: a retried write is applied once and returns the first result."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import racefree
from racefree import UsageError


def test_a_retried_append_is_applied_once_and_returns_the_first_index(any_store: Any) -> None:
    any_store.append("history", "before")
    assert any_store.append("history", "hello", idempotency_key="msg-1") == 1
    any_store.append("history", "after")
    assert any_store.append("history", "hello", idempotency_key="msg-1") == 1
    assert any_store.get("history") == ["before", "hello", "after"]
    assert any_store.version("history") == 3


def test_a_retried_extend_turn_and_apply_are_applied_once(any_store: Any) -> None:
    assert any_store.extend("history", [1, 2], idempotency_key="e") == 0
    assert any_store.extend("history", [1, 2], idempotency_key="e") == 0
    turn = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert any_store.append_turn("history", turn, idempotency_key="t") == 2
    assert any_store.append_turn("history", turn, idempotency_key="t") == 2
    assert any_store.apply({"tokens": 5, "log": ["x"]}, idempotency_key="a") == {
        "log": 1,
        "tokens": 1,
    }
    result = any_store.apply({"tokens": 5, "log": ["x"]}, idempotency_key="a")
    assert result == {"log": 1, "tokens": 1}
    result["log"] = 99  # the returned dict is the caller's own
    assert any_store.apply({"tokens": 5, "log": ["x"]}, idempotency_key="a")["log"] == 1
    assert any_store.get("history") == [1, 2, *turn]
    assert any_store.get("tokens") == 5
    assert any_store.get("log") == ["x"]


def test_a_write_that_failed_can_be_retried_with_the_same_key(any_store: Any) -> None:
    any_store.set("history", 5)
    with pytest.raises(racefree.WrongTypeError):
        any_store.append("history", "x", idempotency_key="k")
    any_store.set("history", [])
    assert any_store.append("history", "x", idempotency_key="k") == 0
    assert any_store.get("history") == ["x"]


def test_reusing_an_idempotency_key_for_another_write_is_refused(any_store: Any) -> None:
    any_store.append("history", "x", idempotency_key="k")
    with pytest.raises(
        UsageError,
        match=r"^The idempotency key 'k' was first used for append on 'history', not for "
        r"extend on 'notes'\. Use a fresh idempotency key for each distinct write, and the "
        r"same one only to retry that write\.$",
    ):
        any_store.extend("notes", [1], idempotency_key="k")
    assert any_store.versions() == {"history": 1}


def test_concurrent_retries_of_one_write_apply_it_once(store_url: str) -> None:
    store = racefree.open_store(store_url)
    start = threading.Barrier(8)
    results: list[int] = []

    def retry() -> None:
        start.wait()
        results.append(store.append("history", "once", idempotency_key="req-7"))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0] * 8
    assert store.get("history") == ["once"]
