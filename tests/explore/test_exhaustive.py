"""Exhaustive search counts orderings as a person would, and clears correct workflows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from racefree.explore import explore, hooks, lessons
from tests.explore.workflows import run_threads


def writes(key: str, times: int = 1) -> Callable[[], None]:
    def body() -> None:
        for _ in range(times):
            hooks.point("write", key)

    return body


def read_then_write(key: str) -> Callable[[], None]:
    def body() -> None:
        hooks.point("read", key)
        hooks.point("write", key)

    return body


def reads(key: str) -> Callable[[], None]:
    def body() -> None:
        hooks.point("read", key)

    return body


# (bodies, orderings counted by hand: interleavings up to swapping commuting steps)
CASES: dict[str, tuple[list[Callable[[], None]], int]] = {
    # A and B write one key: A first or B first.
    "two writers, one key": ([writes("k"), writes("k")], 2),
    # Different keys commute: every interleaving is the same.
    "two writers, two keys": ([writes("a"), writes("b")], 1),
    "three writers, three keys": ([writes("a"), writes("b"), writes("c")], 1),
    # Three writers of one key: 3! orders.
    "three writers, one key": ([writes("k")] * 3, 6),
    # Reads commute with reads.
    "two readers": ([reads("k"), reads("k")], 1),
    # Two writes each by A and B on one key: choose the positions of A's writes, C(4,2).
    "two writers, two writes each": ([writes("k", 2), writes("k", 2)], 6),
    # A: r w, B: r w. Orders of {rA, wA, rB, wB} with rA<wA, rB<wB: 6 interleavings; the
    # two reads commute, merging rA rB wA wB with rB rA wA wB, and rA rB wB wA with
    # rB rA wB wA: 4 classes.
    "read-modify-write, two agents": ([read_then_write("k"), read_then_write("k")], 4),
    # A writes k; B reads k; C writes unrelated: 2 (B before or after A's write).
    "writer, reader, bystander": ([writes("k"), reads("k"), writes("z")], 2),
}


@pytest.mark.parametrize("name", list(CASES))
def test_exhaustive_counts_orderings(name: str) -> None:
    bodies, expected = CASES[name]
    result = explore(
        lambda: run_threads(*bodies), strategy="exhaustive", schedules=10_000, save_dir=None
    )
    assert result.complete
    assert result.distinct == expected
    every = "the only distinct ordering" if expected == 1 else f"all {expected} distinct orderings"
    assert f"Complete: {every} explored" in "\n".join(result.summary())


def test_exhaustive_stops_at_the_budget_and_says_so() -> None:
    result = explore(
        lambda: run_threads(*[writes("k")] * 4), strategy="exhaustive", schedules=5, save_dir=None
    )
    assert not result.complete
    assert "not every ordering was run" in "\n".join(result.summary())


@pytest.mark.parametrize(
    "workflow", [lessons.locked, lessons.gather_locked, lessons.gather_await_first]
)
def test_fixed_lesson_workflows_pass_exhaustive_search(workflow: Callable[[], object]) -> None:
    result = explore(
        workflow,
        strategy="exhaustive",
        schedules=20_000,
        invariants=[lessons.nothing_lost],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete, result.summary()


@pytest.mark.parametrize("workflow", [lessons.unsafe, lessons.gather_unsafe])
def test_broken_lesson_workflows_fail_on_the_first_schedule(
    workflow: Callable[[], object],
) -> None:
    result = explore(workflow, invariants=[lessons.nothing_lost], save_dir=None)
    assert result.failure is not None
    assert result.failure.found_after == 1
    assert "lost:" in result.failure.failure.title


def test_a_workflow_that_draws_from_the_run_seed_is_explored_exhaustively() -> None:
    import random

    from racefree.explore import run_seed

    def seeded() -> dict[str, int]:
        rng = random.Random(run_seed())
        state = {"n": 0}

        def agent() -> None:
            for _ in range(rng.randint(1, 4)):  # how many tool calls: drawn from the run seed
                hooks.point("write", "log")
            hooks.point("read", "n")  # announced, so that the lost update is an ordering
            n = state["n"]
            time.sleep(0.1)
            hooks.point("write", "n")
            state["n"] = n + 1

        run_threads(agent, agent)
        return state

    result = explore(
        seeded,
        strategy="exhaustive",
        schedules=5_000,
        invariants=[lambda state: state["n"] == 2],
        keep_going=True,
        save_dir=None,
    )
    assert result.complete, result.summary()
    assert {f.failure.kind for f in result.failures} == {"invariant"}  # lost updates, no crash


def test_a_first_run_that_sets_things_up_is_a_warm_up_not_a_divergence() -> None:
    # A library that imports or connects on first use takes extra steps in run 1 only.
    cache: dict[str, bool] = {}

    def first_use_then_race() -> None:
        def agent() -> None:
            if "ready" not in cache:
                hooks.point("write", "setup")  # only the very first agent of run 1 does this
                cache["ready"] = True
            read_then_write("k")()

        run_threads(agent, agent)

    result = explore(first_use_then_race, strategy="exhaustive", schedules=1000, save_dir=None)
    assert result.complete
    assert "the search began again after it" in "\n".join(result.summary())


def test_a_workflow_that_keeps_changing_still_diverges() -> None:
    from racefree.errors import ReplayDivergedError

    runs = [0]

    def different_every_run() -> None:
        runs[0] += 1
        run_threads(*[writes("k")] * (2 + runs[0] % 2), *[writes("j")] * (runs[0] % 3))

    with pytest.raises(ReplayDivergedError, match="not deterministic under the explorer"):
        explore(different_every_run, strategy="exhaustive", schedules=1000, save_dir=None)


async def _answers_on_a_plain_list() -> dict[str, list[str]]:
    """Two tasks answer onto a list nobody tracks: the slower one usually answers last."""
    answers: list[str] = []

    async def agent(name: str, latency: float) -> None:
        await asyncio.sleep(latency)  # the model call
        answers.append(name)

    await asyncio.gather(agent("planner", 0.1), agent("critic", 0.2))
    return {"answers": answers}


def test_with_no_shared_state_in_sight_the_top_decisions_are_still_all_tried() -> None:
    # No run touches anything the explorer sees, so partial-order reduction alone would
    # call the first run every ordering; the top decisions try each waiting task anyway,
    # and the run where the slower answer lands first shows that unseen state decided.
    def planner_first(state: dict[str, list[str]]) -> bool:
        return state["answers"][0] == "planner"

    result = explore(
        _answers_on_a_plain_list,
        strategy="exhaustive",
        invariants=[planner_first],
        keep_going=True,
        save_dir=None,
    )
    assert result.failure is not None
    assert result.failure.run.result["answers"] == ["critic", "planner"]
    assert result.split_orderings == 1 and not result.complete
