"""A finished run leaves no reference cycle behind: reference counting frees it.

An exploration makes thousands of runs, each with its agents, steps and
events. Left in cycles, they were freed by the cyclic garbage collector,
whose passes cost about 7% of a short run's time (docs/benchmarks.md, "What a
step costs"); freed by reference counting, they cost nothing extra.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import pytest

from racefree.explore import explore
from racefree.track import track


def lost_update() -> dict[str, int]:
    session = track({"count": 0})
    lock = threading.Lock()
    started = threading.Event()

    def agent() -> None:
        started.set()
        seen = session["count"]
        time.sleep(0.01)
        with lock:
            session["count"] = seen + 1

    threads = [threading.Thread(target=agent, name=f"agent-{i}") for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return dict(session)


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def garbage_after(schedules: int) -> int:
    """Objects only the cyclic collector could free, after an exploration of ``schedules``."""
    gc.collect()
    explore(
        lost_update,
        schedules=schedules,
        strategy="random",
        check=False,
        keep_going=True,
        shrink=False,
        save_dir=None,
    )
    return gc.collect()


@pytest.mark.usefixtures("collector_off")
def test_more_runs_leave_no_more_cyclic_garbage() -> None:
    garbage_after(3)  # warm: what a first exploration imports and caches
    few, many = garbage_after(5), garbage_after(45)
    assert many == few, f"{(many - few) / 40:.1f} objects in cycles per run"
