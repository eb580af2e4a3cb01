"""Lesson 04's scripts, run as a learner runs them from a clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LESSON = Path(__file__).resolve().parents[2] / "examples" / "04-testing"


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, script, *args], cwd=LESSON, capture_output=True, text=True, check=False
    )


def test_find_race_reports_the_lost_update_and_its_replay() -> None:
    done = run("find_race.py", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "failed on schedule 1" in done.stdout
    assert "replay='rf1:" in done.stdout


def test_find_race_json() -> None:
    data = json.loads(run("find_race.py", "--json", "--agents", "2").stdout)
    assert data["failures"] and data["failures"][0]["kind"] == "invariant"


def test_prove_fix_explores_every_ordering() -> None:
    done = run("prove_fix.py", "--agents", "2")
    assert done.returncode == 0, done.stderr
    assert "distinct orderings explored" in done.stdout
    assert "2 locked agents: every ordering passes." in done.stdout


def test_prove_fix_runs_the_contrast_search_it_promises() -> None:
    done = run("prove_fix.py", "--agents", "2", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["complete"] is True and data["failures"] == []
    assert data["contrast"]["failures"], "the broken agents' search found nothing"
    prose = run("prove_fix.py", "--agents", "2").stdout
    assert "Contrast, the same search on the broken agents: a failure on run 1." in prose


def test_find_race_sees_every_read_and_write_because_the_session_is_tracked() -> None:
    # The docstring's claim: the tracked session's accesses are scheduling points.
    data = json.loads(run("find_race.py", "--json", "--agents", "2").stdout)
    text = json.dumps(data)
    assert "conversation_history" in text


def test_the_regression_tests_of_the_lesson_pass_as_a_learner_runs_them() -> None:
    # The lesson's own pytest file: its saved schedule must still reproduce the
    # loss with this racefree (a schedule belongs to the version that found it).
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_regression.py"],
        cwd=LESSON,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout
