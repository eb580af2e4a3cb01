"""The lesson scripts, run as a learner runs them: from the lesson folder, with a
Python that has nothing installed (``-I -S``: no site-packages at all)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

import racefree
from racefree.cli import main
from tests.examples.lesson_scripts import run_json_in, run_script_in


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_script_in("01-race-conditions", name, *args)


def run_json(name: str, *args: str) -> dict[str, Any]:
    return run_json_in("01-race-conditions", name, *args)


def test_broken_sequential_json_is_consistent_and_about_the_sum() -> None:
    data = run_json("broken_sequential", "--time-scale", "0.03", "--seed", "9")
    assert data["scenario"] == "broken_sequential"
    assert data["agents"] == ["Researcher", "Analyzer", "Writer"]
    assert data["consistent"] is True
    assert data["lost_updates"] == 0
    assert 0.95 <= data["wall_seconds"] / data["latency_sum"] <= 1.5


def test_broken_parallel_json_loses_work_on_every_run_with_varying_survivors() -> None:
    outcomes = set()
    for seed in range(8):
        data = run_json("broken_parallel", "--time-scale", "0.03", "--seed", str(seed))
        assert data["lost_updates"] >= 1
        assert data["consistent"] is False
        assert data["lost_agents"]
        outcomes.add(tuple(sorted(set(data["agents"]) - set(data["lost_agents"]))))
    assert len(outcomes) >= 2


def test_simple_fix_json_is_consistent_and_its_speedup_is_measured() -> None:
    data = run_json("simple_fix", "--time-scale", "0.03", "--agents", "6", "--seed", "2")
    assert data["consistent"] is True
    assert data["lost_updates"] == 0
    assert len(data["agents"]) == 6
    assert data["speedup"] == pytest.approx(data["latency_sum"] / data["wall_seconds"], rel=0.02)
    assert data["speedup"] > 1.5


def test_race_condition_demo_json_has_exact_lost_counts() -> None:
    data = run_json("race_condition_demo", "--agents", "4", "--time-scale", "0.01")
    cases = {case["scenario"]: case for case in data["cases"]}
    assert cases["forced_counter"]["lost_updates"] == 3
    assert cases["forced_history_copy"]["lost_agents"] == ["Researcher", "Analyzer", "Writer"]
    assert cases["forced_check_then_act"]["actual"] == {"task_runs": 4}
    assert cases["forced_interleaved_turns"]["actual"] == {"messages": 8, "intact_turns": 0}
    assert cases["many_thread_appends"]["actual"] == {"items": 800_000}


@pytest.mark.parametrize(
    "script", ["broken_sequential", "broken_parallel", "simple_fix", "race_condition_demo"]
)
def test_prose_output_is_plain_text_when_piped(script: str) -> None:
    done = run_script(script, "--time-scale", "0.01", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    assert done.stdout.strip()


def test_prose_names_the_lost_agents_and_marks_them_in_the_timeline() -> None:
    done = run_script("broken_parallel", "--time-scale", "0.05", "--seed", "4")
    named = re.search(r"the work of (.+) is missing", done.stdout)
    assert named is not None, done.stdout
    lost = named.group(1).split(", ")
    assert len(lost) == 2
    for name in lost:
        assert re.search(rf"{name} +\|[^|]*\| +lost", done.stdout)
    [kept] = set(["Researcher", "Analyzer", "Writer"]) - set(lost)
    assert re.search(rf"{kept} +\|[^|]*\| +kept", done.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agents", "1"], "--agents must be between 2 and 200, not 1"),
        (["--time-scale", "0"], "must be a number above 0 and at most 100, not 0"),
        (["--time-scale", "1e308"], "must be a number above 0 and at most 100, not 1e308"),
        (["--history", "/no/such/folder/h.jsonl"], "cannot write /no/such/folder/h.jsonl"),
        (["--time-scale", "fast"], "'fast' is not a number"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], message: str) -> None:
    done = run_script("broken_parallel", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_saved_broken_history_is_explained_by_racefree_check(tmp_path: Path) -> None:
    saved = tmp_path / "broken.jsonl"
    data = run_json(
        "broken_parallel", "--time-scale", "0.02", "--seed", "6", "--history", str(saved)
    )
    report = racefree.check(racefree.History.from_jsonl(saved))
    assert not report.ok
    lost = {
        entry.agent for finding in report.errors for entry in finding.lost if not entry.restored
    }
    assert lost == set(data["lost_agents"])
    assert main(["check", str(saved)]) == 1


def test_a_saved_fixed_history_checks_clean(tmp_path: Path) -> None:
    saved = tmp_path / "fixed.jsonl"
    run_json("simple_fix", "--time-scale", "0.01", "--seed", "6", "--history", str(saved))
    assert main(["check", str(saved)]) == 0
