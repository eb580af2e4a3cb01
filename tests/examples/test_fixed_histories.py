"""Every fixed lesson script's saved history checks clean: the checker agrees with the lessons."""

from __future__ import annotations

from pathlib import Path

import pytest

from racefree import History, check
from tests.examples.lesson_scripts import run_json_in

FIXED = [
    ("01-race-conditions", "broken_sequential"),
    ("01-race-conditions", "simple_fix"),
    ("02-async-await", "sequential_awaits"),
    ("02-async-await", "gather_await_first"),
    ("02-async-await", "gather_with_lock"),
    ("02-async-await", "gather_with_store"),
    ("02-async-await", "rate_limit"),
    ("03-thread-safety", "fix_lock"),
    ("03-thread-safety", "fix_reducers"),
    ("03-thread-safety", "fix_optimistic"),
    ("03-thread-safety", "fix_actor"),
]


@pytest.mark.parametrize(("lesson", "script"), FIXED)
def test_a_fixed_scripts_history_has_no_finding(lesson: str, script: str, tmp_path: Path) -> None:
    saved = tmp_path / "run.jsonl"
    data = run_json_in(
        lesson, script, "--agents", "4", "--time-scale", "0.01", "--history", str(saved)
    )
    assert data["consistent"] is True
    history = History.from_jsonl(saved)
    assert history.events, "the script saved no events"
    report = check(history)
    assert report.findings == (), report.text()
