"""Keys and values: what the store accepts, and that stored values are its own."""

from __future__ import annotations

import datetime
import enum
from collections import OrderedDict
from typing import Any

import pytest

import racefree
from racefree import InvalidKeyError, NotSerializableError


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "",
            r"^The key is an empty string\. Name keys with non-empty strings such as "
            r"'conversation_history'\.$",
        ),
        (
            42,
            r"^The key 42 is a int, not a str\. Name keys with strings such as "
            r"'conversation_history'\.$",
        ),
        (
            ("a",),
            r"^The key \('a',\) is a tuple, not a str\. .*",
        ),
        (
            "a\nb",
            r"^The key 'a\\nb' contains the unprintable character '\\n'\. Use printable "
            r"characters only\.$",
        ),
        (
            "k" * 300,
            r"^The key 'k{40}'\.\.\. is 300 characters long, more than the 256 every backend "
            r"accepts\. Use a shorter name\.$",
        ),
    ],
)
def test_a_bad_key_raises_invalid_key_error_and_writes_nothing(
    any_store: Any, key: Any, message: str
) -> None:
    for call in (
        lambda: any_store.set(key, 1),
        lambda: any_store.append(key, 1),
        lambda: any_store.get(key),
        lambda: any_store.apply({key: 1}),
    ):
        with pytest.raises(InvalidKeyError, match=message):
            call()
    assert any_store.versions() == {}


def test_a_key_with_spaces_and_unicode_is_fine(any_store: Any) -> None:
    any_store.set("notes of Zoë: draft 1", "ok")
    assert any_store.get("notes of Zoë: draft 1") == "ok"


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            datetime.date(2024, 1, 2),
            r"^value is a date, which cannot be stored as JSON\. Convert it first \(for "
            r"example str\(\) for a datetime, dataclasses\.asdict\(\) for a dataclass\); "
            r"nothing was written\.$",
        ),
        (
            {"messages": [{"role": "user", "when": {1, 2}}]},
            r"^value\['messages'\]\[0\]\['when'\] is a set, which cannot be stored as JSON\..*",
        ),
        (
            {1: "one"},
            r"^value has the key 1, a int rather than a str, which cannot be stored as JSON\..*",
        ),
        (float("nan"), r"^value is the float nan, which cannot be stored as JSON\..*"),
        ([1, float("inf")], r"^value\[1\] is the float inf, which cannot .*"),
        (b"bytes", r"^value is a bytes, which cannot be stored as JSON\..*"),
    ],
)
def test_a_value_that_is_not_json_raises_and_writes_nothing(
    any_store: Any, value: Any, message: str
) -> None:
    for call in (
        lambda: any_store.set("k", value),
        lambda: any_store.append("k", value),
        lambda: any_store.apply({"k": value}),
        lambda: any_store.update("k", lambda _: value),
    ):
        with pytest.raises(NotSerializableError, match=message):
            call()
    assert any_store.versions() == {}


def test_a_value_that_contains_itself_is_refused(any_store: Any) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(NotSerializableError, match=r"^value\[1\] contains itself, .*"):
        any_store.set("k", loop)


def test_json_subclasses_and_tuples_are_stored_as_plain_json(any_store: Any) -> None:
    any_store.set("k", OrderedDict(a=(Colour.RED, True, None, 1.5)))
    stored = any_store.get("k")
    assert stored == {"a": [1, True, None, 1.5]}
    assert type(stored) is dict
    assert type(stored["a"]) is list
    assert type(stored["a"][0]) is int


def test_a_later_change_to_the_callers_value_does_not_reach_the_store(any_store: Any) -> None:
    message = {"role": "user", "content": "hi", "parts": ["a"]}
    any_store.append("history", message)
    any_store.set("plan", message)
    any_store.apply({"notes": message})
    message["content"] = "changed"
    message["parts"].append("b")  # type: ignore[attr-defined]
    original = {"role": "user", "content": "hi", "parts": ["a"]}
    assert any_store.get("history") == [original]
    assert any_store.get("plan") == original
    assert any_store.get("notes") == original


def test_a_value_read_does_not_alias_stored_state(any_store: Any) -> None:
    any_store.append("history", {"role": "user", "parts": ["a"]})
    read = any_store.get("history")
    read[0]["parts"].append("mutated")
    read.append("extra")
    any_store.snapshot()["history"].value.clear()
    assert any_store.update("history", lambda h: h) == [{"role": "user", "parts": ["a"]}]
    assert any_store.get("history") == [{"role": "user", "parts": ["a"]}]


def test_a_value_returned_by_update_does_not_alias_stored_state(store_url: str) -> None:
    store = racefree.open_store(store_url)
    new = store.update("plan", lambda _: {"steps": ["a"]})
    new["steps"].append("b")
    assert store.get("plan") == {"steps": ["a"]}


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (10**4300, r"^value is an int of more than 4300 digits, which cannot be stored as JSON"),
        (-(10**4300), r"^value is an int of more than 4300 digits, which cannot be stored"),
        (_nested(101), r"^value(\[0\]){100} is nested more than 100 levels deep, which cannot"),
    ],
    ids=["big-int", "big-negative-int", "deep"],
)
def test_every_backend_refuses_the_same_values_and_writes_nothing(
    any_store: Any, value: Any, message: str
) -> None:
    for call in (
        lambda: any_store.set("k", value),
        lambda: any_store.append("log", value),
        lambda: any_store.apply({"k": value, "log": [value]}),
        lambda: any_store.update("k", lambda _: value),
    ):
        with pytest.raises(NotSerializableError, match=message):
            call()
    assert any_store.versions() == {}


@pytest.mark.parametrize(
    "value",
    [
        10**4300 - 1,
        -(10**4300) + 1,
        2**64 + 1,
        "Zoë \U0001f600 \u2028",
        "lone \ud800 surrogate \udfff",
        {"\udc00 key": ["\ud800", "ok"]},
        {"nested": _nested(99)},
        1.7976931348623157e308,
        5e-324,
        -0.0,
    ],
    ids=[
        "4300-digits",
        "minus-4300-digits",
        "2**64+1",
        "unicode",
        "surrogates",
        "surrogate-key",
        "depth-100",
        "max",
        "tiny",
        "-0",
    ],
)
def test_every_backend_stores_the_same_values_exactly(any_store: Any, value: Any) -> None:
    any_store.set("k", value)
    any_store.append("log", value)
    read = any_store.get("k")
    assert read == value and type(read) is type(value)
    assert any_store.get("log") == [value]
    if isinstance(value, float):
        assert str(read) == str(value)  # -0.0 stays -0.0


def test_the_depth_limit_does_not_depend_on_the_callers_stack(any_store: Any) -> None:
    import sys

    def at_depth(n: int, call: Any) -> Any:
        return at_depth(n - 1, call) if n else call()

    # With 60 frames left, no walk, copy or JSON text of 100 levels fits on
    # the caller's stack: the answers must still be the same ones.
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    deep = sys.getrecursionlimit() - depth - 60
    with pytest.raises(NotSerializableError, match=r"is nested more than 100 levels deep"):
        at_depth(deep, lambda: any_store.set("k", _nested(101)))
    assert any_store.versions() == {}
    accepted = {"deep": _nested(99)}
    assert at_depth(deep, lambda: any_store.set("k", accepted)) == 1
    assert at_depth(deep, lambda: any_store.get("k")) == accepted
    assert at_depth(deep, lambda: any_store.append("log", accepted)) == 0
    assert at_depth(deep, lambda: any_store.get("log")) == [accepted]


@pytest.mark.parametrize(
    ("start", "amount"),
    [
        (1e308, 1e308),
        (-1e308, -1e308),
        (10**400, 1.5),
        (10**4300 - 1, 1),
        (-(10**4300) + 1, -1),
    ],
    ids=["float", "negative-float", "int-to-float", "int-digits", "negative-int-digits"],
)
def test_an_increment_past_what_json_holds_is_refused_on_every_backend(
    any_store: Any, start: int | float, amount: int | float
) -> None:
    any_store.set("n", start)
    any_store.apply({"tokens": start})
    for call in (
        lambda: any_store.increment("n", amount),
        lambda: any_store.apply({"tokens": amount}),
    ):
        with pytest.raises(
            NotSerializableError,
            match=r"^The (increment|apply \(add reducer\)) of '(n|tokens)' would store .+, which "
            r"cannot be stored as JSON: a number must be a finite float or an int of at most "
            r"4300 digits\. Nothing was written; keep the number in range, or store it as a "
            r"string\.$",
        ):
            call()
    assert any_store.get_versioned("n") == (start, 1)
    assert any_store.get_versioned("tokens") == (start, 1)


@pytest.mark.parametrize(
    ("start", "amounts"),
    [
        (None, [2**53, 1, 1]),
        (10**40, [-(10**40), -1, 10**39]),
        (-(10**20), [10**20 + 5, -(10**25)]),
        (999_999_999_999_999, [1, 999_999_999_999_999]),
        (0.1, [0.2, 0.3]),
        (5, [1.5, -6.5]),
        (10**17, [0.5]),
        (1e16, [1, 1]),
        (3, [-3]),
    ],
    ids=["2**53", "big", "negative", "15-digits", "floats", "mixed", "big-int-float", "1e16", "0"],
)
def test_increment_gives_python_arithmetic_exactly_on_every_backend(
    any_store: Any, start: int | float | None, amounts: list[int | float]
) -> None:
    expected = start
    if start is not None:
        any_store.set("n", start)
        any_store.apply({"tokens": start})
    for amount in amounts:
        expected = amount if expected is None else expected + amount
        got = any_store.increment("n", amount)
        assert got == expected and type(got) is type(expected)
        any_store.apply({"tokens": amount})
    for key in ("n", "tokens"):
        stored = any_store.get(key)
        assert stored == expected and type(stored) is type(expected)
        assert repr(stored) == repr(expected)
