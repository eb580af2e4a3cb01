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
    assert done.stdout.startswith("No Redis: using a SQLite file instead")
    assert "with an idempotency key: 2 attempts, 1 entry stored" in done.stdout
