from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel

import racefree
from racefree import check, history_of, track

if TYPE_CHECKING:
    from tests.check.conftest import Recorder


def _three_appends(h: Recorder) -> None:
    for i, agent in enumerate(["A", "B", "C"]):
        h(agent, "append", "log", version_read=i, version_written=i + 1, value=f"from {agent}")


def test_an_acknowledged_append_missing_from_the_final_list_is_lost(h: Recorder) -> None:
    _three_appends(h)
    [finding] = check(h.history, final_state={"log": ["from A", "from C"]}).findings
    assert finding.kind == "lost-append"
    assert finding.agents == ("B",)
    assert [(lost.agent, lost.value) for lost in finding.lost] == [("B", "from B")]


def test_an_append_present_twice_is_duplicated(h: Recorder) -> None:
    _three_appends(h)
    state = {"log": ["from A", "from B", "from B", "from C"]}
    [finding] = check(h.history, final_state=state).findings
    assert finding.kind == "duplicate-append"
    assert finding.agents == ("B",)


def test_two_appends_with_one_declared_id_are_duplicated_without_a_final_state(
    h: Recorder,
) -> None:
    h("A", "append", "log", value="hi", meta={"id": "m1"})
    h("A", "append", "log", value="hi", meta={"id": "m1"})
    [finding] = check(h.history).findings
    assert finding.kind == "duplicate-append"


def test_every_append_in_the_final_list_is_clean(h: Recorder) -> None:
    _three_appends(h)
    assert check(h.history, final_state={"log": ["from A", "from B", "from C"]}).findings == ()


def test_an_item_matches_a_message_dict_that_holds_it(h: Recorder) -> None:
    h("A", "append", "log", value="hello")
    state = {"log": [{"agent": "A", "content": "hello"}]}
    assert check(h.history, final_state=state).findings == ()


def test_appends_before_a_deliberate_overwrite_are_not_expected(h: Recorder) -> None:
    h("A", "append", "log", value="old")
    h("S", "read", "log")
    h("S", "set", "log", value=["summary"])
    h("B", "append", "log", value="new")
    assert check(h.history, final_state={"log": ["summary", "new"]}).findings == ()


@dataclasses.dataclass
class _Notes:
    notes: list[str] = dataclasses.field(default_factory=list)


class _PydanticNotes(BaseModel):
    notes: list[str] = []


@pytest.mark.parametrize("session", [_Notes(), _PydanticNotes()], ids=["dataclass", "pydantic"])
def test_a_session_object_as_the_final_state_is_looked_into_by_its_fields(
    session: _Notes | _PydanticNotes,
) -> None:
    # The shape docs/checker.md shows: track the session, pass the session itself.
    shared = track(session, name="session")
    for agent_name in ("Planner", "Writer"):
        with racefree.agent(agent_name):
            shared.notes.append(f"from {agent_name}")
    session.notes.pop()  # the Writer's note is lost
    report = check(history_of(shared), final_state=session)
    [finding] = report.findings
    assert (finding.kind, finding.keys, finding.agents) == (
        "lost-append",
        ("session.notes",),
        ("Writer",),
    )
    assert not report.notes  # no "the final state has no list there"
