"""Lesson 03's scripts, run as a learner runs them, with nothing installed."""

from __future__ import annotations

import pytest

from tests.examples.lesson_scripts import run_json_in, run_script_in

LESSON = "03-thread-safety"


def test_compare_fixes_json_shows_four_consistent_fixes() -> None:
    data = run_json_in(LESSON, "compare_fixes", "--agents", "6", "--time-scale", "0.01")
    assert [row["fix"] for row in data["fixes"]] == [
        "a lock",
        "atomic deltas",
        "versions + retry",
        "single writer",
    ]
    assert data["consistent"] is True
    assert data["lost_updates"] == 0
    assert all(row["agent_code_lines"] > 0 for row in data["fixes"])


@pytest.mark.parametrize("script", ["fix_lock", "fix_reducers", "fix_optimistic", "fix_actor"])
def test_each_fix_script_loses_nothing(script: str) -> None:
    data = run_json_in(LESSON, script, "--agents", "8", "--time-scale", "0.01", "--seed", "3")
    assert data["consistent"] is True


def test_compare_fixes_prose_prints_the_table_and_the_costs() -> None:
    done = run_script_in(LESSON, "compare_fixes", "--time-scale", "0.01", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert "agent code lines" in done.stdout
    assert done.stdout.count("costs:") == 4
