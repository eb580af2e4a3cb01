"""Bad input to explore() is refused before the first run, with what to do."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from racefree import UsageError
from racefree.explore import explore
from tests.explore import workflows as w


def test_an_invariant_that_is_not_a_function_is_refused() -> None:
    with pytest.raises(
        UsageError,
        match=r"^Each invariant must be a function of the final state that returns True when "
        r"it holds, not 'n == 2'\.$",
    ):
        explore(w.double_claim, invariants=["n == 2"], save_dir=None)  # type: ignore[list-item]


def test_an_invariant_that_takes_no_state_is_refused() -> None:
    with pytest.raises(
        UsageError,
        match=r"^The invariant <lambda> cannot be called with one argument, the final state "
        r"\(what the workflow returns\): give it one parameter\.$",
    ):
        explore(w.double_claim, invariants=[lambda: True], save_dir=None)  # type: ignore[list-item]


def test_a_workflow_that_needs_arguments_is_refused_and_one_that_gets_them_runs() -> None:
    def claims(board: dict[str, Any]) -> dict[str, Any]:
        return board

    with pytest.raises(UsageError, match=r"takes arguments, and the explorer calls the workflow"):
        explore(claims, save_dir=None)
    assert explore(functools.partial(claims, {}), schedules=2, save_dir=None).ok
    assert explore(w.hidden_lost_update, schedules=2, save_dir=None).runs == 2  # a default


def test_invariants_given_as_an_iterator_are_all_checked() -> None:
    result = explore(w.double_claim, invariants=iter([w.claimed_once]), schedules=50, save_dir=None)
    assert result.failure is not None and result.failure.failure.name == "claimed_once"


def test_an_unknown_strategy_name_is_refused_with_the_names_there_are() -> None:
    with pytest.raises(
        UsageError,
        match=r"^No such strategy: 'dfs'\. Choose one of auto, random, pct, exhaustive, or "
        r"pass a Strategy instance\.$",
    ):
        explore(w.double_claim, strategy="dfs", save_dir=None)
