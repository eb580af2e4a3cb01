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
    assert any("distinct orderings explored" in line for line in data["summary"])


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


def test_a_workflow_that_takes_arguments_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["explore", "racefree.explore.lessons:nothing_lost", "--save-dir", str(tmp_path)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "racefree: error: racefree.explore.lessons:nothing_lost takes arguments; a workflow is "
        "a function with no arguments. Wrap it: def workflow(): return your_function(...).\n"
    )
    assert not list(tmp_path.iterdir())  # no replay file for bad input


def _replay_file(**fields: object) -> dict[str, object]:
    """A valid version 2 replay file of the lesson's broken agents, with ``fields`` changed."""
    return {
        "format": "racefree-replay",
        "version": 2,
        "workflow": "racefree.explore.lessons:unsafe",
        "argv": [],
        "invariants": ["racefree.explore.lessons:nothing_lost"],
        "check": True,
        "latency": "any",
        "max_steps": 20000,
        "schedule": "rf1:1:1",
        "agents": {},
        "failure": {"title": "lost"},
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {},
            '"workflow" must name a function as "package.module:function" or '
            '"path/to/script.py:function"',
        ),
        (
            {"workflow": "racefree.explore.lessons:unsafe", "invariants": ["nothing_lost"]},
            '"invariants" must be a list of "package.module:function" names',
        ),
        (
            {"workflow": "racefree.explore.lessons:unsafe", "latency": "slow"},
            '"latency" must be "any" or "virtual"',
        ),
        (
            {"workflow": "racefree.explore.lessons:unsafe", "agents": {"x": "A"}},
            '"agents" must map agent numbers ("0", "1", ...) to names',
        ),
        (
            {"workflow": "racefree.explore.lessons:unsafe", "failure": "lost"},
            '"failure" must be an object with a "title"',
        ),
    ],
)
def test_a_malformed_replay_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: dict[str, object], problem: str
) -> None:
    path = tmp_path / "replay.json"
    data = {**_replay_file(workflow=None), **fields}
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}), "utf-8")
    assert main(["replay", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"racefree: error: {path} is not a valid racefree replay file: {problem}. Re-run the "
        "exploration to record a fresh one.\n"
    )


def test_a_replay_from_another_racefree_version_says_so_when_it_diverges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.json"
    data = _replay_file(schedule="rf1:1:9,9", racefree="0.0.1")
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "This schedule was recorded with racefree 0.0.1, and you are running racefree" in err
    assert err.rstrip().endswith("`racefree explore racefree.explore.lessons:unsafe`.")


def test_stress_names_a_script_workflow_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.py").write_text("def workflow():\n    return 1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["stress", "app.py:workflow", "--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "app.py:workflow: 3 real runs" in out and "__racefree_script__" not in out


def test_a_generator_function_is_refused_not_explored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.py").write_text("def workflow():\n    yield 1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["explore", "app.py:workflow"]) == 2
    err = capsys.readouterr().err
    assert "is a generator function" in err and err.count("\n") == 1
