from __future__ import annotations

from typing import TYPE_CHECKING

from racefree import check

if TYPE_CHECKING:
    from tests.check.conftest import Recorder


def test_a_message_inside_another_agents_turn_interleaves_it(h: Recorder) -> None:
    h("A", "append", "chat", value={"role": "user", "content": "q"})
    h("B", "append", "chat", value={"role": "user", "content": "other"})
    h("A", "append", "chat", value={"role": "assistant", "content": "answer"})
    [finding] = check(h.history).findings
    assert finding.kind == "interleaved-turn"
    assert finding.agents == ("A", "B")
    assert [e.seq for e in finding.events] == [0, 1, 2]


def test_contiguous_turns_are_clean(h: Recorder) -> None:
    for agent in ("A", "B"):
        h(agent, "append", "chat", value="user")
        h(agent, "append", "chat", value="assistant")
    h("C", "append_turn", "chat", value=[{"role": "user"}, {"role": "assistant"}])
    h("A", "append", "chat", value="user")
    assert check(h.history).of_kind("interleaved-turn") == ()


def test_a_whole_turn_appended_at_once_closes_itself(h: Recorder) -> None:
    h("D", "append", "chat", value="user")
    h("C", "append_turn", "chat", value=[{"role": "user"}, {"role": "assistant"}])
    h("C", "append", "chat", value="note")
    h("D", "append", "chat", value="assistant")
    # only D's turn was split; C's turn was whole
    assert [f.agents for f in check(h.history).findings] == [("D", "C")]


def test_a_declared_turn_id_must_stay_contiguous(h: Recorder) -> None:
    h("A", "append", "plan", value="step 1", meta={"turn": "t1"})
    h("B", "append", "plan", value="note")
    h("A", "append", "plan", value="step 2", meta={"turn": "t1"})
    assert [f.kind for f in check(h.history).findings] == ["interleaved-turn"]


def test_a_message_between_a_tool_call_and_its_result_unpairs_them(h: Recorder) -> None:
    call = {"role": "assistant", "tool_calls": [{"id": "c1"}]}
    h("A", "append", "chat", value=call)
    h("B", "append", "chat", value={"role": "assistant", "content": "hi"})
    h("A", "append", "chat", value={"role": "tool", "tool_call_id": "c1"})
    kinds = [(f.kind, f.severity) for f in check(h.history).findings]
    # the call lost its place, and the result then answers nothing waiting
    assert kinds == [("unpaired-tool-call", "error"), ("unpaired-tool-call", "error")]


def test_a_call_directly_followed_by_its_result_is_clean(h: Recorder) -> None:
    h("A", "append", "chat", value={"role": "assistant", "tool_calls": [{"id": "c1"}]})
    h("A", "append", "chat", value={"role": "tool", "tool_call_id": "c1"})
    h("A", "append", "chat", meta={"tool_call": "c2"}, value="x")
    h("A", "append", "chat", meta={"tool_result": "c2"}, value="y")
    assert check(h.history).findings == ()


def test_a_call_never_answered_is_a_warning(h: Recorder) -> None:
    h("A", "append", "chat", value={"role": "assistant", "tool_calls": [{"id": "c1"}]})
    [finding] = check(h.history).findings
    assert (finding.kind, finding.severity) == ("unpaired-tool-call", "warning")


def test_a_summary_written_before_the_results_it_summarises_breaks_causality(
    h: Recorder,
) -> None:
    h("R1", "set", "results.A", value="a")
    h("S", "set", "summary", value="a only", meta={"after": ["results.A", "results.B"]})
    h("R2", "set", "results.B", value="b")
    [finding] = check(h.history).findings
    assert finding.kind == "causality"
    assert finding.agents == ("S", "R2")
    assert [e.seq for e in finding.events] == [1, 2]


def test_a_summary_after_its_results_is_clean(h: Recorder) -> None:
    h("R1", "set", "results.A", value="a")
    h("R2", "set", "results.B", value="b")
    h("S", "set", "summary", value="a and b", meta={"after": ["results.A", "results.B"]})
    assert check(h.history).findings == ()
