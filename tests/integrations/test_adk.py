"""The Google ADK integration, against the real ADK (no network: a scripted model)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("google.adk", reason="install racefree[adk]")

from google.adk.agents import LlmAgent
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
