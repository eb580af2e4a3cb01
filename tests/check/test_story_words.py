"""Stories in a recorder's words: meta ``words`` changes the text, never the finding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from racefree import check

if TYPE_CHECKING:
    from tests.check.conftest import Recorder

LOADED: dict[str, Any] = {"words": {"verb": "loaded", "version": "checkpoint"}}
SAVED: dict[str, Any] = {
    "words": {
        "verb": "saved",
        "version": "checkpoint",
        "change": "turn",
        "fix": "Use a checkpointer that refuses a stale parent.",
    }
}


def test_a_lost_update_is_told_in_the_recorders_words(h: Recorder) -> None:
    h("run 2", "read", "thread t1", version_read=3, meta=LOADED)
    h("run 1", "read", "thread t1", version_read=3, meta=LOADED)
    h("run 1", "write", "thread t1", version_read=3, version_written=4, meta=SAVED)
    h("run 1", "write", "thread t1", version_read=4, version_written=5, meta=SAVED)
    h("run 2", "write", "thread t1", version_read=3, version_written=6, meta=SAVED)

    [finding] = check(h.history).of_kind("lost-update")

    assert finding.agents == ("run 2", "run 1")
    assert finding.explanation.story() == (
        "run 2 loaded thread t1 at checkpoint 3. run 1 saved thread t1 as checkpoint 4. "
        "run 1 saved thread t1 as checkpoint 5. run 2 then saved thread t1 as checkpoint 6 "
        "from its copy of checkpoint 3. run 1's turn is gone. Use a checkpointer that "
        "refuses a stale parent."
    )


def test_without_words_the_same_history_is_told_in_the_checkers_own(h: Recorder) -> None:
    h("run 2", "read", "thread t1", version_read=3)
    h("run 1", "write", "thread t1", version_read=3, version_written=4)
    h("run 1", "write", "thread t1", version_read=4, version_written=5)
    h("run 2", "write", "thread t1", version_read=3, version_written=6)

    [finding] = check(h.history).of_kind("lost-update")

    assert finding.explanation.story().startswith(
        "run 2 read thread t1 at v3. run 1 wrote thread t1 at v4. run 1 wrote thread t1 at v5. "
        "run 2 then wrote thread t1 at v6 from its copy of v3. The writes of run 1 are gone. "
        "Make the read-modify-write"
    )


def test_turns_of_several_runs_are_counted_by_run(h: Recorder) -> None:
    h("run 3", "read", "thread t1", version_read=1, meta=LOADED)
    h("run 1", "write", "thread t1", version_read=1, version_written=2, meta=SAVED)
    h("run 2", "write", "thread t1", version_read=2, version_written=3, meta=SAVED)
    h("run 3", "write", "thread t1", version_read=1, version_written=4, meta=SAVED)

    [finding] = check(h.history).of_kind("lost-update")

    assert "The turns of run 1 and run 2 are gone." in finding.explanation.story()


def test_an_interleaved_turn_uses_the_recorders_verb_and_fix(h: Recorder) -> None:
    words = {"words": {"verb": "saved", "fix": "Use a session that saves turns whole."}}
    h("A (run 1)", "extend", "session s", value=[{"role": "user", "content": "hi"}], meta=words)
    h("A (run 2)", "extend", "session s", value=[{"role": "user", "content": "yo"}], meta=words)
    h("A (run 1)", "extend", "session s", value=[{"role": "assistant", "content": "hello"}])

    [finding] = check(h.history).of_kind("interleaved-turn")

    story = finding.explanation.story()
    assert 'A (run 2) saved [{"content": "yo", "role": "user"}] to session s.' in story
    assert story.endswith(
        "A (run 1)'s turn is split by messages from A (run 2): a reader of session s (or the "
        "next model call) sees a reply that no longer follows what it answers. Use a session "
        "that saves turns whole."
    )


def test_a_race_window_uses_the_recorders_verbs(h: Recorder) -> None:
    h("run 1", "read", "thread t1", version_read=1, meta=LOADED)
    h("run 1", "call")
    h("run 2", "call")
    h("run 1", "write", "thread t1", version_read=1, version_written=2, meta=SAVED)

    [finding] = check(h.history).of_kind("race-window")

    story = finding.explanation.story()
    assert "run 1 loaded thread t1 at checkpoint 1." in story
    assert "run 1 saved thread t1 as checkpoint 2 from what it read." in story


def test_words_that_are_not_text_are_ignored(h: Recorder) -> None:
    h("B", "read", "k", meta={"words": {"verb": 3}})
    h("A", "write", "k", meta={"words": "saved"})
    h("B", "write", "k")

    [finding] = check(h.history).of_kind("lost-update")

    assert finding.explanation.story().startswith("B read k. A wrote k. B then wrote k")
