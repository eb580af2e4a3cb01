from __future__ import annotations

from typing import TYPE_CHECKING

from racefree import check

if TYPE_CHECKING:
    from tests.check.conftest import Recorder


def _window(h: Recorder, *, lock: bool = False, release: bool = False) -> None:
    if lock:
        h("A", "acquire", "L")
    h("A", "read", "k", value=1)
    if release:
        h("A", "release", "L")
    h("A", "call", value="llm")
    h("B", "read", "other")
    h("A", "write", "k", value=2)


def test_read_suspend_overwrite_while_others_run_is_a_warning(h: Recorder) -> None:
    _window(h)
    report = check(h.history)
    [finding] = report.findings
    assert (finding.kind, finding.severity) == ("race-window", "warning")
    assert finding.agents == ("A", "B")
    assert report.ok  # a warning is not an error


def test_a_lock_held_from_read_to_write_guards_the_window(h: Recorder) -> None:
    _window(h, lock=True)
    assert check(h.history).findings == ()


def test_releasing_the_lock_inside_the_window_leaves_it_open(h: Recorder) -> None:
    _window(h, lock=True, release=True)
    assert [f.kind for f in check(h.history).findings] == ["race-window"]


def test_no_suspension_between_read_and_write_is_clean(h: Recorder) -> None:
    h("A", "read", "k")
    h("B", "read", "other")
    h("A", "write", "k")
    assert check(h.history).findings == ()


def test_agents_taking_turns_are_not_flagged(h: Recorder) -> None:
    for agent in ("A", "B"):
        h(agent, "read", "k")
        h(agent, "call")
        h(agent, "write", "k")
    assert check(h.history).findings == ()


def test_one_warning_per_agent_and_key_counts_the_windows(h: Recorder) -> None:
    _window(h)
    _window(h)
    [finding] = check(h.history).findings
    assert "This happened 2 times" in finding.explanation.conclusion


def test_errors_only_skips_the_warnings_and_keeps_the_errors(h: Recorder) -> None:
    _window(h)  # a race window: a warning
    h("A", "read", "n", value=0)  # and a lost update: an error
    h("B", "read", "n", value=0)
    h("A", "write", "n", value=1)
    h("B", "write", "n", value=1)
    everything = check(h.history)
    errors_only = check(h.history, warnings=False)
    assert {f.kind for f in everything.warnings} == {"race-window"}
    assert errors_only.warnings == ()
    assert errors_only.errors == everything.errors != ()
