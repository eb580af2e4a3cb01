"""The pytest plugin: a marked test is explored; a failure prints the command to paste."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

# Installed, the plugin loads through its entry point; from a bare clone, name it.
INSTALLED = any(e.value == "racefree.pytest_plugin" for e in entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "racefree.pytest_plugin"]

TESTS = """
import threading, time
import pytest
from racefree.explore import hooks

def lose_an_update():
    state = {"n": 0}
    def agent():
        hooks.point("read", "n")
        seen = state["n"]
        time.sleep(1)  # the model call
        hooks.point("write", "n")
        state["n"] = seen + 1
    threads = [threading.Thread(target=agent) for _ in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
    return state["n"]

@pytest.mark.racefree(schedules=200, strategy="pct", seed=1)
def test_counter():
    assert lose_an_update() == 2

@pytest.mark.racefree(schedules=50)
def test_nothing_shared():
    assert True
"""


def test_a_race_fails_the_test_with_the_replay_command(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_agents=TESTS)
    result = pytester.runpytest(*PLUGIN, "-q")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    command = re.search(r"pytest '(test_agents.py::test_counter)' --racefree-replay (\S+)", output)
    assert command is not None, output
    # Pasting the command replays the failing schedule: the same failure, once.
    again = pytester.runpytest(
        *PLUGIN,
        "-q",
        command.group(1),
        "--racefree-replay",
        command.group(2),
    )
    again.assert_outcomes(failed=1)
    assert "failed on schedule 1" in again.stdout.str()


TRACKED = """
import threading, time
import pytest
import racefree

def test_session_keeps_both_turns():
    session = racefree.track({"turns": []})
    def agent(name):
        turns = list(session["turns"])  # load the session
        time.sleep(1)  # the model call
        session["turns"] = turns + [name]  # save it back
    threads = [threading.Thread(target=agent, args=(n,), name=n) for n in ("Alice", "Bob")]
    for t in threads: t.start()
    for t in threads: t.join()
    assert len(session["turns"]) == 2

test_session_keeps_both_turns = pytest.mark.racefree(schedules=100, seed=0)(
    test_session_keeps_both_turns
)
"""


def test_a_failed_assert_comes_with_the_checker_story_and_no_racefree_source(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_session=TRACKED)
    result = pytester.runpytest(*PLUGIN, "-q")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "The workflow raised AssertionError" in output
    assert "Checker: lost update on turns" in output
    assert "from its copy" in output  # the story of who overwrote whom
    assert "test_session.py" in output  # the user's own frame
    assert "pytest_plugin.py" not in output and "racefree/explore" not in output


def test_the_replay_command_works_from_the_folder_pytest_was_started_in(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\n")  # the rootdir: node ids are relative to it
    tests = pytester.mkdir("agents")
    (tests / "test_agents.py").write_text(TESTS, encoding="utf-8")
    monkeypatch.chdir(tests)  # started in a subfolder of the rootdir
    result = pytester.runpytest(*PLUGIN, "-q", "test_agents.py")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    command = re.search(r"pytest '(test_agents.py::test_counter)' --racefree-replay (\S+)", output)
    assert command is not None, output
    again = pytester.runpytest(
        *PLUGIN, "-q", command.group(1), "--racefree-replay", command.group(2)
    )
    again.assert_outcomes(failed=1)
    # The pytest line is the replay: no replay file naming a test body that cannot be loaded.
    assert not (pytester.path / ".racefree").exists() and not (tests / ".racefree").exists()


FIXTURE_STATE = """
import dataclasses
import threading
import time

import pytest


@pytest.fixture
def session():
    return {"history": []}


@dataclasses.dataclass
class Board:
    notes: list


@pytest.fixture
def board():
    return Board(notes=[])


@pytest.mark.racefree(schedules=30, seed=0)
def test_locked_agents_keep_every_reply(session):
    lock = threading.Lock()

    def agent(name, latency):
        time.sleep(latency)
        with lock:
            session["history"] = session["history"] + [name]

    threads = [threading.Thread(target=agent, args=a) for a in [("A", 0.1), ("B", 0.2)]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(session["history"]) == 2


@pytest.mark.racefree(schedules=30, seed=0)
def test_a_dataclass_fixture_starts_fresh_too(board, tmp_path):
    board.notes.append("mine")
    with (tmp_path / "runs").open("a") as runs:  # shared by every schedule: one file
        runs.write("x")
    assert board.notes == ["mine"]
    assert len((tmp_path / "runs").read_text()) >= 1
"""


def test_every_schedule_starts_from_a_fresh_copy_of_a_fixtures_plain_data(
    pytester: pytest.Pytester,
) -> None:
    # Correct locked code: with the list shared, schedule 2 saw schedule 1's replies.
    pytester.makepyfile(test_fixture_state=FIXTURE_STATE)
    result = pytester.runpytest(*PLUGIN, "-q")
    result.assert_outcomes(passed=2)
