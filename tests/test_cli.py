from __future__ import annotations

import json
import subprocess
import sys

import pytest

from racefree import __version__
from racefree.cli import main


def test_python_dash_m_racefree_prints_the_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "racefree", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"racefree {__version__}"


def test_demo_json_has_the_summary_of_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json", "--time-scale", "0.02", "--seed", "0"]) == 0
    data = json.loads(capsys.readouterr().out)
    scenarios = [r["scenario"] for r in data["results"]]
    assert scenarios[0] == "broken_sequential"
    assert scenarios[1:6] == ["broken_parallel"] * 5
    assert scenarios[6] == "simple_fix"
    assert "forced_counter" in scenarios
    parallel = data["results"][1:6]
    assert all(r["lost_updates"] >= 1 for r in parallel)
    assert [r["seed"] for r in parallel] == [0, 1, 2, 3, 4]
    survivors = {tuple(sorted(set(r["agents"]) - set(r["lost_agents"]))) for r in parallel}
    assert data["distinct_parallel_outcomes"] == len(survivors)
    assert data["results"][0]["consistent"] and data["results"][6]["consistent"]


def test_demo_prints_a_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--time-scale", "0.02", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    header = "scenario"
    assert header in out and "lost updates" in out and "consistent" in out
    assert "parallel, unsafe #5" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--agents", "1"], "racefree: error: --agents must be between 2 and 50, not 1.\n"),
        (
            ["demo", "--time-scale", "-1"],
            "racefree: error: --time-scale must be above 0 and at most 10, not -1.0.\n",
        ),
    ],
)
def test_demo_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == message
