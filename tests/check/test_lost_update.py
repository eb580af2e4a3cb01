from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from racefree import check

if TYPE_CHECKING:
    from tests.check.conftest import Recorder


def test_a_stale_overwrite_is_a_lost_update_naming_who_lost_what(h: Recorder) -> None:
    h("Analyzer", "read", "conversation_history", version_read=3)
    h("Analyzer", "call")
    h("Writer", "append", "conversation_history", version_read=3, version_written=4, value="w")
    h("Analyzer", "write", "conversation_history", version_read=3, version_written=5, value="a")

    [finding] = check(h.history).of_kind("lost-update")

    assert finding.severity == "error"
    assert finding.agents == ("Analyzer", "Writer")
    assert finding.keys == ("conversation_history",)
    assert [e.seq for e in finding.events] == [0, 2, 3]
    assert [(lost.agent, lost.value, lost.restored) for lost in finding.lost] == [
        ("Writer", "w", False)
    ]
    assert finding.explanation.story() == (
        "Analyzer read conversation_history at v3. "
        'Writer appended to conversation_history at v4: "w". '
        'Analyzer then wrote conversation_history at v5 from its copy of v3: "a". '
        "Writer's write is gone. Make the read-modify-write one atomic step: a store "
        "update() or append(), or hold one lock from the read to the write."
    )


def test_one_agent_after_another_loses_nothing(h: Recorder) -> None:
    for agent in ("Researcher", "Analyzer", "Writer"):
        h(agent, "read", "n", value=0)
        h(agent, "call")
        h(agent, "write", "n", value=1)
    assert check(h.history).findings == ()


def test_versions_do_not_decide_only_the_order_does(h: Recorder) -> None:
    # Lesson 01 labels versions by list length: both writes say "v1", and the
    # second is still stale because the first came after its read.
    h("Researcher", "read", "history", version_read=0)
    h("Writer", "read", "history", version_read=0)
    h("Researcher", "write", "history", version_read=0, version_written=1)
    h("Writer", "write", "history", version_read=0, version_written=1)
    [finding] = check(h.history).of_kind("lost-update")
    assert finding.agents == ("Writer", "Researcher")


def test_atomic_appends_alone_never_lose_an_update(h: Recorder) -> None:
    h("A", "get", "log", version_read=0, value=[])
    h("B", "append", "log", version_read=0, version_written=1, value="b")
    h("A", "append", "log", version_read=1, version_written=2, value="a")
    assert check(h.history).of_kind("lost-update") == ()


def test_a_blind_write_is_not_a_lost_update(h: Recorder) -> None:
    h("A", "set", "status", version_read=0, version_written=1, value="running")
    h("B", "set", "status", version_read=1, version_written=2, value="done")
    assert check(h.history).findings == ()


def test_a_write_brought_back_by_a_later_copy_is_marked_restored(h: Recorder) -> None:
    h("A", "read", "k")
    h("B", "read", "k")
    h("A", "write", "k", value="a")
    h("C", "read", "k")  # C's copy has A's write
    h("B", "write", "k", value="b")  # erases A's write
    h("C", "write", "k", value="c")  # erases B's, brings A's back
    lost = {(x.agent, x.restored) for f in check(h.history).of_kind("lost-update") for x in f.lost}
    assert lost == {("A", True), ("B", False)}


def test_compare_and_set_makes_the_agent_copy_current(h: Recorder) -> None:
    h("A", "get", "k", version_read=0)
    h("A", "compare_and_set", "k", version_read=0, version_written=1, value=1)
    h("A", "set", "k", version_read=1, version_written=2, value=2)
    assert check(h.history).findings == ()


def test_three_agents_losing_two_writes_make_one_finding(h: Recorder) -> None:
    for agent in ("Researcher", "Analyzer", "Writer"):
        h(agent, "read", "history", version_read=0, value=[])
    h("Researcher", "write", "history", version_read=0, version_written=1, value=["r"])
    h("Analyzer", "write", "history", version_read=0, version_written=2, value=["a"])
    h("Writer", "write", "history", version_read=0, version_written=3, value=["w"])

    [finding] = check(h.history).of_kind("lost-update")

    assert finding.agents == ("Analyzer", "Writer", "Researcher")
    assert [(x.agent, x.restored) for x in finding.lost] == [
        ("Researcher", False),
        ("Analyzer", False),
    ]
    assert finding.explanation.story() == (
        "Analyzer read history at v0: []. Writer read history at v0: []. "
        'Researcher wrote history at v1: ["r"]. '
        'Analyzer then wrote history at v2 from its copy of v0: ["a"]. '
        'Writer then wrote history at v3 from its copy of v0: ["w"]. '
        "The writes of Researcher and Analyzer are gone. Each agent wrote back a copy made before "
        "the others' writes. Make the read-modify-write one atomic step: a store update() or "
        "append(), or hold one lock from the read to the write."
    )


def test_two_separate_losses_on_one_key_make_two_findings(h: Recorder) -> None:
    for _ in range(2):
        h("A", "read", "k")
        h("B", "read", "k")
        h("A", "write", "k", value="a")
        h("B", "write", "k", value="b")
    assert len(check(h.history).of_kind("lost-update")) == 2


def test_a_flag_set_twice_from_one_old_copy_is_a_duplicate_write_warning_not_a_loss(
    h: Recorder,
) -> None:
    # Both see the job pending and mark it done: the same value, decided twice.
    h("Writer", "read", "status", version_read=1, value="pending")
    h("Editor", "read", "status", version_read=1, value="pending")
    h("Editor", "write", "status", version_read=1, version_written=2, value="done")
    h("Writer", "write", "status", version_read=1, version_written=3, value="done")

    report = check(h.history)

    assert report.ok and report.of_kind("lost-update") == ()
    [finding] = report.of_kind("duplicate-write")
    assert finding.severity == "warning"
    assert finding.agents == ("Writer", "Editor")
    assert finding.explanation.story().endswith(
        'Writer then wrote status at v3 from its copy of v1: "done". Writer wrote the same '
        "value as Editor, so nothing is lost in this run; but it decided to write from a copy "
        "made before that write (check-then-act), so whatever produced the value ran again. "
        "If it must run once, check and act in one atomic step: store.claim(), "
        "compare_and_set(), or one lock held from the read to the write."
    )


def test_the_same_count_written_twice_from_one_old_copy_is_a_lost_update(h: Recorder) -> None:
    # 0 + 1 by both: one after the other would have counted 2.
    h("Writer", "read", "count", version_read=1, value=0)
    h("Editor", "read", "count", version_read=1, value=0)
    h("Editor", "write", "count", version_read=1, version_written=2, value=1)
    h("Writer", "write", "count", version_read=1, version_written=3, value=1)

    [finding] = check(h.history).of_kind("lost-update")

    assert finding.severity == "error"
    assert (
        "Writer wrote the same value as Editor, but worked from a copy made before that "
        "write: a value worked out from what each read (a count plus one, the list plus an "
        "item) comes out the same twice, so one of the updates is lost."
    ) in finding.explanation.story()


def test_three_agents_caching_one_answer_from_old_copies_make_one_warning(h: Recorder) -> None:
    for agent in ("A", "B", "C"):
        h(agent, "read", "cache.q", version_read=0)
    for version, agent in enumerate(("A", "B", "C"), start=1):
        h(agent, "write", "cache.q", version_read=0, version_written=version, value="xx")

    report = check(h.history)

    assert report.ok and report.of_kind("lost-update") == ()
    [finding] = report.of_kind("duplicate-write")
    assert "A, B and C all wrote the same value, so nothing is lost in this run; but each " in (
        finding.explanation.conclusion
    ), finding.explanation.conclusion


@pytest.mark.parametrize(
    ("read", "written"),
    [({"calls": 0}, {"calls": 1}), ("draft", "draft, edited"), (["a"], ["a", "b"])],
    ids=["dict of counts", "text grown from the one read", "list"],
)
def test_the_same_value_grown_from_one_old_copy_twice_stays_a_lost_update(
    h: Recorder, read: Any, written: Any
) -> None:
    h("Writer", "read", "k", version_read=1, value=read)
    h("Editor", "read", "k", version_read=1, value=read)
    h("Editor", "write", "k", version_read=1, version_written=2, value=written)
    h("Writer", "write", "k", version_read=1, version_written=3, value=written)

    report = check(h.history)

    assert not report.ok and report.of_kind("duplicate-write") == ()
    [finding] = report.of_kind("lost-update")
    assert "so one of the updates is lost" in finding.explanation.conclusion
