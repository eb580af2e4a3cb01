from __future__ import annotations

import asyncio
import threading

import pytest

from racefree import UsageError, agent, current_agent


def test_explicit_agent_wins_and_is_restored() -> None:
    outer = current_agent()
    with agent("Planner"):
        assert current_agent() == "Planner"
        with agent("Critic"):
            assert current_agent() == "Critic"
        assert current_agent() == "Planner"
    assert current_agent() == outer


def test_thread_name_is_the_fallback() -> None:
    seen = []
    thread = threading.Thread(target=lambda: seen.append(current_agent()), name="Writer")
    thread.start()
    thread.join()
    assert seen == ["Writer"]


def test_task_name_is_the_fallback_inside_asyncio() -> None:
    async def main() -> list[str]:
        async def who() -> str:
            return current_agent()

        return await asyncio.gather(
            asyncio.create_task(who(), name="Analyzer"), asyncio.create_task(who(), name="Writer")
        )

    assert asyncio.run(main()) == ["Analyzer", "Writer"]


def test_tasks_inherit_the_explicit_agent_of_their_creator() -> None:
    async def main() -> str:
        with agent("Researcher"):
            task = asyncio.create_task(asyncio.sleep(0, result=None))
            await task
            return await asyncio.create_task(_who())

    async def _who() -> str:
        return current_agent()

    assert asyncio.run(main()) == "Researcher"


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_a_blank_or_non_string_name_is_refused(bad: object) -> None:
    refused = pytest.raises(UsageError, match=r"^An agent name must be a non-empty string, not ")
    with refused, agent(bad):  # type: ignore[arg-type]
        pass


def _names_of_two_live_threads(name: str) -> tuple[list[str], list[str]]:
    """Two threads named alike, both alive: each says who it is, then again after the
    other one has ended."""
    first_said: list[str] = []
    later: list[str] = []
    both_named = threading.Barrier(2)
    first_done = threading.Event()

    def one() -> None:
        first_said.append(current_agent())
        both_named.wait()
        later.append(current_agent())

    def two() -> None:
        both_named.wait()
        first_said.append(current_agent())
        first_done.wait()
        later.append(current_agent())  # the other one has ended: it keeps its own name

    a = threading.Thread(target=one, name=name)
    b = threading.Thread(target=two, name=name)
    a.start()
    b.start()
    a.join()
    first_done.set()
    b.join()
    return first_said, later


def test_two_live_threads_with_one_name_are_two_agents_and_keep_their_names() -> None:
    first_said, later = _names_of_two_live_threads("worker")
    assert first_said == ["worker", "worker #2"]
    assert later == ["worker", "worker #2"]


def test_a_thread_that_ended_leaves_its_name_to_the_next_one() -> None:
    seen: list[str] = []
    for _ in range(2):
        thread = threading.Thread(target=lambda: seen.append(current_agent()), name="retry")
        thread.start()
        thread.join()
    assert seen == ["retry", "retry"]


def test_tasks_of_two_loops_with_one_name_are_two_agents() -> None:
    both_inside = threading.Barrier(2)
    seen: list[str] = []

    async def answer() -> None:
        name = current_agent()
        await asyncio.to_thread(both_inside.wait)  # both tasks are alive when they name
        seen.append(name)

    def loop_in_a_thread() -> None:
        async def main() -> None:
            await asyncio.create_task(answer(), name="Task-answer")

        asyncio.run(main())

    threads = [threading.Thread(target=loop_in_a_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == ["Task-answer", "Task-answer #2"]
