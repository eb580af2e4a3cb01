"""What the controlled runtime supports: to_thread with awaits, deadlocks, virtual time."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import racefree
from racefree.explore import explore, hooks


async def to_thread_lost_update() -> dict[str, int]:
    """A task and a worker thread both read-modify-write one counter."""
    state = {"n": 0}

    def blocking_tool() -> None:  # runs in asyncio.to_thread
        hooks.point("read", "n")
        seen = state["n"]
        time.sleep(0.2)
        hooks.point("write", "n")
        state["n"] = seen + 1

    async def agent() -> None:
        hooks.point("read", "n")
        seen = state["n"]
        await asyncio.sleep(0.1)
        hooks.point("write", "n")
        state["n"] = seen + 1

    await asyncio.gather(asyncio.to_thread(blocking_tool), agent())
    return state


def test_to_thread_mixed_with_awaits_is_explored() -> None:
    result = explore(
        to_thread_lost_update,
        strategy="exhaustive",
        schedules=2000,
        invariants=[lambda s: s["n"] == 2],
        keep_going=True,
        save_dir=None,
    )
    assert result.complete
    assert result.failures  # some orderings lose an increment
    assert result.runs > len(result.failures)  # and some do not


def test_a_deadlock_is_a_failure_that_names_who_waits_for_what() -> None:
    def two_locks() -> None:
        first, second = threading.Lock(), threading.Lock()

        def agent(a: Any, b: Any) -> None:
            with a:
                time.sleep(1)
                with b:
                    pass

        threads = [
            threading.Thread(target=agent, args=(first, second), name="Left"),
            threading.Thread(target=agent, args=(second, first), name="Right"),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    result = explore(two_locks, save_dir=None)
    assert result.failure is not None
    title = result.failure.failure.title
    assert title.startswith("Deadlock: no agent can run.")
    assert "Left waits for lock#" in title and "Right waits for lock#" in title


def test_a_threading_lock_held_across_an_await_is_named_as_the_cause() -> None:
    async def threading_lock_in_async() -> list[str]:
        lock = threading.Lock()
        history: list[str] = []

        async def agent(name: str, latency: float) -> None:
            await asyncio.sleep(latency)
            with lock:
                seen = list(history)
                await asyncio.sleep(0.05)  # held across an await: the other task blocks the loop
                history[:] = [*seen, name]

        await asyncio.gather(agent("A", 0.1), agent("B", 0.12))
        return history

    result = explore(threading_lock_in_async, save_dir=None)
    assert result.failure is not None
    title = result.failure.failure.title
    assert title.startswith("Deadlock: no agent can run.")
    assert "held it across an await" in title and "Use asyncio.Lock" in title


def test_two_threads_in_a_lock_cycle_get_no_asyncio_advice() -> None:
    def two_locks() -> None:
        first, second = threading.Lock(), threading.Lock()

        def agent(a: Any, b: Any) -> None:
            with a:
                time.sleep(1)
                with b:
                    pass

        threads = [
            threading.Thread(target=agent, args=p) for p in ((first, second), (second, first))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    result = explore(two_locks, save_dir=None)
    assert result.failure is not None and "asyncio.Lock" not in result.failure.failure.title


def test_model_latency_costs_no_wall_time() -> None:
    def slow() -> float:
        start = time.monotonic()
        threads = [threading.Thread(target=time.sleep, args=(30.0,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - start

    elapsed: list[float] = []
    result = explore(slow, schedules=20, invariants=[elapsed.append], save_dir=None)
    assert result.ok
    assert min(elapsed) >= 30.0  # virtual seconds passed, far more than real ones
    assert sum(elapsed) > 100 * result.wall_seconds


async def two_sleeps_that_end_together() -> dict[str, int]:
    state = {"n": 0}

    async def agent() -> None:
        await asyncio.sleep(1)
        n = state["n"]
        await asyncio.sleep(0)  # yields: the other task, woken at the same instant, runs here
        state["n"] = n + 1

    await asyncio.gather(agent(), agent())
    return state


@pytest.mark.parametrize("latency", ["virtual", "any"])
def test_timers_that_end_together_run_in_one_batch_as_asyncio_runs_them(latency: str) -> None:
    assert asyncio.run(two_sleeps_that_end_together()) == {"n": 1}  # real asyncio loses one
    result = explore(
        two_sleeps_that_end_together,
        strategy="exhaustive",
        latency=latency,
        invariants=[lambda state: state["n"] == 2],
        save_dir=None,
    )
    assert not result.ok


async def question_and_answer_with_equal_latency() -> dict[str, str]:
    """Asker and answerer wait for the same model latency; the answerer assumes the
    question is there. Which of two timers due at one instant runs first is a choice."""
    s = racefree.track({"question": "", "answer": ""}, name="s")

    async def asker() -> None:
        await asyncio.sleep(0.1)  # the model drafts the question
        s["question"] = "What is 2+2?"

    async def answerer() -> None:
        await asyncio.sleep(0.1)  # the model warms up
        s["answer"] = f"answer to {s['question']!r}"

    await asyncio.gather(asker(), answerer())
    return dict(s)


@pytest.mark.parametrize("latency", ["virtual", "any"])
def test_exhaustive_search_orders_two_tasks_woken_at_one_instant(latency: str) -> None:
    # The two tasks run in one batch, but each one's accesses are its own step: the
    # search sees them race and tries the other task first.
    answers: set[str] = set()

    def record(s: dict[str, str]) -> bool:
        answers.add(s["answer"])
        return True

    result = explore(
        question_and_answer_with_equal_latency,
        strategy="exhaustive",
        latency=latency,
        invariants=[record],
        save_dir=None,
    )
    assert result.ok and result.complete
    assert answers == {"answer to 'What is 2+2?'", "answer to ''"}
    assert result.distinct == 2


async def three_rounds_at_one_instant() -> list[str]:
    transcript = racefree.track([], name="transcript")

    async def streamer(name: str) -> None:
        for i in range(3):
            await asyncio.sleep(0.05)
            transcript.append(f"{name}{i}")

    await asyncio.gather(streamer("a"), streamer("b"))
    return list(transcript)


def test_exhaustive_search_reaches_every_order_of_tied_rounds_that_random_walk_reaches() -> None:
    by: dict[str, set[tuple[str, ...]]] = {"exhaustive": set(), "random": set()}
    for strategy, seen in by.items():

        def record(transcript: list[str], seen: set[tuple[str, ...]] = seen) -> bool:
            seen.add(tuple(transcript))
            return True

        explore(
            three_rounds_at_one_instant,
            strategy=strategy,
            schedules=300,
            invariants=[record],
            save_dir=None,
        )
    assert len(by["exhaustive"]) == 8  # two orders in each of three rounds
    assert by["random"] <= by["exhaustive"]


async def optimistic_commits() -> dict[str, Any]:
    """Three agents commit with optimistic retries: read the version, await the model,
    commit if the version is unchanged, else try again with half the latency."""
    ctx = racefree.track({"facts": [], "version": 0}, name="ctx")
    attempts: dict[str, int] = {}

    async def agent(topic: str, latency: float) -> None:
        while True:
            attempts[topic] = attempts.get(topic, 0) + 1
            seen = ctx["version"]
            await asyncio.sleep(latency)
            if ctx["version"] == seen:
                ctx["facts"] = [*ctx["facts"], topic]
                ctx["version"] = seen + 1
                return
            latency /= 2

    await asyncio.gather(agent("paris", 1.0), agent("rome", 2.0), agent("oslo", 1.5))
    return {"order": list(ctx["facts"]), "attempts": attempts}


def paris_never_needs_three_tries_after_oslo_then_rome(outcome: dict[str, Any]) -> bool:
    return not (outcome["order"] == ["oslo", "rome", "paris"] and outcome["attempts"]["paris"] == 3)


def test_a_retry_whose_shorter_sleep_ties_with_another_call_in_one_order_is_not_taken_for_it() -> (
    None
):
    # oslo first, then paris retries (sleeping 0.5 from 1.5: due at 2.0, rome's deadline)
    # or rome retries first (the clock at 2.0: paris due at 2.5). Only in the second
    # order can rome commit before paris looks again; exhaustive search once tied the
    # first order's two timers into one batch, took the orders for one, and said Complete.
    result = explore(
        optimistic_commits,
        strategy="exhaustive",
        invariants=[paris_never_needs_three_tries_after_oslo_then_rome],
        save_dir=None,
    )
    assert result.failure is not None, result.coverage()
    assert result.failure.failure.name == "paris_never_needs_three_tries_after_oslo_then_rome"
