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
    assert failure.failure.title == (
        "Checker: interleaved turn on session t1 (Concierge (run 1), Concierge (run 2))"
    )
    story = " ".join(failure.failure.details)
    assert story.startswith(
        'Concierge (run 1) began a turn on session t1: [{"content": "book a table"'
    )
    assert (
        'Concierge (run 2) saved [{"content": "for four people", "role": "user"}] to '
        "session t1." in story
    )
    assert story.endswith(
        "Use racefree.integrations.openai_agents.StoreSession, which appends each run's "
        "turn whole, in one atomic step."
    )


def test_runs_are_named_after_the_agent_they_start_with() -> None:
    # The SDK hands sessions no agent; the name comes from a private context variable of
    # the installed SDK version (this test fails if a new version moves it).
    async def main() -> RecordedSession:
        session = RecordedSession(agents.SQLiteSession("t1"))
        model = scripted_model(latency=0)
        await agents.Runner.run(agents.Agent(name="Concierge", model=model), "hi", session=session)
        await agents.Runner.run(
            agents.Agent(name="Sommelier", model=model), "red?", session=session
        )
        return session

    session = asyncio.run(main())
    assert session.history.agents() == ["Concierge (run 1)", "Sommelier (run 2)"]


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


def booking_agent(name: str, behavior: Any, *, then_answer: bool = False) -> Any:
    """An agent on the SDK's own ScriptedModel that calls book(day), then maybe answers."""
    from agents.testing import ScriptedModel, assistant_message, function_call

    @agents.function_tool
    async def book(day: str) -> str:
        """Book a table for a day."""
        await asyncio.sleep(1.0 if day == "friday" else 1.5)  # the booking system
        return f"booked {day}"

    @agents.function_tool
    def cancel(day: str) -> str:
        """Cancel a booking."""
        return f"cancelled {day}"

    day = "friday" if name == "Booker A" else "saturday"
    steps: list[Any] = [[function_call("book", {"day": day}, call_id=f"call-{day}")]]
    if then_answer:
        steps.append([assistant_message(f"{day} is booked")])
    return agents.Agent(
        name=name, model=ScriptedModel(steps), tools=[book, cancel], tool_use_behavior=behavior
    )


def kinds(items: list[Any]) -> list[str]:
    return [str(item.get("type") or item.get("role")) for item in items]


@pytest.mark.parametrize(
    "behavior",
    ["stop_on_first_tool", {"stop_at_tool_names": ["book"]}],
    ids=["stop_on_first_tool", "StopAtTools"],
)
def test_a_run_whose_output_is_a_tool_result_saves_its_turn(behavior: Any) -> None:
    async def main() -> tuple[Any, list[Any], racefree.History]:
        history = racefree.History()
        session = StoreSession("t1", racefree.open_async_store("memory://", history=history))
        result = await agents.Runner.run(
            booking_agent("Booker A", behavior), "book friday", session=session
        )
        return result.final_output, await session.get_items(), history

    output, items, history = asyncio.run(main())
    assert output == "booked friday"
    assert kinds(items) == ["user", "function_call", "function_call_output"]
    turns = [e for e in history if e.op == "append_turn"]
    assert [(e.agent, len(e.value)) for e in turns] == [("Booker A (run 1)", 3)]


def test_a_tool_the_agent_does_not_stop_at_leaves_the_turn_open_until_the_answer() -> None:
    async def main() -> tuple[list[Any], racefree.History]:
        history = racefree.History()
        session = StoreSession("t1", racefree.open_async_store("memory://", history=history))
        agent = booking_agent("Booker A", {"stop_at_tool_names": ["cancel"]}, then_answer=True)
        await agents.Runner.run(agent, "book friday", session=session)
        return await session.get_items(), history

    items, history = asyncio.run(main())
    assert kinds(items) == ["user", "function_call", "function_call_output", "message"]
    assert [len(e.value) for e in history if e.op == "append_turn"] == [4]  # one append


def test_runs_that_end_at_a_tool_keep_their_turns_whole_in_every_ordering() -> None:
    def whole_turns(items: list[Any]) -> None:
        """Each question is followed at once by its own booking call and the call's result."""
        assert kinds(items) == ["user", "function_call", "function_call_output"] * 2, items
        for start in (0, 3):
            day = items[start]["content"].split()[-1]
            assert items[start + 1]["call_id"] == items[start + 2]["call_id"] == f"call-{day}"

    async def workflow() -> list[Any]:
        session = StoreSession("t1", racefree.open_async_store("memory://"))
        await asyncio.gather(
            agents.Runner.run(
                booking_agent("Booker A", "stop_on_first_tool"), "book friday", session=session
            ),
            agents.Runner.run(
                booking_agent("Booker B", "stop_on_first_tool"), "book saturday", session=session
            ),
        )
        items: list[Any] = await session.get_items()
        return items

    result = racefree.explore(
        workflow, strategy="exhaustive", schedules=10_000, invariants=[whole_turns], save_dir=None
    )
    assert result.ok, result.report()
    assert result.complete and result.distinct >= 2
