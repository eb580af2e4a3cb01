"""racefree explore / replay / stress: thin commands whose output ends with what to paste."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from racefree.cli import main


def test_explore_finds_the_lesson_race_and_ends_with_the_replay_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["explore", "racefree.explore.lessons:unsafe", "--schedules", "50"]) == 1
    out = capsys.readouterr().out.rstrip().splitlines()
    assert "lost update on conversation_history" in "\n".join(out)
    command = out[-1].strip()
    assert command.startswith("racefree replay .racefree/replays/unsafe-")
    assert main(["replay", command.split()[-1]]) == 1
    assert "failed on schedule 1" in capsys.readouterr().out


def test_exhaustive_explore_of_the_fix_says_every_ordering_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["explore", "racefree.explore.lessons:locked", "--strategy", "exhaustive", "--json"]
    assert main([*args, "--schedules", "5000"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] is True
    assert data["failures"] == []
    assert "distinct orderings explored" in data["summary"][-1]


def test_stress_runs_for_real(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stress", "tests.explore.workflows:double_claim", "--runs", "20"]) == 0
    assert "20 real runs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explore", "no_such_module:wf"], "Cannot import 'no_such_module'"),
        (["explore", "racefree"], "does not name a workflow"),
        (["replay", "missing.json"], "No replay file at missing.json."),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("racefree: error: ") and message in err
    assert err.count("\n") == 1
