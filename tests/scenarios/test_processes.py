"""Agents as separate OS processes: the same lost updates and the same fix, SQLite and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from racefree.cli import main
from racefree.scenarios.llm import agent_names
from racefree.scenarios.processes import run_processes
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
            "racefree: error: --processes must be between 2 and 16, not 40.",
        ),
        (
            ["--store", "postgres://:pw@db/x"],
            "racefree: error: No store backend serves the URL 'postgres://:***@db/x'. Known "
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
    assert err.startswith(
        "racefree: error: Cannot reach the Redis store redis://:***@127.0.0.1:1/0"
    )
    assert "hunter2" not in err
