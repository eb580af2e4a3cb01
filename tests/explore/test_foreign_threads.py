"""Threads the explorer does not own are left alone.

A library (here a module imported from a ``site-packages`` folder, as pip
installs one) that starts a daemon thread with its own event loop during a
run must not become an agent: no false step limit, no false deadlock, no
internal error; a workflow that is correct gets a clean verdict and one that
is not still gets its race. ``threads=`` rules change the default.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from racefree import hooks
from racefree.errors import UsageError
from racefree.explore import explore
from racefree.explore._patches import _EPOCH

from .foreign import installed_library

pytest_plugins = ["pytester"]


@pytest.fixture
def lib(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    module = installed_library(tmp_path, f"fakelib_{request.node.name[:40]}")
    yield module
    if module._bus is not None:  # what a library's atexit hook would do
        module._bus.stop()


def agents_with_a_bus(lib: ModuleType, locked: bool) -> Any:
    """Two agents update one counter and report to the library's event bus."""

    def workflow() -> dict[str, int]:
        state = {"n": 0}
        guard = threading.Lock()

        def agent(name: str) -> None:
            lib.bus().emit(f"{name} starts")  # the bus thread starts in the first run
            if locked:
                guard.acquire()
            hooks.point("read", "n")
            seen = state["n"]
            time.sleep(0.1)
            hooks.point("write", "n")
            state["n"] = seen + 1
            if locked:
                guard.release()
            lib.bus().emit(f"{name} done")

        run_all([threading.Thread(target=agent, args=(f"A{i}",)) for i in range(2)])
        return state

    return workflow


def run_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def both_counted(state: dict[str, int]) -> bool:
    return state["n"] == 2


def test_a_library_event_loop_thread_gives_a_correct_workflow_a_clean_verdict(
    lib: ModuleType,
) -> None:
    result = explore(
        agents_with_a_bus(lib, locked=True), schedules=60, invariants=[both_counted], save_dir=None
    )
    assert result.ok, result.report()
    assert result.runs == 60
    assert not lib.bus().thread.name.startswith("A")
    assert len(lib.bus().seen) == 60 * 4  # every event reached the bus, in real time
    assert lib.bus().emit("after the exploration") == 60 * 4 + 1  # and it still works


def test_the_real_race_is_still_found_beside_a_library_event_loop(lib: ModuleType) -> None:
    result = explore(
        agents_with_a_bus(lib, locked=False),
        schedules=200,
        invariants=[both_counted],
        save_dir=None,
    )
    assert result.failure is not None
    assert result.failure.failure.kind == "invariant"
    assert result.failure.failure.name == "both_counted"


def test_a_polling_library_exporter_is_no_step_limit(lib: ModuleType) -> None:
    """The OpenAI Agents SDK's shape: default tracing starts a thread that polls forever."""
    result = explore(
        agents_with_spans(lib), schedules=100, invariants=[both_counted], save_dir=None
    )
    assert result.ok, result.report()
    assert result.runs == 100


def agents_with_spans(lib: ModuleType) -> Any:
    def workflow() -> dict[str, int]:
        state = {"n": 0}
        guard = threading.Lock()

        def agent() -> None:
            lib.exporter().record("span")  # starts the exporter on first use
            with guard:
                hooks.point("read", "n")
                seen = state["n"]
                time.sleep(0.1)
                hooks.point("write", "n")
                state["n"] = seen + 1

        run_all([threading.Thread(target=agent) for _ in range(2)])
        return state

    return workflow


def test_a_thread_started_by_library_code_runs_free_in_real_time(lib: ModuleType) -> None:
    seen: list[float] = []

    def workflow() -> None:
        seen.append(lib.clock_seen_by_worker())

    explore(workflow, schedules=1, save_dir=None).check()
    assert seen[0] > _EPOCH + 10**7  # the real clock (virtual time.time() starts at _EPOCH)


def test_threads_rules_make_a_library_thread_an_agent(lib: ModuleType) -> None:
    seen: list[float] = []

    def workflow() -> None:
        seen.append(lib.clock_seen_by_worker())

    explore(workflow, schedules=1, threads=["explore:fakelib-*"], save_dir=None).check()
    assert seen == [_EPOCH]  # virtual time: the worker ran as an agent
    seen.clear()
    explore(workflow, schedules=1, threads=[f"explore:{lib.__name__}"], save_dir=None).check()
    assert seen == [_EPOCH]  # the same rule by module


def test_threads_rules_make_a_workflow_thread_free() -> None:
    clocks: list[float] = []

    def workflow() -> None:
        thread = threading.Thread(target=lambda: clocks.append(time.time()), name="Exporter")
        thread.start()
        thread.join()

    explore(workflow, schedules=1, save_dir=None).check()
    explore(workflow, schedules=1, threads=["free:Export*"], save_dir=None).check()
    assert clocks[0] == _EPOCH and clocks[1] > _EPOCH + 10**7


@pytest.fixture
def outside_worker() -> Any:
    """A thread started before the exploration that runs what it is handed, as a
    library's long-lived worker does; SimpleQueue is C code, outside the schedule."""
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def serve() -> None:
        while (job := jobs.get()) is not None:
            job()

    thread = threading.Thread(target=serve, name="outside-worker")
    thread.start()
    yield jobs
    jobs.put(None)
    thread.join()


def test_a_thread_outside_the_exploration_takes_a_lock_made_during_the_run(
    outside_worker: Any,
) -> None:
    def workflow() -> list[str]:
        log: list[str] = []
        finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        lock = threading.Lock()  # a virtual lock: made by an agent during the run

        def job() -> None:
            with lock:  # a real wait: the agent holds the lock
                log.append("outside")
            finished.put(1)

        with lock:
            outside_worker.put(job)
            time.sleep(5)  # virtual time; the outside thread waits for the lock in real time
            log.append("agent")
        finished.get(timeout=10)  # a real wait, holding the baton
        return log

    result = explore(workflow, schedules=20, invariants=[lambda log: log == ["agent", "outside"]])
    assert result.ok, result.report()


def test_a_thread_outside_the_exploration_can_end_an_agents_wait(outside_worker: Any) -> None:
    """A Future that a thread outside the exploration sets wakes the agent waiting on it:
    no false deadlock while that thread may still act."""

    def workflow() -> str:
        answer: Future[str] = Future()
        outside_worker.put(lambda: answer.set_result("done"))
        return answer.result(timeout=10)

    result = explore(workflow, schedules=5, invariants=[lambda got: got == "done"])
    assert result.ok, result.report()


def test_a_free_thread_can_end_an_agents_wait(lib: ModuleType) -> None:
    def workflow() -> str:
        answer: Future[str] = Future()
        lib.in_background(lambda: answer.set_result("done"), daemon=True)
        return answer.result()

    result = explore(workflow, schedules=5, invariants=[lambda got: got == "done"])
    assert result.ok, result.report()


def test_a_daemon_agent_left_waiting_does_not_keep_the_run_alive() -> None:
    def workflow() -> int:
        jobs: list[int] = []
        wake = threading.Event()

        def listener() -> None:  # waits forever, like a daemon that serves requests
            wake.wait()
            jobs.append(1)

        threading.Thread(target=listener, daemon=True, name="Listener").start()
        return len(jobs)

    result = explore(workflow, strategy="exhaustive")
    assert result.ok, result.report()  # no deadlock: the daemon is unwound at the end


def test_a_daemon_agent_started_by_the_workflow_is_explored() -> None:
    def workflow() -> dict[str, int]:
        state = {"n": 0}

        def agent() -> None:
            hooks.point("read", "n")
            seen = state["n"]
            time.sleep(0.1)
            hooks.point("write", "n")
            state["n"] = seen + 1

        threads = [threading.Thread(target=agent, daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return state

    result = explore(workflow, strategy="exhaustive", invariants=[both_counted], save_dir=None)
    assert result.failure is not None and result.failure.failure.kind == "invariant"


@pytest.mark.parametrize("rule", ["free", "explore:", "later:x", "Exporter"])
def test_a_malformed_threads_rule_is_refused(rule: str) -> None:
    message = (
        rf"^threads rules look like 'explore:PATTERN' or 'free:PATTERN', not '{rule}'; "
        r"PATTERN is a thread name or a module \(wildcards allowed\), for example "
        r"'free:opentelemetry' or 'explore:Worker-\*'\.$"
    )
    with pytest.raises(UsageError, match=message):
        explore(lambda: None, threads=[rule])


def test_a_real_deadlock_beside_an_idle_library_thread_is_still_a_deadlock(
    lib: ModuleType,
) -> None:
    def workflow() -> None:
        lib.bus().emit("start")  # the bus thread now idles in its loop's select
        first, second = threading.Lock(), threading.Lock()

        def one() -> None:
            with first:
                time.sleep(0.1)
                with second:
                    pass

        def other() -> None:
            with second:
                time.sleep(0.1)
                with first:
                    pass

        threads = [threading.Thread(target=one, name="One"), threading.Thread(target=other)]
        threads[1].name = "Other"
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    result = explore(workflow, strategy="exhaustive", watchdog=20, save_dir=None)
    found = result.failure
    assert found is not None and found.failure.kind == "deadlock"
    assert found.failure.title.endswith(
        "Threads the explorer does not run were alive; none of them released a waiting agent."
    )
    assert "One waits for lock#" in found.failure.title
    assert "Other waits for lock#" in found.failure.title


def test_events_a_free_thread_records_stay_out_of_the_runs_history(lib: ModuleType) -> None:
    from racefree import track
    from racefree.track import history_of

    shared: list[Any] = []

    def workflow() -> Any:
        session = track({"notes": []})
        shared.append(session)
        lib.in_background(lambda: session.__setitem__("exporter", "flushed")).join()
        session["agent"] = "wrote"
        return session

    def always_fails(state: Any) -> bool:
        return False  # to get the run back in the report

    result = explore(workflow, schedules=1, invariants=[always_fails], save_dir=None)
    assert result.failure is not None
    keys_in_run = {event.key for event in result.failure.run.history.events}
    recorded = {event.key for event in history_of(shared[-1]).events}
    assert "exporter" in recorded  # the free thread's write was recorded in its history
    assert "exporter" not in keys_in_run  # but the checker never saw it
    assert "agent" in keys_in_run


def test_an_event_loop_made_in_one_agent_and_run_by_another_is_explored() -> None:
    """The event-bus shape in the workflow's own code: both threads are agents."""

    def workflow() -> list[int]:
        import asyncio

        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_forever, name="Bus")
        runner.start()
        seen: list[int] = []

        async def handle(n: int) -> int:
            await asyncio.sleep(0.5)  # virtual: the loop is the explorer's
            seen.append(n)
            return n

        results = [asyncio.run_coroutine_threadsafe(handle(n), loop).result() for n in (1, 2)]
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
        return results + seen

    result = explore(workflow, strategy="exhaustive", invariants=[lambda got: got == [1, 2, 1, 2]])
    assert result.ok, result.report()
    assert result.runs >= 1


MARKED = """
import threading, time
import pytest

def clock_in_exporter():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(time.time()), name="Exporter")
    thread.start()
    thread.join()
    return seen[0]

@pytest.mark.racefree(schedules=3, threads=["free:Exporter"], check=False)
def test_exporter_runs_free():
    assert clock_in_exporter() > 1_700_000_000 + 10**7  # the real clock

@pytest.mark.racefree(schedules=3, check=False)
def test_exporter_is_an_agent_by_default():
    assert clock_in_exporter() == 1_700_000_000.0  # virtual time starts there
"""


def test_the_pytest_marker_takes_threads_rules(pytester: pytest.Pytester) -> None:
    from importlib.metadata import entry_points

    installed = any(e.value == "racefree.pytest_plugin" for e in entry_points(group="pytest11"))
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest(*([] if installed else ["-p", "racefree.pytest_plugin"]), "-q")
    result.assert_outcomes(passed=2)
