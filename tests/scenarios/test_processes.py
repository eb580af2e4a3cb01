"""Agents as separate OS processes: the same lost updates and the same fix, SQLite and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from racefree.cli import main
from racefree.errors import UsageError
from racefree.scenarios.llm import agent_names
from racefree.scenarios.processes import (
    LostAnswer,
    retried_append,
    run_concurrency_limited,
    run_processes,
)
from tests.state.redis_server import drop_namespace, fresh_redis_url, shared_redis_url

NAMES = agent_names(4)
SCALE = 0.1  # model calls of 0.1 to 0.3 s: every process reads before any writes


@pytest.fixture(params=["sqlite", "redis"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'demo.db'}"
    else:
        url = fresh_redis_url(shared_redis_url())
        yield url
        drop_namespace(url)


def test_broken_processes_lose_updates_and_fixed_ones_lose_none(shared_store: str) -> None:
    run = run_processes(NAMES, shared_store, seed=7, time_scale=SCALE)
    assert run.broken.lost_updates >= 1
    assert not run.broken.consistent
    assert len(run.broken.final_state["conversation_history"]) < len(NAMES)
    assert run.fixed.lost_updates == 0
    assert run.fixed.consistent
    fixed = run.fixed.final_state
    assert sorted(e["agent"] for e in fixed["conversation_history"]) == sorted(NAMES)
    assert fixed["completed"] == len(NAMES)
    assert set(fixed["agent_results"]) == set(NAMES)


def test_the_cli_runs_the_process_demo_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    argv = ["demo", "--store", url, "--processes", "3", "--time-scale", str(SCALE), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    broken, fixed = out["results"]
    assert out["store"] == url
    assert broken["lost_updates"] >= 1
    assert fixed["lost_updates"] == 0
    assert fixed["agents"] == agent_names(3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--store", "memory://"],
            "racefree: error: A memory:// store is private to one process, so separate "
            "processes cannot share it. Use --store sqlite:///demo.db (one machine) or "
            "--store redis://host:port/0.",
        ),
        (
            ["--processes", "4"],
            "racefree: error: --processes needs --store: the processes share state through "
            "it. Add --store sqlite:///demo.db (one machine) or --store redis://host:port/0.",
        ),
        (
            ["--store", "sqlite:///x.db", "--processes", "40"],
            "racefree: error: --processes must be between 2 and 16 with --store (one process "
            "per agent), not 40.",
        ),
        (
            ["--store", "sqlite:///x.db", "--agents", "20"],
            "racefree: error: --agents must be between 2 and 16 with --store (one process "
            "per agent), not 20.",
        ),
        (
            ["--store", "sqlite:///x.db", "--agents", "10", "--processes", "4"],
            "racefree: error: --agents 10 and --processes 4 disagree: with --store each agent "
            "is one process. Give one of them, or the same number to both.",
        ),
        (
            ["--store", "postgres://:pw@db/x"],
            "racefree: error: No store backend serves the URL 'postgres://***@db/x'. Known "
            "schemes: memory://, redis://, rediss://, sqlite://; open one of them, for "
            "example open_store('memory://').",
        ),
    ],
)
def test_bad_store_options_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *argv]) == 2
    err = capsys.readouterr().err
    assert err == message + "\n"


def test_an_unreachable_redis_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--store", "redis://:hunter2@127.0.0.1:1/0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("racefree: error: Cannot reach the Redis store redis://***@127.0.0.1:1/0")
    assert "hunter2" not in err


@pytest.mark.parametrize(
    "counts", [["--agents", "3"], ["--agents", "3", "--processes", "3"], ["--processes", "3"]]
)
def test_with_a_store_agents_is_the_number_of_processes(
    counts: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert main(["demo", "--store", url, *counts, "--time-scale", "0.05", "--json"]) == 0
    broken, fixed = json.loads(capsys.readouterr().out)["results"]
    assert broken["agents"] == fixed["agents"] == agent_names(3)


def test_without_agents_or_processes_the_store_demo_runs_four_processes_under_its_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert main(["demo", "--store", url, "--time-scale", "0.05", "--seed", "1"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"racefree demo: 4 agents as 4 OS processes sharing {url} "
        "(model calls 1-3 s x 0.05, seed 1)"
    )


def test_demo_help_says_agents_counts_processes_with_a_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--agents N 2 to 50 (default 3); with --store, one process per agent: sets the "
        "number of processes (2 to 16) when --processes is absent, and must equal it when "
        "both are given" in text
    )
    assert "2 to 16 (default 4, or --agents N)" in text


def test_retried_append_reports_its_simulated_lost_answer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    run = retried_append(url, use_key=True)
    assert (run["attempts"], run["dropped_answers"], run["answers"]) == (2, 1, [0])
    assert LostAnswer.__doc__ is not None and LostAnswer.__doc__.startswith("Simulated:")


def test_lesson05_rejects_a_memory_store_before_running(tmp_path: Path) -> None:
    message = (
        r"^A memory:// store is private to one process, so separate processes cannot share "
        r"it\. Use --store sqlite:///demo\.db \(one machine\) or --store redis://host:port/0\.$"
    )
    with pytest.raises(UsageError, match=message):
        retried_append("memory://", use_key=False)
    with pytest.raises(UsageError, match=message):
        run_concurrency_limited(NAMES, "memory://", slots=2, seed=0, time_scale=0.05)
