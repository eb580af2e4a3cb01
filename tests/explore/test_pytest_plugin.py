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
