"""The Google ADK integration, against the real ADK (no network: a scripted model)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("google.adk", reason="install racefree[adk]")

from google.adk.agents import LlmAgent, ParallelAgent
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.adk.tools import ToolContext
from google.genai import types

import racefree
from racefree.errors import ConcurrentWriteError, UsageError
from racefree.integrations import warm_up
from racefree.integrations.adk import (
    RecordedSessionService,
    ScriptedLlm,
    StoreSessionService,
)

Workflow = Callable[[], Awaitable[dict[str, Any]]]


def add_to_cart(item: str, tool_context: ToolContext) -> dict[str, Any]:
    """Add an item to the shopping cart."""
    tool_context.state["cart"] = tool_context.state["cart"] + [item]
    tool_context.state["count"] = tool_context.state["count"] + 1
    return {"cart": tool_context.state["cart"]}


def shop(service: Any) -> Workflow:
    """Double texting: "add milk" and "add eggs" sent at once, two runs on one session."""

    async def workflow() -> dict[str, Any]:
        model = ScriptedLlm(
            calls=lambda q: [("add_to_cart", {"item": q.split()[-1]})],
            latency=lambda q: 1.0 if "milk" in q else 1.5,
        )
        shopper = LlmAgent(name="shopper", model=model, tools=[add_to_cart], instruction="shop")
        runner = Runner(agent=shopper, app_name="shop", session_service=service())
        state = {"cart": [], "count": 0}
        await runner.session_service.create_session(
            app_name="shop", user_id="u", session_id="s1", state=state
        )

        async def say(text: str) -> None:
            message = types.Content(role="user", parts=[types.Part(text=text)])
            async for _ in runner.run_async(user_id="u", session_id="s1", new_message=message):
                pass

        await asyncio.gather(say("add milk"), say("add eggs"))
        session = await runner.session_service.get_session(
            app_name="shop", user_id="u", session_id="s1"
        )
        assert session is not None
        return dict(session.state)

    return workflow


def both_items_kept(state: dict[str, Any]) -> None:
    """Both runs' items are in the cart, and the counter counts both."""
    assert sorted(state["cart"]) == ["eggs", "milk"] and state["count"] == 2, state


def recorded() -> RecordedSessionService:
    return RecordedSessionService(InMemorySessionService())


def fixed() -> StoreSessionService:
    store = racefree.open_async_store("memory://", history=racefree.History())
    return StoreSessionService(store, reducers={"cart": "append", "count": "add"})


@pytest.fixture(scope="module", autouse=True)
def first_use_outside_the_explorer() -> None:
    # ADK's first run imports a library that makes a logging handler (with a lock).
    warm_up(shop(fixed))


def test_the_recorder_shows_the_second_run_overwriting_the_first_runs_cart() -> None:
    result = racefree.explore(shop(recorded), schedules=50, save_dir=None)
    failure = result.failure
    assert failure is not None
    checker = {f.title: f for f in failure.run.failures if f.kind == "checker"}
    runs = "(shopper (run 2), shopper (run 1))"
    lost = checker[f"Checker: lost update on session s1 state.cart {runs}"]
    assert lost.name == "lost-update"
    assert " ".join(lost.details) == (
        "shopper (run 2) loaded session s1 state.cart at v1: []. shopper (run 1) applied a "
        'state_delta to session s1 state.cart at v2: ["milk"]. shopper (run 2) then applied '
        'a state_delta to session s1 state.cart at v3 from its copy of v1: ["eggs"]. '
        "shopper (run 1)'s state_delta is gone. Use "
        "racefree.integrations.adk.StoreSessionService with a reducer for this key ('append' "
        "for a list, 'add' for a counter): it applies each state_delta atomically."
    )
    assert f"Checker: lost update on session s1 state.count {runs}" in checker
    interleaved = checker[
        "Checker: interleaved turn on session s1 events (shopper (run 1), shopper (run 2))"
    ]
    assert (
        'shopper (run 2) appended {"author": "user", "content": "add eggs", "role": "user"} '
        "to session s1 events." in " ".join(interleaved.details)
    )


def test_the_store_service_passes_exhaustive_search_under_the_runner() -> None:
    result = racefree.explore(
        shop(fixed),
        strategy="exhaustive",
        schedules=10_000,
        invariants=[both_items_kept],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete and result.distinct >= 2


async def two_runs_on_the_session_api(service: StoreSessionService) -> dict[str, Any]:
    """Two runs, driven through the session API: read, think, save a state_delta."""
    await service.create_session(
        app_name="shop", user_id="u", session_id="s1", state={"cart": [], "count": 0}
    )

    async def run(item: str, latency: float) -> None:
        session = await service.get_session(app_name="shop", user_id="u", session_id="s1")
        assert session is not None
        await asyncio.sleep(latency)  # the model call
        delta = {"cart": [*session.state["cart"], item], "count": session.state["count"] + 1}
        event = Event(author="shopper", invocation_id=f"e-{item}")
        event.actions = EventActions(state_delta=delta)
        await service.append_event(session, event)

    await asyncio.gather(run("milk", 1.0), run("eggs", 1.5))
    final = await service.get_session(app_name="shop", user_id="u", session_id="s1")
    assert final is not None
    return dict(final.state)


def test_the_store_service_passes_exhaustive_search_on_the_session_api() -> None:
    async def workflow() -> dict[str, Any]:
        return await two_runs_on_the_session_api(fixed())

    result = racefree.explore(
        workflow,
        strategy="exhaustive",
        schedules=10_000,
        invariants=[both_items_kept],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete and result.distinct >= 2


def test_a_stale_last_value_write_is_refused_naming_both_runs() -> None:
    async def main() -> tuple[StoreSessionService, Any]:
        service = StoreSessionService()
        await service.create_session(app_name="a", user_id="u", session_id="s1")
        first = await service.get_session(app_name="a", user_id="u", session_id="s1")
        second = await service.get_session(app_name="a", user_id="u", session_id="s1")
        assert first is not None and second is not None
        one = Event(author="planner", invocation_id="e-1")
        one.actions = EventActions(state_delta={"plan": "Rome"})
        await service.append_event(first, one)
        two = Event(author="planner", invocation_id="e-2")
        two.actions = EventActions(state_delta={"plan": "Paris"})
        with pytest.raises(ConcurrentWriteError) as caught:
            await service.append_event(second, two)
        return service, caught.value

    service, error = asyncio.run(main())
    assert error.writers == ("planner (invocation e-1)", "planner (invocation e-2)")
    assert str(error).startswith(
        "Runs 'planner (invocation e-1)' and 'planner (invocation e-2)' both wrote the state "
        "key 'plan' of session 's1': 'planner (invocation e-2)' based its write on version 0, "
        "but 'planner (invocation e-1)' has since written version 1, so one answer would be "
        "lost. Nothing was written;"
    )

    async def after() -> Any:
        return await service.get_session(app_name="a", user_id="u", session_id="s1")

    session = asyncio.run(after())
    assert session.state == {"plan": "Rome"} and len(session.events) == 1


def test_two_services_on_one_store_merge_both_runs(shared_url: str) -> None:
    url = shared_url
    reducers = {"cart": "append", "count": "add"}

    async def main() -> dict[str, Any]:
        writer = StoreSessionService(url, reducers=reducers)
        await writer.create_session(
            app_name="shop", user_id="u", session_id="s1", state={"cart": [], "count": 0}
        )
        # As two processes would: each run gets the session from its own service.
        a, b = (
            StoreSessionService(url, reducers=reducers),
            StoreSessionService(url, reducers=reducers),
        )
        first = await a.get_session(app_name="shop", user_id="u", session_id="s1")
        second = await b.get_session(app_name="shop", user_id="u", session_id="s1")
        assert first is not None and second is not None
        for service, session, item in ((a, first, "milk"), (b, second, "eggs")):
            event = Event(author="shopper", invocation_id=f"e-{item}")
            event.actions = EventActions(
                state_delta={"cart": [*session.state["cart"], item], "count": 1}
            )
            await service.append_event(session, event)
        reader = StoreSessionService(url)
        final = await reader.get_session(app_name="shop", user_id="u", session_id="s1")
        assert final is not None
        for service in (writer, a, b, reader):
            await service.aclose()
        return dict(final.state)

    assert asyncio.run(main()) == {"cart": ["milk", "eggs"], "count": 2}


def test_scoped_state_user_and_app_keys_are_shared_across_sessions() -> None:
    async def main() -> tuple[Any, dict[str, Any]]:
        service = StoreSessionService(reducers={"user:visits": "add"})
        await service.create_session(
            app_name="a", user_id="u", session_id="s1", state={"user:visits": 1, "app:v": 2}
        )
        other = await service.create_session(app_name="a", user_id="u", session_id="s2")
        event = Event(author="greeter", invocation_id="e-1")
        event.actions = EventActions(state_delta={"user:visits": 2, "temp:scratch": 1})
        await service.append_event(other, event)
        first = await service.get_session(app_name="a", user_id="u", session_id="s1")
        return first, await service.get_user_state(app_name="a", user_id="u")

    first, user = asyncio.run(main())
    assert first.state == {"user:visits": 2, "app:v": 2}
    assert user == {"visits": 2}


def test_an_unknown_reducer_is_a_usage_error() -> None:
    with pytest.raises(
        UsageError,
        match=r"^The state key 'cart' has the reducer 'sum'; choose one of last_value, add, "
        r"append\.$",
    ):
        StoreSessionService(reducers={"cart": "sum"})


def test_an_event_appended_twice_is_saved_once() -> None:
    async def main() -> Any:
        service = StoreSessionService(reducers={"count": "add"})
        await service.create_session(app_name="a", user_id="u", session_id="s1", state={"count": 0})
        session = await service.get_session(app_name="a", user_id="u", session_id="s1")
        assert session is not None
        event = Event(author="counter", invocation_id="e-1", id="event-1")
        event.actions = EventActions(state_delta={"count": 1})
        await service.append_event(session, event)
        again = await service.get_session(app_name="a", user_id="u", session_id="s1")
        assert again is not None
        retry = Event(author="counter", invocation_id="e-1", id="event-1")
        retry.actions = EventActions(state_delta={"count": 1})
        await service.append_event(again, retry)  # a retry after a lost answer
        return await service.get_session(app_name="a", user_id="u", session_id="s1")

    final = asyncio.run(main())
    assert final.state == {"count": 1} and len(final.events) == 1


# --- one response asking for two tools; a ParallelAgent's branches -----------------------------


async def look_up(city: str, tool_context: ToolContext) -> dict[str, Any]:
    """Look a city up (an async tool: the calls of one response run at once)."""
    await asyncio.sleep(0.2 if city == "rome" else 0.1)
    tool_context.state[f"info_{city}"] = f"{city} info"
    return {"city": city}


async def one_run(root: Any, service: RecordedSessionService, state: dict[str, Any]) -> Any:
    """One ``run_async`` of ``root`` on a new session ``s``; the session after it."""
    runner = Runner(agent=root, app_name="app", session_service=service)
    await service.create_session(app_name="app", user_id="u", session_id="s", state=state)
    message = types.Content(role="user", parts=[types.Part(text="go")])
    async for _ in runner.run_async(user_id="u", session_id="s", new_message=message):
        pass
    return await service.get_session(app_name="app", user_id="u", session_id="s")


def two_calls_in_one_response(service: RecordedSessionService) -> Workflow:
    """A model that asks for two tools in one response: ADK merges their responses."""

    async def workflow() -> dict[str, Any]:
        model = ScriptedLlm(
            calls=lambda q: [("look_up", {"city": "rome"}), ("look_up", {"city": "oslo"})],
            latency=0.1,
        )
        planner = LlmAgent(name="planner", model=model, tools=[look_up], instruction="plan")
        return dict((await one_run(planner, service, {})).state)

    return workflow


def both_cities_looked_up(state: dict[str, Any]) -> None:
    assert state.get("info_rome") and state.get("info_oslo"), state


def test_parallel_function_calls_in_one_response_are_each_answered() -> None:
    # The merged response event answers both calls: no "unpaired tool call" in any ordering.
    async def workflow() -> dict[str, Any]:
        return await two_calls_in_one_response(recorded())()

    result = racefree.explore(
        workflow,
        schedules=30,
        invariants=[both_cities_looked_up],
        save_dir=None,
    )
    assert result.ok, result.report()
    # The merged event is one message with one tool_result block per call.
    service = recorded()
    asyncio.run(two_calls_in_one_response(service)())
    appends = [e for e in service.history if e.op == "append"]
    calls = [c["id"] for c in appends[1].value["tool_calls"]]
    answer = appends[2].value
    assert answer["role"] == "tool" and len(calls) == 2
    assert [block["tool_use_id"] for block in answer["content"]] == calls
    assert [a.version_written for a in appends] == [1, 2, 3, 4]  # one version per event
    assert racefree.check(service.history).errors == ()


async def note_own_key(text: str, tool_context: ToolContext) -> dict[str, Any]:
    """Fetch a source, then keep the note under the branch's own key."""
    await asyncio.sleep(0.05)
    tool_context.state[f"note_{text}"] = text
    return {"ok": True}


async def note_shared(text: str, tool_context: ToolContext) -> dict[str, Any]:
    """Read the shared notes, fetch a source, then write the notes back with one more."""
    notes = tool_context.state["notes"]
    await asyncio.sleep(0.05)
    tool_context.state["notes"] = [*notes, text]
    return {"ok": True}


def research(tool: Callable[..., Any], latencies: tuple[float, float] = (0.1, 0.15)) -> Any:
    """A ParallelAgent ``research`` with branches ``weather`` and ``traffic``, each noting."""
    branches = [
        LlmAgent(
            name=topic,
            model=ScriptedLlm(calls=lambda q, t=topic: [("note", {"text": t})], latency=latency),
            tools=[named(tool, "note")],
            instruction="research",
        )
        for topic, latency in zip(("weather", "traffic"), latencies, strict=True)
    ]
    with warnings.catch_warnings():
        # 2.13 deprecates ParallelAgent for Workflow, which cannot be a sub-agent yet.
        warnings.filterwarnings("ignore", "ParallelAgent is deprecated", DeprecationWarning)
        return ParallelAgent(name="research", sub_agents=branches)


def named(tool: Callable[..., Any], name: str) -> Callable[..., Any]:
    tool.__name__ = name  # ADK names a function tool after the function
    return tool


def test_parallel_agent_branches_are_checked_as_separate_conversations() -> None:
    # Branches interleave in one session's events by design; ADK builds each branch's
    # request from its own events, so each branch's calls and results pair on their own key.
    async def workflow() -> dict[str, Any]:
        return dict((await one_run(research(note_own_key), recorded(), {})).state)

    def both_notes_kept(state: dict[str, Any]) -> None:
        assert state["note_weather"] == "weather" and state["note_traffic"] == "traffic", state

    result = racefree.explore(workflow, schedules=50, invariants=[both_notes_kept], save_dir=None)
    assert result.ok, result.report()
    service = recorded()
    asyncio.run(one_run(research(note_own_key), service, {}))
    appends = {(e.key, e.agent) for e in service.history if e.op == "append"}
    assert appends == {
        ("session s events", "research (run 1)"),
        ("session s events[research.weather]", "weather in research (run 1)"),
        ("session s events[research.traffic]", "traffic in research (run 1)"),
    }


def test_parallel_agent_branches_losing_a_shared_keys_update_are_named() -> None:
    async def workflow() -> dict[str, Any]:
        return dict((await one_run(research(note_shared), recorded(), {"notes": []})).state)

    def both_notes_kept(state: dict[str, Any]) -> None:
        assert sorted(state["notes"]) == ["traffic", "weather"], state

    result = racefree.explore(workflow, schedules=50, invariants=[both_notes_kept], save_dir=None)
    assert result.failure is not None
    checker = {f.title: f for f in result.failure.run.failures if f.kind == "checker"}
    branches = "(traffic in research (run 1), weather in research (run 1))"
    lost = checker.pop(f"Checker: lost update on session s state.notes {branches}")
    assert checker == {}  # no unpaired tool call: each branch's calls are answered
    assert " ".join(lost.details).startswith(
        "traffic in research (run 1) read session s state.notes at v1: []. weather in "
        'research (run 1) applied a state_delta to session s state.notes at v2: ["weather"]. '
        "traffic in research (run 1) then applied a state_delta to session s state.notes at v3 "
        'from its copy of v1: ["traffic"]. weather in research (run 1)\'s state_delta is gone.'
    )


def test_a_branch_that_reads_after_the_others_write_is_not_reported() -> None:
    # traffic's model answers 0.5 s in, long after weather wrote the notes: traffic reads
    # weather's notes and adds its own, so at natural timing nothing is lost or reported.
    service = recorded()
    session = asyncio.run(one_run(research(note_shared, (0.1, 0.5)), service, {"notes": []}))
    assert session.state["notes"] == ["weather", "traffic"]
    assert racefree.check(service.history).findings == ()
    read = [e for e in service.history if e.op == "read" and e.agent.startswith("traffic")]
    assert [(e.key, e.version_read) for e in read] == [("session s state.notes", 2)]


async def note_then_confirm(text: str, tool_context: ToolContext) -> dict[str, Any]:
    """Add to the shared notes at once, then wait for a confirmation before returning."""
    tool_context.state["notes"] = [*tool_context.state["notes"], text]
    await asyncio.sleep(0.3)
    return {"ok": True}


def test_a_branch_reading_a_value_set_but_not_yet_appended_reads_that_write() -> None:
    # weather sets the notes in the shared copy at 0.1 s, but its event (the state_delta) is
    # appended at 0.4 s; traffic reads the notes at 0.2 s, so it reads weather's write: its
    # read is recorded once that write is, and its own write is not a lost update.
    service = recorded()
    session = asyncio.run(one_run(research(note_then_confirm, (0.1, 0.2)), service, {"notes": []}))
    assert session.state["notes"] == ["weather", "traffic"]
    assert racefree.check(service.history).findings == ()
    notes = [
        (e.op, e.agent, e.version_read, e.value)
        for e in service.history
        if e.key == "session s state.notes" and " in " in e.agent
    ]
    assert notes == [
        ("read", "weather in research (run 1)", 1, []),
        ("write", "weather in research (run 1)", 1, ["weather"]),
        ("read", "traffic in research (run 1)", 2, ["weather"]),
        ("write", "traffic in research (run 1)", 2, ["weather", "traffic"]),
    ]
