"""The explored threads share one CPU; nothing else is pinned, and the mask comes back.

Agents take turns, so one CPU costs them nothing and makes each handoff of the
baton a same-CPU wakeup (docs/explorer.md, "Speed"). Threads that run free
and the program after ``explore()`` keep every CPU the program had.
"""

from __future__ import annotations

import os
import threading

import pytest

from racefree.explore import explore

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity (Linux) and at least two CPUs",
)


def test_agents_run_on_one_cpu_and_the_mask_is_restored_after_the_exploration() -> None:
    before = os.sched_getaffinity(0)
    seen: list[set[int]] = []

    def workflow() -> None:
        seen.append(os.sched_getaffinity(0))
        worker = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        worker.start()
        worker.join()

    explore(workflow, schedules=3, save_dir=None)
    assert len(seen) == 6
    assert all(len(mask) == 1 and mask <= before for mask in seen)
    assert len({frozenset(mask) for mask in seen}) == 1  # the same CPU for all of them
    assert os.sched_getaffinity(0) == before


def test_a_failing_workflow_restores_the_mask_too() -> None:
    before = os.sched_getaffinity(0)

    def workflow() -> None:
        raise ValueError("boom")

    result = explore(workflow, schedules=1, save_dir=None, shrink=False)
    assert result.failure is not None
    assert os.sched_getaffinity(0) == before


def test_a_thread_that_runs_free_keeps_every_cpu_of_the_program() -> None:
    before = os.sched_getaffinity(0)
    masks: dict[str, set[int]] = {}

    def workflow() -> None:
        masks["agent"] = os.sched_getaffinity(0)
        free = threading.Thread(
            target=lambda: masks.__setitem__("free", os.sched_getaffinity(0)), name="Exporter"
        )
        free.start()
        free.join()
        masks["agent after"] = os.sched_getaffinity(0)

    explore(workflow, schedules=1, threads=["free:Exporter"], save_dir=None)
    assert masks["free"] == before
    assert len(masks["agent"]) == 1 and masks["agent after"] == masks["agent"]


_batch = pytest.mark.skipif(
    not hasattr(os, "SCHED_BATCH") or os.sched_getscheduler(0) != os.SCHED_OTHER,
    reason="needs the batch scheduling policy (Linux) and a program under the default one",
)


@_batch
def test_agents_run_under_the_batch_policy_and_the_policy_is_restored() -> None:
    # On one CPU a woken agent would preempt the one that woke it, find the GIL taken and
    # sleep again: the batch policy makes a handoff one context switch (docs/explorer.md).
    seen: list[int] = []

    def workflow() -> None:
        seen.append(os.sched_getscheduler(0))
        worker = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
        worker.start()
        worker.join()

    explore(workflow, schedules=3, save_dir=None)
    assert seen == [os.SCHED_BATCH] * 6
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@_batch
def test_a_thread_that_runs_free_keeps_the_programs_policy() -> None:
    policies: dict[str, int] = {}

    def workflow() -> None:
        policies["agent"] = os.sched_getscheduler(0)
        free = threading.Thread(
            target=lambda: policies.__setitem__("free", os.sched_getscheduler(0)), name="Exporter"
        )
        free.start()
        free.join()
        policies["agent after"] = os.sched_getscheduler(0)

    explore(workflow, schedules=1, threads=["free:Exporter"], save_dir=None)
    assert policies == {
        "agent": os.SCHED_BATCH,
        "free": os.SCHED_OTHER,
        "agent after": os.SCHED_BATCH,
    }
