"""Lesson 06's scripts as a learner runs them, with the frameworks installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LESSON = Path(__file__).resolve().parents[2] / "examples" / "06-frameworks"
RACEFREE = Path(sys.executable).with_name("racefree")

# script -> (the framework it needs, the checker's title on the recorded run)
SCRIPTS = {
    "openai_agents_double_text": (
        "agents",
        "Checker: interleaved turn on session table-for-friday (Concierge (run 1), Concierge "
        "(run 2))",
    ),
    "adk_double_text": (
        "google.adk",
        "Checker: lost update on session s1 state.cart (shopper (run 2), shopper (run 1))",
    ),
    "langgraph_double_text": ("langgraph", "Checker: lost update on thread ann (run 2, run 1)"),
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    # The frameworks live in site-packages: keep it (but not the user's PYTHONPATH).
    return subprocess.run(
        [sys.executable, "-E", *args], cwd=LESSON, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_the_script_finds_the_race_then_the_fix_passes_every_ordering(script: str) -> None:
    framework, title = SCRIPTS[script]
    pytest.importorskip(framework, reason=f"install racefree's extra for {framework}")
    done = run(f"{script}.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert title in done.stdout
    assert "Complete: all " in done.stdout
    assert " 0 failing" in done.stdout.split("2. racefree's")[1]


def test_the_fix_runs_on_a_sqlite_file(tmp_path: Path) -> None:
    pytest.importorskip("langgraph")
    done = run("langgraph_double_text.py", "--store", f"sqlite:///{tmp_path / 'lg.db'}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "StoreCheckpointer on sqlite:///" in done.stdout


def test_racefree_explore_finds_the_race_from_the_lesson_folder(tmp_path: Path) -> None:
    pytest.importorskip("langgraph")
    replays = ["--save-dir", str(tmp_path)]  # not into the lesson folder
    broken = subprocess.run(
        [str(RACEFREE), "explore", "langgraph_double_text:broken", *replays],
        cwd=LESSON,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "Checker: lost update on thread ann (run 2, run 1)" in broken.stdout
    assert list(tmp_path.glob("*.json"))  # the replay file went where it was told
    fixed = subprocess.run(
        [
            str(RACEFREE),
            "explore",
            "langgraph_double_text:fixed",
            "--strategy",
            "exhaustive",
            *replays,
        ],
        cwd=LESSON,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Complete: all " in fixed.stdout
