from __future__ import annotations

from typing import TYPE_CHECKING

from racefree import check

if TYPE_CHECKING:
    from tests.check.conftest import Recorder


def test_check_then_act_by_two_agents_is_a_double_claim(h: Recorder) -> None:
    h("A", "read", "task")
    h("B", "read", "task")
    h("A", "write", "task", value="A")
    h("B", "write", "task", value="B")
    [finding] = check(h.history).findings
    assert finding.kind == "double-claim"
    assert finding.agents == ("A", "B")
    assert finding.keys == ("task",)


def test_store_claims_with_one_winner_are_clean(h: Recorder) -> None:
    h("A", "claim", "task", version_read=0, version_written=1, value="A")
    h("B", "claim", "task", version_read=1, value="A")  # already held: only read
    assert check(h.history).findings == ()


def test_a_claim_after_a_release_is_clean(h: Recorder) -> None:
    h("A", "claim", "task", version_read=0, version_written=1, value="A")
    h("A", "set", "task", version_read=1, version_written=2, value=None)
    h("B", "claim", "task", version_read=2, version_written=3, value="B")
    assert check(h.history).findings == ()


def test_declared_claims_of_one_key_without_release_are_a_double_claim(h: Recorder) -> None:
    h("A", "acquire", "lock:task")
    h("B", "acquire", "lock:task")
    assert [f.kind for f in check(h.history).findings] == ["double-claim"]
