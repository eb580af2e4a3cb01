from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from racefree import UsageError, check

if TYPE_CHECKING:
    from tests.check.conftest import Recorder


def _balanced(state: dict[str, Any]) -> bool:
    return bool(state["a"] + state["b"] == 10)


def _transfer(h: Recorder) -> None:
    h("init", "set", "a", value=10)
    h("init", "set", "b", value=0)
    h("T", "set", "a", value=5)  # between these two writes the money is missing
    h("T", "set", "b", value=5)


def test_an_invariant_false_in_an_intermediate_state_is_reported(h: Recorder) -> None:
    _transfer(h)
    [finding] = check(h.history, invariants=[_balanced], final_state={"a": 5, "b": 5}).findings
    assert finding.kind == "invariant"
    assert [e.seq for e in finding.events] == [2]
    assert "holds again in the final state" in finding.explanation.story()


def test_an_invariant_false_in_the_final_state_is_reported(h: Recorder) -> None:
    h("init", "set", "a", value=10)
    [finding] = check(
        h.history, invariants=[("sum is 10", _balanced)], final_state={"a": 10, "b": 3}
    ).findings
    assert "false in the final state" in finding.explanation.story()


def test_an_invariant_that_always_holds_is_clean(h: Recorder) -> None:
    h("init", "set", "a", value=10)
    h("init", "set", "b", value=0)
    h("T", "commit", "a", value=5, meta={"effect": "put"})
    h("T", "commit", "b", value=5, meta={"effect": "put"})
    # commits are two events of one atomic step: check only the states between steps
    report = check(h.history, invariants=[lambda s: s["a"] >= 0], final_state={"a": 5, "b": 5})
    assert report.findings == ()


def test_an_invariant_that_raises_on_the_final_state_is_a_usage_error(h: Recorder) -> None:
    h("init", "set", "a", value=10)
    with pytest.raises(UsageError, match=r"^The invariant '_balanced' raised KeyError\('b'\)"):
        check(h.history, invariants=[_balanced], final_state={"a": 10})
