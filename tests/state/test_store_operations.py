"""Every single-key operation, on the sync and the asyncio store alike."""

from __future__ import annotations

from typing import Any

import pytest

import racefree
from racefree import ConflictError, UsageError, Versioned, WrongTypeError


def test_get_of_a_key_never_written_is_the_default_at_version_0(any_store: Any) -> None:
    assert any_store.get("missing") is None
    assert any_store.get("missing", "fallback") == "fallback"
    assert any_store.get_versioned("missing") == Versioned(None, 0)
    assert any_store.version("missing") == 0


def test_set_returns_the_new_version_and_get_reads_it(any_store: Any) -> None:
    assert any_store.set("plan", {"steps": ["search"]}) == 1
    assert any_store.set("plan", {"steps": ["search", "write"]}) == 2
    assert any_store.get("plan") == {"steps": ["search", "write"]}
    assert any_store.get_versioned("plan") == Versioned({"steps": ["search", "write"]}, 2)


def test_a_key_set_to_none_is_written_and_not_the_default(any_store: Any) -> None:
    any_store.set("k", None)
    assert any_store.get("k", "fallback") is None
    assert any_store.version("k") == 1


def test_append_returns_each_item_index(any_store: Any) -> None:
    assert any_store.append("history", "a") == 0
    assert any_store.append("history", "b") == 1
    assert any_store.get("history") == ["a", "b"]
    assert any_store.version("history") == 2


def test_extend_adds_items_contiguously_and_returns_the_first_index(any_store: Any) -> None:
    any_store.append("history", "a")
    assert any_store.extend("history", ["b", "c"]) == 1
    assert any_store.extend("history", ()) == 3
    assert any_store.get("history") == ["a", "b", "c"]


def test_append_and_extend_start_a_list_on_a_null_key(any_store: Any) -> None:
    any_store.set("history", None)
    assert any_store.append("history", 1) == 0
    assert any_store.get("history") == [1]


def test_increment_adds_to_a_number_starting_from_zero(any_store: Any) -> None:
    assert any_store.increment("count") == 1
    assert any_store.increment("count", 5) == 6
    assert any_store.increment("count", 0.5) == 6.5
    assert any_store.version("count") == 3


def test_update_replaces_the_value_with_fn_of_a_copy(any_store: Any) -> None:
    seen: list[Any] = []

    def add_step(plan: Any) -> Any:
        seen.append(plan)
        plan = plan or {"steps": []}
        plan["steps"].append("write")
        return plan

    assert any_store.update("plan", add_step) == {"steps": ["write"]}
    assert any_store.update("plan", add_step) == {"steps": ["write", "write"]}
    assert seen[0] is None
    seen[1]["steps"].clear()  # fn got a copy: mutating it later changes nothing
    assert any_store.get("plan") == {"steps": ["write", "write"]}


def test_update_that_raises_writes_nothing(any_store: Any) -> None:
    any_store.set("plan", 1)

    def boom(value: Any) -> Any:
        raise RuntimeError("model call failed")

    with pytest.raises(RuntimeError, match=r"^model call failed$"):
        any_store.update("plan", boom)
    assert any_store.get_versioned("plan") == Versioned(1, 1)


def test_update_must_not_call_the_store_from_inside_fn(store_url: str) -> None:
    store = racefree.open_store(store_url)
    with pytest.raises(
        UsageError,
        match=r"^The store was called \(get\) from inside a function the store is running "
        r"\(an update function or a custom reducer\)\. Such a function must only compute "
        r"the new value from the one it is given; do other store calls before or after\.$",
    ):
        store.update("k", lambda v: store.get("other"))
    assert store.version("k") == 0
    assert store.set("k", 1) == 1  # the store is still usable


def test_claim_is_true_for_the_first_owner_only(any_store: Any) -> None:
    assert any_store.claim("task:42", "Researcher") is True
    assert any_store.claim("task:42", "Writer") is False
    assert any_store.claim("task:42", "Researcher") is True  # already yours
    assert any_store.get("task:42") == "Researcher"
    any_store.set("task:42", None)  # release
    assert any_store.claim("task:42", "Writer") is True


def test_compare_and_set_writes_only_at_the_expected_version(any_store: Any) -> None:
    assert any_store.compare_and_set("plan", "v1", expected_version=0) == 1
    assert any_store.compare_and_set("plan", "v2", expected_version=1) == 2
    with pytest.raises(
        ConflictError,
        match=r"^The key 'plan' is at version 2, not the expected version 1: another agent "
        r"wrote it after you read it\. Nothing was written; re-read it with "
        r"get_versioned\('plan'\) and decide again, or use update\(\), which retries by "
        r"itself\.$",
    ) as caught:
        any_store.compare_and_set("plan", "stale", expected_version=1)
    assert (caught.value.key, caught.value.expected, caught.value.actual) == ("plan", 1, 2)
    assert any_store.get_versioned("plan") == Versioned("v2", 2)


def test_snapshot_holds_every_key_with_its_version(any_store: Any) -> None:
    any_store.set("b", 1)
    any_store.append("a", "x")
    any_store.append("a", "y")
    assert any_store.snapshot() == {"a": Versioned(["x", "y"], 2), "b": Versioned(1, 1)}
    assert list(any_store.snapshot()) == ["a", "b"]


def test_versions_lists_every_written_key(any_store: Any) -> None:
    assert any_store.versions() == {}
    any_store.set("b", 1)
    any_store.set("b", 2)
    any_store.increment("a")
    assert any_store.versions() == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("prepare", "call", "message"),
    [
        (
            lambda s: s.set("k", 5),
            lambda s: s.append("k", 1),
            r"^The key 'k' holds a number, but append needs a list \(or a key never "
            r"written\)\. Nothing was written; use another key, or an operation that fits "
            r"a number\.$",
        ),
        (
            lambda s: s.set("k", {"a": 1}),
            lambda s: s.extend("k", [1]),
            r"^The key 'k' holds a dict, but extend needs a list .*",
        ),
        (
            lambda s: s.set("k", "text"),
            lambda s: s.increment("k"),
            r"^The key 'k' holds a string, but increment needs a number \(or a key never "
            r"written\)\. Nothing was written; use another key, or an operation that fits "
            r"a string\.$",
        ),
        (
            lambda s: s.set("k", True),
            lambda s: s.increment("k"),
            r"^The key 'k' holds a boolean, but increment needs a number .*",
        ),
    ],
)
def test_an_operation_on_the_wrong_kind_of_value_raises_and_writes_nothing(
    any_store: Any, prepare: Any, call: Any, message: str
) -> None:
    prepare(any_store)
    before = any_store.snapshot()
    with pytest.raises(WrongTypeError, match=message) as caught:
        call(any_store)
    assert caught.value.key == "k"
    assert any_store.snapshot() == before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda s: s.increment("k", "1"),
            r"^increment\(\) needs a number to add, not '1'\. Pass an int or a float\.$",
        ),
        (
            lambda s: s.increment("k", True),
            r"^increment\(\) needs a number to add, not True\. Pass an int or a float\.$",
        ),
        (
            lambda s: s.increment("k", float("inf")),
            r"^increment\(\) needs a finite number, not inf\. Pass an int or a float\.$",
        ),
        (
            lambda s: s.extend("k", "abc"),
            r"^extend\(\) takes a list of items, not str\. To add a single item use "
            r"append\(\)\.$",
        ),
        (
            lambda s: s.update("k", 5),
            r"^update\(\) needs a function fn\(current\) -> new value, not 5\.$",
        ),
        (
            lambda s: s.claim("k", ""),
            r"^claim\(\) needs the owner's name as a non-empty string, not ''\.$",
        ),
        (
            lambda s: s.compare_and_set("k", 1, expected_version=-1),
            r"^expected_version must be an int >= 0 \(0 = never written\), not -1\. Pass the "
            r"version that get_versioned\(\) returned\.$",
        ),
        (
            lambda s: s.append("k", 1, idempotency_key=""),
            r"^The idempotency key '' is not a non-empty string\. Pass a string that names "
            r"this one write \(a request id, a message id\) and reuse it only to retry that "
            r"write\.$",
        ),
    ],
)
def test_bad_arguments_raise_usage_error_and_write_nothing(
    any_store: Any, call: Any, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        call(any_store)
    assert any_store.versions() == {}


def test_store_states_its_guarantee_and_url() -> None:
    with racefree.open_store() as store:
        assert store.url == "memory://"
        assert store.guarantee == "Safe across the threads and asyncio tasks of one process."
        assert repr(store) == "<Store 'memory://'>"
        assert store.history is None


def test_each_memory_store_is_private() -> None:
    first, second = racefree.open_store(), racefree.open_store()
    first.set("k", 1)
    assert second.get("k") is None


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(UsageError, match=r"^max_attempts must be a positive int, not 0\.$"):
        racefree.open_store(max_attempts=0)
