"""Lesson 05's scripts as a learner runs them, on SQLite and on the tests' real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.state.redis_server import drop_namespace, fresh_redis_url, shared_redis_url

LESSON = Path(__file__).resolve().parents[2] / "examples" / "05-production"


def run(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Redis needs the redis package: keep site-packages (but not the user's PYTHONPATH).
    return subprocess.run(
        [sys.executable, "-E", f"{name}.py", *args],
        cwd=LESSON,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'agents.db'}"
    else:
        url = fresh_redis_url(shared_redis_url())
        yield url
        drop_namespace(url)


def json_of(name: str, *args: str) -> Any:
    done = run(name, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_workers_lose_updates_when_broken_and_none_when_fixed(store: str) -> None:
    out = json_of("workers", "--store", store, "--agents", "3", "--time-scale", "0.1")
    broken, fixed = out["results"]
    assert broken["lost_updates"] >= 1
    assert fixed["lost_updates"] == 0 and fixed["consistent"]


def test_a_retry_duplicates_without_a_key_and_counts_once_with_one(store: str) -> None:
    without, with_key = json_of("retries", "--store", store)["runs"]
    assert len(without["stored"]) == 2
    assert len(with_key["stored"]) == 1
    assert with_key["answers"] == [0]


def test_the_rate_limit_holds_across_processes(store: str) -> None:
    out = json_of("rate_limit", "--store", store, "--agents", "4", "--slots", "2")
    assert out["calls"] == 4
    assert 1 <= out["peak_in_flight"] <= 2


def test_without_redis_the_script_says_how_to_get_one_and_uses_sqlite() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = run("retries", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("No Redis: using a temporary SQLite file instead")
    assert "with an idempotency key: 2 attempts, 1 entry stored" in done.stdout


# ----------------------------------------------------------------- options, errors, clean-up

SCRIPTS = ["workers", "retries", "rate_limit"]


def env_without_redis(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(extra)
    return env


MEMORY_MESSAGE = (
    "A memory:// store is private to one process, so separate processes cannot share it. "
    "Use --store sqlite:///demo.db (one machine) or --store redis://host:port/0."
)
UNKNOWN_MESSAGE = (
    "No store backend serves the URL 'foo://'. Known schemes: memory://, redis://, "
    "rediss://, sqlite://; open one of them, for example open_store('memory://')."
)


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize(
    ("url", "message"), [("memory://", MEMORY_MESSAGE), ("foo://", UNKNOWN_MESSAGE)]
)
def test_a_bad_store_is_one_line_naming_the_script_and_exit_2(
    name: str, url: str, message: str
) -> None:
    done = run(name, "--store", url)
    assert done.returncode == 2
    assert done.stderr == f"{name}.py: error: {message}\n"
    assert done.stdout == ""


@pytest.mark.parametrize("name", SCRIPTS)
def test_an_unwritable_sqlite_path_is_one_line_and_exit_2(name: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    url = f"sqlite:///{tmp_path / 'a-file' / 'agents.db'}"
    done = run(name, f"--store={url}")
    assert done.returncode == 2
    assert done.stderr == (
        f"{name}.py: error: The SQLite store {url} cannot be used: unable to open database "
        f"file. Nothing was written; check that {tmp_path / 'a-file' / 'agents.db'} is a "
        "racefree SQLite store and that its folder exists and is writable (sqlite:///name.db "
        "is relative to the current folder, sqlite:////abs/name.db absolute).\n"
    )


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_documents_store_and_prints_no_notice(name: str) -> None:
    done = run(name, "--help", env=env_without_redis())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {name}.py [-h]")
    assert "--store URL" in done.stdout
    assert "the store the worker processes share" in " ".join(done.stdout.split())
    assert "No Redis" not in done.stdout


def test_retries_does_not_accept_options_it_would_ignore() -> None:
    done = run("retries", "--agents", "3", "--seed", "1", "--time-scale", "0.5")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "retries.py: error: unrecognized arguments: --agents 3 --seed 1 --time-scale 0.5"
    )
    assert "--agents" not in run("retries", "--help").stdout


def test_store_equals_url_works_and_a_given_store_prints_no_notice(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    done = run("workers", f"--store=sqlite:///{db}", "--agents", "2", "--time-scale", "0.05")
    assert done.returncode == 0, done.stderr
    assert "No Redis" not in done.stdout
    assert db.exists()  # the user's own store is kept


def test_a_reachable_redis_url_in_the_environment_prints_no_notice() -> None:
    url = fresh_redis_url(shared_redis_url())
    try:
        done = run("retries", env={**os.environ, "REDIS_URL": url})
    finally:
        drop_namespace(url)
    assert done.returncode == 0, done.stderr
    assert "No Redis" not in done.stdout


def test_retries_says_the_lost_answer_is_simulated(store: str) -> None:
    done = run("retries", "--store", store)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Simulated timeout: the agent's first write reaches the store and succeeds, but the "
        "store the script hands it drops the answer on purpose and raises TimeoutError, as a "
        "network timeout would. The agent cannot tell whether the write happened, so it sends "
        "the same write again.",
        "without a key: 2 attempts, 2 entries stored  <- a duplicate",
        "with an idempotency key: 2 attempts, 1 entry stored",
    ]
    out = json_of("retries", "--store", store)
    assert out["simulated"].startswith("Simulated timeout: ")
    assert [r["dropped_answers"] for r in out["runs"]] == [1, 1]


def test_workers_output_names_the_script_not_the_demo(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agents.db'}"
    done = run("workers", "--store", url, "--agents", "2", "--time-scale", "0.05")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        f"workers.py (lesson 05): 2 agents as 2 OS processes sharing {url} "
        "(model calls 1-3 s x 0.05, seed 0)"
    )
    assert "racefree demo" not in done.stdout


def test_rate_limit_calls_itself_a_concurrency_limit_without_expiry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agents.db'}"
    done = run("rate_limit", "--store", url, "--agents", "2", "--time-scale", "0.05")
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("Concurrency limit: 2 worker processes, 2 slots: at most ")
    assert second.startswith(
        "This is a concurrency limit (how many calls are in flight at once), not a rate "
        "limit (how many calls start per time window"
    )
    assert "never expire" in second and "lease" in second
    out = json_of("rate_limit", "--store", url, "--agents", "2", "--time-scale", "0.05")
    assert out["scenario"] == "concurrency_limit"
    assert out["slot_expiry"] is None


@pytest.mark.parametrize(
    "args",
    [
        ["workers", "--agents", "2", "--time-scale", "0.05"],
        ["rate_limit", "--agents", "2", "--time-scale", "0.05"],
        ["retries"],
        ["retries", "--json"],
    ],
)
def test_the_temporary_sqlite_folder_is_deleted(args: list[str], tmp_path: Path) -> None:
    done = run(*args, env=env_without_redis(TMPDIR=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []
    if "--json" not in args:  # the notice says a temporary file was used
        assert done.stdout.startswith("No Redis: using a temporary SQLite file instead")
