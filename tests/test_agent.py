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
