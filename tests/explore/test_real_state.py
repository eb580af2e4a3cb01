"""Tracked state used the way real agent code and libraries use it: deep copies,
JSON dumps, dataclasses and pydantic models, under the explorer.

Each workflow is the load / call the model / save shape that loses updates in
real agent code; the session services and tracers in the middle stand for what
libraries do with the state (hand out a deep copy of it, serialise it).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

import racefree
from racefree.explore import explore

AGENTS = ("Planner", "Writer")


def _run_agents(body: Callable[[str], None]) -> None:
    threads = [threading.Thread(target=body, args=(name,), name=name) for name in AGENTS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- "libraries": what a session service and a tracer do with the state -----------------


def get_session(state: Any) -> Any:
    """A session service's get_session: callers get a deep copy, never the live object."""
    return copy.deepcopy(state)


def export_trace(state: Any) -> str:
    """A tracing exporter: the state goes out as JSON."""
    if isinstance(state, BaseModel):
        return state.model_dump_json()
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return json.dumps(dataclasses.asdict(state))
    return json.dumps(state, sort_keys=True)


# The Writer starts a second later: with natural timing the Planner has saved by then,
# so no run loses anything unless the explorer makes a sleep or a model call end early.
START = {"Planner": 0.0, "Writer": 1.0}


def call_model(name: str) -> str:
    time.sleep(0.5)  # the model call: other agents run meanwhile
    return f"{name}: done"


# --- the workflows ---------------------------------------------------------------------------


def dict_session(lock: threading.Lock | None = None) -> dict[str, Any]:
    session: dict[str, Any] = {"history": [], "tokens": 0}
    shared = racefree.track(session, name="session")

    def agent(name: str) -> None:
        time.sleep(START[name])
        with racefree.agent(name), lock or contextlib.nullcontext():
            mine = get_session(shared)
            export_trace(shared)
            mine["history"].append(call_model(name))
            mine["tokens"] += 10
            shared.update(mine)  # save: every key written back from the copy

    _run_agents(agent)
    return session


@dataclasses.dataclass
class Session:
    history: list[str] = dataclasses.field(default_factory=list)
    tokens: int = 0


class ModelSession(BaseModel):
    history: list[str] = []
    tokens: int = 0


def _object_agents(session: Any, load: Callable[[Any], Any], lock: Any) -> None:
    """The agents on a session object: load a copy, call the model, save field by field."""
    shared = racefree.track(session, name="session")

    def agent(name: str) -> None:
        time.sleep(START[name])
        with racefree.agent(name), lock or contextlib.nullcontext():
            mine = load(shared)
            export_trace(shared)
            mine.history.append(call_model(name))
            shared.history = mine.history
            shared.tokens = mine.tokens + 10

    _run_agents(agent)


def dataclass_session(lock: threading.Lock | None = None) -> dict[str, Any]:
    session = Session()
    _object_agents(session, get_session, lock)
    return dataclasses.asdict(session)


def pydantic_session(lock: threading.Lock | None = None) -> dict[str, Any]:
    session = ModelSession()
    _object_agents(session, lambda shared: shared.model_copy(deep=True), lock)
    return session.model_dump()


def both_replies_kept(state: dict[str, Any]) -> bool:
    """Every agent's reply is in the saved history."""
    return len(state["history"]) == len(AGENTS)


WORKFLOWS = [dict_session, dataclass_session, pydantic_session]


def _lost_updates(workflow: Any) -> tuple[Any, list[str]]:
    """Explore ``workflow`` with only the checker; the failing run and its lost-update stories."""
    result = explore(workflow, strategy="exhaustive", schedules=500, save_dir=None)
    assert not result.ok
    failure = result.failure
    assert failure is not None
    checker = [f for f in failure.run.failures if f.kind == "checker"]
    assert checker and {f.name for f in checker} == {"lost-update"}
    return failure, [" ".join(f.details) for f in checker]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.__name__)
def test_the_checker_finds_the_lost_update_without_an_invariant(workflow: Any) -> None:
    failure, stories = _lost_updates(workflow)
    for story in stories:
        # Who read, who wrote meanwhile, who wrote from the old copy, whose write is gone.
        assert re.search(r"^(Planner|Writer) read session\.(history|tokens) at v\d", story)
        assert re.search(r"then wrote session\.\w+ at v\d+ from its copy of v\d+", story)
        assert set(AGENTS) <= set(re.findall(r"Planner|Writer", story)), story
    assert failure.run.deviations >= 1  # natural timing loses nothing: the explorer found it


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.__name__)
def test_the_timeline_agrees_with_the_story_on_the_version_read(workflow: Any) -> None:
    failure, stories = _lost_updates(workflow)
    timeline = "\n".join(failure.timeline())
    for story in stories:
        found = re.search(r"then wrote (session\.\w+) at v(\d+) from its copy of v(\d+)", story)
        assert found is not None, story
        key, made, based_on = found.groups()
        assert f"write {key} (from v{based_on}, makes v{made})" in timeline, timeline


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.__name__)
def test_the_default_exploration_finds_it_too(workflow: Any) -> None:
    result = explore(workflow, save_dir=None)
    assert result.failure is not None
    assert {f.name for f in result.failure.run.failures} == {"lost-update"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.__name__)
def test_natural_timing_loses_nothing(workflow: Any) -> None:
    # Sleeps and model calls ending in deadline order: the Writer loads after the save.
    result = explore(
        workflow,
        strategy="exhaustive",
        latency="virtual",
        schedules=500,
        invariants=[both_replies_kept],
        save_dir=None,
    )
    assert result.ok and result.complete, result.report()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.__name__)
def test_the_lost_reply_also_breaks_the_invariant(workflow: Any) -> None:
    result = explore(
        workflow,
        strategy="exhaustive",
        schedules=500,
        invariants=[both_replies_kept],
        check=False,
        save_dir=None,
    )
    assert result.failure is not None
    assert [f.kind for f in result.failure.run.failures] == ["invariant"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.__name__)
def test_one_lock_from_load_to_save_passes_every_ordering(workflow: Any) -> None:
    def locked() -> dict[str, Any]:
        return workflow(threading.Lock())  # type: ignore[no-any-return]

    result = explore(
        locked,
        strategy="exhaustive",
        schedules=500,
        invariants=[both_replies_kept],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.__name__)
def test_outside_an_exploration_the_state_is_plain_data_at_the_end(workflow: Any) -> None:
    final = workflow(threading.Lock())
    assert final["tokens"] == 20
    assert sorted(final["history"]) == ["Planner: done", "Writer: done"]
    json.dumps(final)


async def asyncio_dataclass_session() -> dict[str, Any]:
    """The same shape with asyncio tasks: each awaits its model call between load and save."""
    session = Session()
    shared = racefree.track(session, name="session")

    async def agent(name: str) -> None:
        mine = get_session(shared)
        await asyncio.sleep(0.5)
        mine.history.append(f"{name}: done")
        shared.history = mine.history

    await asyncio.gather(*(asyncio.create_task(agent(n), name=n) for n in AGENTS))
    return dataclasses.asdict(session)


def test_asyncio_tasks_on_a_tracked_dataclass_lose_the_update_and_the_checker_says_who() -> None:
    result = explore(asyncio_dataclass_session, save_dir=None)
    assert result.failure is not None
    [finding] = result.failure.run.failures
    assert finding.name == "lost-update" and "on session.history " in finding.title
    assert set(AGENTS) <= set(re.findall(r"Planner|Writer", " ".join(finding.details)))


# --- a dict's keys: len(), keys() and iteration against adding and removing keys ----------


def capped_jobs() -> list[int]:
    """At most one job at a time, checked with len(active): two agents can both see none
    running (check-then-act on the dict's size). In natural timing the Writer comes after
    the Planner's job is over; a quicker start makes both run at once."""
    active = racefree.track({}, name="active")
    peaks: list[int] = []

    def agent(name: str) -> None:
        time.sleep(0.0 if name == "Planner" else 0.5)
        while len(active) >= 1:
            time.sleep(0.05)
        time.sleep(0.01)  # open a connection
        active[name] = True
        peaks.append(len(active))
        time.sleep(0.2)  # the job
        del active[name]

    _run_agents(agent)
    return peaks


def one_at_a_time(peaks: list[int]) -> bool:
    return max(peaks) == 1


def test_the_size_of_a_dict_is_ordered_against_a_key_added_to_it() -> None:
    result = explore(capped_jobs, strategy="exhaustive", invariants=[one_at_a_time], save_dir=None)
    assert result.failure is not None, result.report()
    assert 2 in result.failure.run.result  # both jobs ran at once


def reported_workers() -> list[str]:
    """A coordinator waits 'long enough' and lists who reported; a worker whose tool is
    slow has not yet: the listing races with each worker's new key."""
    results = racefree.track({}, name="results")
    listed: list[str] = []

    def worker(name: str) -> None:
        time.sleep(1.0)
        results[name] = "done"

    def coordinator() -> None:
        time.sleep(0.5)
        listed.extend(sorted(results.keys()))

    threads = [threading.Thread(target=worker, args=(n,), name=n) for n in AGENTS]
    threads.append(threading.Thread(target=coordinator, name="Coordinator"))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return listed


def test_listing_a_dicts_keys_is_ordered_against_each_key_added() -> None:
    seen: set[tuple[str, ...]] = set()

    def record(listed: list[str]) -> bool:
        seen.add(tuple(listed))
        return True

    result = explore(reported_workers, strategy="exhaustive", invariants=[record], save_dir=None)
    assert result.ok and result.complete, result.report()
    assert seen == {(), ("Planner",), ("Writer",), ("Planner", "Writer")}
    # Four outcomes of tracked state are four orderings at least: "all N" was "all 1".
    assert result.distinct >= len(seen), result.coverage()
