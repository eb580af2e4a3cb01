"""The OpenAI Agents SDK integration, against the real SDK (no network: a scripted model)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

agents = pytest.importorskip("agents", reason="install racefree[openai-agents]")

import racefree  # noqa: E402
from racefree.errors import UsageError  # noqa: E402
from racefree.integrations.openai_agents import (  # noqa: E402
    RecordedSession,
    StoreSession,
    exploring,
    scripted_model,
    turn_is_complete,
)

QUESTIONS = ("book a table", "for four people")


def answers_follow_questions(items: list[Any]) -> None:
    """Each user message is followed at once by the assistant's answer to it."""
    texts = []
    for item in items:
        if item.get("role") == "user":
            texts.append(("user", item["content"]))
        else:
            texts.append(("assistant", item["content"][0]["text"]))
    expected = []
    for _, question in (t for t in texts if t[0] == "user"):
        expected += [("user", question), ("assistant", f"answer to {question}")]
    assert texts == expected, f"the conversation is {texts}"


async def double_text(session: Any) -> list[Any]:
    """The user sends two messages quickly: two runs of one agent on one session."""
    model = scripted_model(latency=lambda question: 1.0 if question == QUESTIONS[0] else 1.5)
    concierge = agents.Agent(name="Concierge", model=model)
    await asyncio.gather(*(agents.Runner.run(concierge, q, session=session) for q in QUESTIONS))
    items: list[Any] = await session.get_items()
    return items


def test_the_recorder_shows_two_runs_interleaving_their_turns() -> None:
    async def workflow() -> list[Any]:
        return await double_text(RecordedSession(agents.SQLiteSession("t1")))

    result = racefree.explore(workflow, schedules=50, save_dir=None)  # tracing left on
    failure = result.failure
    assert failure is not None
    assert (failure.failure.kind, failure.failure.name) == ("checker", "interleaved-turn")
    assert failure.failure.title == "Checker: interleaved turn on session t1 (run 1, run 2)"
    story = " ".join(failure.failure.details)
    assert story.startswith('run 1 began a turn on session t1: [{"content": "book a table"')
    assert 'run 2 added [{"content": "for four people", "role": "user"}] to session t1' in story


def test_the_store_session_passes_exhaustive_search() -> None:
    async def workflow() -> list[Any]:
        return await double_text(StoreSession("t1", "memory://", history=racefree.History()))

    result = racefree.explore(
        workflow,
        strategy="exhaustive",
        schedules=10_000,
        invariants=[answers_follow_questions],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete
    assert result.distinct >= 2  # either run's turn may land first


def test_the_store_session_keeps_turns_whole_across_session_objects(shared_url: str) -> None:
    url = shared_url

    async def main() -> list[Any]:
        # Two StoreSession objects on one file: as two processes would hold them.
        concierge = agents.Agent(name="Concierge", model=scripted_model(latency=0.01))
        first, second, reader = (StoreSession("t1", url) for _ in range(3))
        await asyncio.gather(
            agents.Runner.run(concierge, QUESTIONS[0], session=first),
            agents.Runner.run(concierge, QUESTIONS[1], session=second),
        )
        items: list[Any] = await reader.get_items()
        for session in (first, second, reader):
            await session.aclose()
        return items

    items = asyncio.run(main())
    answers_follow_questions(items)
    assert len(items) == 4


def test_a_run_that_fails_before_its_answer_saves_nothing() -> None:
    def broken(question: str) -> str:
        raise RuntimeError("the model is down")

    async def main() -> list[Any]:
        session = StoreSession("t1")
        agent = agents.Agent(name="Concierge", model=scripted_model(broken, latency=0))
        with pytest.raises(RuntimeError, match="the model is down"):
            await agents.Runner.run(agent, "book a table", session=session)
        retry = agents.Agent(name="Concierge", model=scripted_model(latency=0))
        await agents.Runner.run(retry, "book a table", session=session)
        items: list[Any] = await session.get_items()
        return items

    items = asyncio.run(main())
    assert [i.get("role") for i in items] == ["user", "assistant"]  # the question once


def test_the_recorder_records_each_call_with_the_item_count_as_version() -> None:
    async def main() -> RecordedSession:
        session = RecordedSession(agents.SQLiteSession("s"))
        await session.get_items()
        await session.add_items([{"role": "user", "content": "hi"}])
        await session.pop_item()
        await session.clear_session()
        return session

    session = asyncio.run(main())
    ops = [(e.op, e.key, e.version_read, e.version_written) for e in session.history]
    assert ops == [
        ("read", "session s", 0, None),
        ("extend", "session s", 0, 1),
        ("pop", "session s", 1, 0),
        ("write", "session s", None, 0),
    ]
    assert session.history.events[2].value == {"role": "user", "content": "hi"}


def test_a_turn_is_complete_only_with_the_answer_last_and_every_tool_call_answered() -> None:
    user = {"role": "user", "content": "hi"}
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "c1", "output": "x"}
    answer = {"type": "message", "role": "assistant", "content": []}
    assert not turn_is_complete([user])
    assert not turn_is_complete([user, call, answer])
    assert turn_is_complete([user, call, output, answer])
    assert turn_is_complete([user, answer])


def test_the_sdk_traces_nothing_inside_an_exploration_and_as_before_outside() -> None:
    seen = []

    def workflow() -> None:
        RecordedSession(agents.SQLiteSession("s"))
        seen.append(type(agents.trace("inside")).__name__)

    racefree.explore(workflow, schedules=1, save_dir=None, check=False)
    RecordedSession(agents.SQLiteSession("s"))
    assert seen == ["NoOpTrace"]
    assert type(agents.trace("outside")).__name__ == "TraceImpl"


def test_exploring_turns_tracing_off_and_restores_it() -> None:
    provider = agents.tracing.get_trace_provider()
    before = provider._disabled
    with exploring():
        assert provider._disabled is True
    assert provider._disabled == before


def test_wrapping_something_that_is_not_a_session_is_a_usage_error() -> None:
    with pytest.raises(
        UsageError,
        match=r"^RecordedSession wraps an OpenAI Agents SDK Session, and dict has no "
        r"get_items\(\) method\. Pass a session such as agents\.SQLiteSession\('id'\)\.$",
    ):
        RecordedSession({})
