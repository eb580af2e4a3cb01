"""An exploration can always be stopped: Ctrl-C, the time limit, a running event loop.

Ctrl-C is a real SIGINT that the workflow sends to its own process at a chosen
step of a chosen run, so where it lands is fixed by the test, not by timing.
"""

from __future__ import annotations

import _thread
import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from racefree import hooks
from racefree.errors import UsageError
from racefree.explore import _patches, explore, lessons

from .foreign import wait_for_threads

_ORIGINAL_LOCK = threading.Lock  # as imported, before any exploration

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="SIGINT goes to main"
)


def interrupted_on_run(number: int) -> object:
    """Three agents that poll; in run ``number`` one of them presses Ctrl-C and goes on."""
    runs = [0]

    def workflow() -> None:
        runs[0] += 1

        def agent(me: int) -> None:
            for step in range(50):
                hooks.point("write", f"k{me}")
                if runs[0] == number and me == 1 and step == 10:
                    os.kill(os.getpid(), signal.SIGINT)
                    while True:  # keeps taking steps: only the interrupt ends this run
                        time.sleep(0.01)

        threads = [threading.Thread(target=agent, args=(i,), name=f"A{i}") for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return workflow


def test_ctrl_c_raises_keyboard_interrupt_saying_how_far_it_got() -> None:
    before = _thread._count()
    with pytest.raises(KeyboardInterrupt) as caught:
        explore(interrupted_on_run(4), schedules=100, max_steps=10**9, save_dir=None)
    assert str(caught.value) == (
        "Interrupted after 3 complete runs (0 failing); the run in progress was abandoned "
        "and nothing of it kept."
    )
    assert not _patches.is_installed()  # every patch restored
    assert hooks._scheduler is None
    assert threading.Lock is _ORIGINAL_LOCK and time.sleep.__module__ == "time"
    assert wait_for_threads(before) <= before  # no agent or carrier thread left behind


def test_after_ctrl_c_the_next_exploration_finds_and_clears_as_before() -> None:
    with pytest.raises(KeyboardInterrupt):
        explore(interrupted_on_run(2), schedules=100, max_steps=10**9, save_dir=None)
    found = explore(lessons.unsafe, schedules=200, save_dir=None)
    assert found.failure is not None and found.failure.failure.kind == "checker"
    clean = explore(lessons.locked, schedules=200, save_dir=None)
    assert clean.ok, clean.report()


def test_ctrl_c_in_an_agent_blocked_outside_the_explorer_still_returns(tmp_path: Path) -> None:
    before = _thread._count()
    blocker = _thread.allocate_lock()  # a real lock, taken before the exploration
    blocker.acquire()

    def workflow() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        blocker.acquire()  # blocked in C: nothing can unwind it until it is released

    with pytest.raises(KeyboardInterrupt, match=r"^Interrupted after 0 complete runs"):
        explore(workflow, schedules=10, save_dir=None)
    assert not _patches.is_installed()
    blocker.release()  # the agent's call returns, and it unwinds
    assert wait_for_threads(before) <= before


def test_a_cli_exploration_interrupted_exits_130_and_says_how_far_it_got(tmp_path: Path) -> None:
    (tmp_path / "stoppable.py").write_text(
        textwrap.dedent(
            """
            import os, signal, threading, time
            from racefree import hooks

            runs = [0]

            def workflow():
                runs[0] += 1
                def agent():
                    hooks.point("write", "k")
                    if runs[0] == 3:
                        os.kill(os.getpid(), signal.SIGINT)
                        while True:
                            time.sleep(0.01)
                threads = [threading.Thread(target=agent) for _ in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            """
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "racefree", "explore", "stoppable:workflow", "--schedules", "50"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "racefree: Interrupted after 2 complete runs (0 failing); the run in progress was "
        "abandoned and nothing of it kept."
    )
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob(".racefree/replays/*"))  # no replay of a bogus failure


def test_the_time_limit_stops_a_run_in_progress() -> None:
    def endless() -> None:
        while True:
            time.sleep(1)  # virtual: each a step, none ends the run

    result = explore(endless, schedules=5, time_limit=0.2, max_steps=10**9, save_dir=None)
    assert result.ok and result.runs == 0
    assert result.stopped == "Stopped at the time limit (0.2 s), during run 1 (not counted)."


def test_an_async_workflow_explored_from_a_running_loop_is_a_usage_error() -> None:
    async def workflow() -> None:
        await asyncio.sleep(0)

    async def caller() -> None:
        explore(workflow, schedules=1)

    message = (
        r"^tests\.explore\.test_interrupt:test_an_async_workflow_explored_from_a_running_loop_is_"
        r"a_usage_error\.<locals>\.workflow is an async workflow and explore\(\) was called from "
        r"inside a running event loop; explore\(\) blocks while it runs the workflow in loops of "
        r"its own\. Call it from synchronous code, or from async code as `await "
        r"asyncio\.to_thread\(racefree\.explore, workflow, \.\.\.\)`\.$"
    )
    with pytest.raises(UsageError, match=message):
        asyncio.run(caller())

    async def as_advised() -> bool:
        result = await asyncio.to_thread(explore, workflow, schedules=3)
        return result.ok

    assert asyncio.run(as_advised())
