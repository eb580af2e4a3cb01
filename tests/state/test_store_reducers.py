"""apply(delta): one agent's whole update merged atomically through per-key reducers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import racefree
from racefree import ConcurrentWriteError, UsageError, WrongTypeError, agent


def test_apply_merges_every_key_through_its_reducer(open_any: Any) -> None:
    store = open_any(
        reducers={
            "messages": "append",
            "tokens": "add",
            "facts": "merge",
            "answer": "last_value",
            "best": lambda current, new: max(current or 0, new),
        }
    )
    first = {"messages": ["q"], "tokens": 10, "facts": {"a": 1}, "answer": "x", "best": 3}
    assert store.apply(first) == {"answer": 1, "best": 1, "facts": 1, "messages": 1, "tokens": 1}
    second = {"messages": ["r", "s"], "tokens": 5, "facts": {"b": 2}, "answer": "y", "best": 2}
    assert store.apply(second) == {
        "answer": 2,
        "best": 2,
        "facts": 2,
        "messages": 2,
        "tokens": 2,
    }
    assert {key: v.value for key, v in store.snapshot().items()} == {
        "messages": ["q", "r", "s"],
        "tokens": 15,
        "facts": {"a": 1, "b": 2},
        "answer": "y",
        "best": 3,
    }


def test_a_key_without_a_reducer_is_last_value(store_url: str) -> None:
    store = racefree.open_store(store_url, reducers={"tokens": "add"})
    assert store.reducer("answer") == "last_value"
    assert store.reducer("tokens") == "add"
    assert store.reducers == {"tokens": "add"}


def test_apply_of_nothing_writes_nothing(any_store: Any) -> None:
    assert any_store.apply({}) == {}
    assert any_store.versions() == {}


def test_apply_is_all_or_nothing_when_one_key_fails(any_store: Any) -> None:
    any_store.set("tokens", "not a number")
    any_store.apply({"log": ["kept"]})
    before = any_store.snapshot()
    with pytest.raises(WrongTypeError, match=r"^The key 'tokens' holds a string, but apply "):
        any_store.apply({"log": ["lost?"], "tokens": 3, "answer": "x"})
    assert any_store.snapshot() == before


def test_a_custom_reducer_that_raises_writes_nothing(open_any: Any) -> None:
    def picky(current: Any, new: Any) -> Any:
        raise ValueError("no")

    store = open_any(reducers={"k": picky, "log": "append"})
    with pytest.raises(ValueError, match=r"^no$"):
        store.apply({"log": [1], "k": 1})
    assert store.versions() == {}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "log",
            "item",
            r"^apply\(\) got 'item' for 'log', whose reducer is append: give a list of the "
            r"items to append, such as \[item\]\. Nothing was written\.$",
        ),
        (
            "tokens",
            True,
            r"^apply\(\) got True for 'tokens', whose reducer is add: give a number to add\. "
            r"Nothing was written\.$",
        ),
        (
            "notes",
            [1],
            r"^apply\(\) got \[1\] for 'notes', whose reducer is merge: give a dict to merge "
            r"into the stored dict\. Nothing was written\.$",
        ),
    ],
)
def test_a_delta_value_that_does_not_fit_the_reducer_is_refused(
    any_store: Any, key: str, value: Any, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        any_store.apply({key: value})
    assert any_store.versions() == {}


def test_apply_needs_a_mapping(any_store: Any) -> None:
    with pytest.raises(UsageError, match=r"^apply\(\) takes a dict of key -> value, not list\.$"):
        any_store.apply([("k", 1)])


LAST_VALUE = (
    r"^Agents 'Researcher' and 'Writer' both wrote the last-value key 'answer': 'Writer' "
    r"based its write on version 0, but 'Researcher' has since written version 1, so one "
    r"answer would be lost\. Nothing was written; give each agent its own key, declare a "
    r"reducer that combines both writes \(append, add, merge\), or re-read 'answer' and "
    r"decide again\.$"
)


def test_last_value_refuses_a_writer_that_did_not_see_the_previous_write(store_url: str) -> None:
    store = racefree.open_store(store_url)
    with agent("Writer"):
        assert store.get("answer") is None  # Writer saw version 0
    with agent("Researcher"):
        store.apply({"answer": "from Researcher"})
        store.apply({"answer": "Researcher again"})  # its own write: fine
    with (
        agent("Writer"),
        pytest.raises(
            ConcurrentWriteError, match=LAST_VALUE.replace("version 1", "version 2")
        ) as caught,
    ):
        store.apply({"answer": "from Writer"})
    assert caught.value.key == "answer"
    assert caught.value.writers == ("Researcher", "Writer")
    assert store.get_versioned("answer") == ("Researcher again", 2)
    with agent("Writer"):
        store.get("answer")  # now Writer has seen version 2
        assert store.apply({"answer": "from Writer"}) == {"answer": 3}


def test_last_value_accepts_an_explicit_expected_version(store_url: str) -> None:
    store = racefree.open_store(store_url)
    with agent("Researcher"):
        store.apply({"answer": "a"})
    with agent("Writer"):
        assert store.apply({"answer": "b"}, expected={"answer": 1}) == {"answer": 2}
    with agent("Researcher"), pytest.raises(ConcurrentWriteError):
        store.apply({"answer": "c"}, expected={"answer": 1})


def test_a_snapshot_counts_as_seeing_every_key(store_url: str) -> None:
    store = racefree.open_store(store_url)
    with agent("Researcher"):
        store.apply({"answer": "a"})
    with agent("Writer"):
        store.snapshot()
        assert store.apply({"answer": "b"}) == {"answer": 2}


def test_last_value_error_fires_on_a_real_concurrent_double_write(store_url: str) -> None:
    store = racefree.open_store(store_url)
    store.set("answer", "draft")
    both_read = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def run(name: str) -> None:
        with agent(name):
            store.get("answer")
            both_read.wait()
            try:
                outcomes[name] = store.apply({"answer": f"by {name}"})
            except ConcurrentWriteError as exc:
                outcomes[name] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in ("Researcher", "Writer")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [o for o in outcomes.values() if isinstance(o, ConcurrentWriteError)]
    wins = [o for o in outcomes.values() if not isinstance(o, ConcurrentWriteError)]
    assert wins == [{"answer": 2}]
    assert len(errors) == 1
    winner = store.get("answer").removeprefix("by ")
    loser = ({"Researcher", "Writer"} - {winner}).pop()
    assert errors[0].writers == (winner, loser)
    assert store.version("answer") == 2


def test_apply_of_keys_with_quotes_and_backslashes_replays_its_result(open_any: Any) -> None:
    odd = 'say "hi" \\ bye'
    store = open_any(reducers={odd: "add", "log": "append"})
    first = store.apply({odd: 2, "log": ["x"]}, idempotency_key="once")
    assert first == {odd: 1, "log": 1}
    assert store.apply({odd: 2, "log": ["x"]}, idempotency_key="once") == first
    assert (store.get(odd), store.get("log")) == (2, ["x"])
