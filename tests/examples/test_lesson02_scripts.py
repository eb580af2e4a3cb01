"""Lesson 02's scripts, run as a learner runs them, with nothing installed."""

from __future__ import annotations

import pytest

from tests.examples.lesson_scripts import run_json_in, run_script_in

LESSON = "02-async-await"


def test_sequential_awaits_json_is_consistent() -> None:
    data = run_json_in(LESSON, "sequential_awaits", "--time-scale", "0.02", "--seed", "1")
    assert data["consistent"] is True
    assert data["calls_at_once"] == 1


def test_gather_race_json_loses_work() -> None:
    data = run_json_in(LESSON, "gather_race", "--time-scale", "0.02", "--seed", "1")
    assert data["lost_updates"] == 2
    assert data["consistent"] is False


@pytest.mark.parametrize("script", ["gather_await_first", "gather_with_lock", "gather_with_store"])
def test_the_fixes_json_lose_nothing(script: str) -> None:
    data = run_json_in(LESSON, script, "--agents", "8", "--time-scale", "0.01", "--seed", "1")
    assert data["consistent"] is True
    assert len(data["agents"]) == 8


def test_rate_limit_json_reports_the_calls_in_flight() -> None:
    data = run_json_in(
        LESSON, "rate_limit", "--agents", "5", "--limit", "2", "--time-scale", "0.01"
    )
    assert data["limit"] == 2
    assert data["max_in_flight"] == 2
    assert data["consistent"] is True


def test_rate_limit_refuses_a_limit_below_one() -> None:
    done = run_script_in(LESSON, "rate_limit", "--limit", "0")
    assert done.returncode == 2
    assert "--limit must be at least 1, not 0" in done.stderr


def test_gather_race_prose_shows_the_no_await_contrast() -> None:
    done = run_script_in(LESSON, "gather_race", "--time-scale", "0.01", "--seed", "2")
    assert done.returncode == 0, done.stderr
    assert "await cached_answer() (returns without suspending): 1000 of 1000" in done.stdout
    assert "await asyncio.sleep(0) (suspends): 1 of 1000" in done.stdout
