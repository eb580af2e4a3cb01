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
