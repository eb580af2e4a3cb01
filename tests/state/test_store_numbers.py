"""Increments give Python's own answers on every backend, however the engine adds.

SQLite adds ints in SQL only when 64 bits hold the sum exactly, and Redis
adds ints and floats inside its script; every other case is decided in
Python. Each case here is checked against plain Python arithmetic.
"""

from __future__ import annotations

from typing import Any

import pytest

import racefree

CASES = [
    (0.1, 0.2),
    (1, 0.5),
    (0.5, 1),
    (10**20, 0.5),  # a long int meets a float: float(int) + float, as in Python
    (-3, 3),
    (2**53 - 1, 2**53 - 1),
    (10**15, 10**15),
    (1e300, 1e300),
    (-2.5, 1e-17),
]


@pytest.mark.parametrize(("start", "amount"), CASES, ids=[f"{a!r}+{b!r}" for a, b in CASES])
def test_an_increment_stores_and_answers_what_python_computes(
    any_store: Any, start: Any, amount: Any
) -> None:
    assert any_store.set("n", start) == 1
    expected = start + amount
    answer = any_store.increment("n", amount)
    assert (answer, type(answer)) == (expected, type(expected))
    assert any_store.get_versioned("n") == (expected, 2)


def test_a_float_sum_that_overflows_is_refused_and_nothing_is_written(any_store: Any) -> None:
    any_store.set("n", 1e308)
    with pytest.raises(racefree.NotSerializableError):
        any_store.increment("n", 1e308)
    assert any_store.get_versioned("n") == (1e308, 1)


def test_a_text_is_no_number_and_nothing_is_written(any_store: Any) -> None:
    any_store.set("n", "5")
    with pytest.raises(racefree.WrongTypeError):
        any_store.increment("n", 1)
    assert any_store.get_versioned("n") == ("5", 1)
