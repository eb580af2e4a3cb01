"""adk_double_text.py: two runs on one Google ADK session, and one item leaves the cart.

A shopping agent adds what the user asks for to a cart kept in the session's
state. The user double-texts: "add milk", then "add eggs" before the first
answer. Each message is a `runner.run_async` on the same session: each run
gets its own copy of the session, the tool adds one item to the cart it sees,
and ADK saves the tool's `state_delta` (the whole new cart, the new count)
over what is stored. The second save replaces the first: the milk is gone,
and the count says 1. `InMemorySessionService` loses it silently; the
database services raise "stale session" instead (ADK issues 1049 and 1733).

racefree's `RecordedSessionService` shows the explorer every session read and
write, named by run; `StoreSessionService` is the fix: a state_delta is merged
in one atomic step, the cart through an append reducer, the count through add.

    python adk_double_text.py [--store sqlite:///sessions.db]
    racefree explore adk_double_text:broken   # the same search from the CLI
"""

import argparse
import asyncio
import sys

import _lesson  # noqa: F401  (puts the clone's src/ on the path)
from google.adk.agents import LlmAgent
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.adk.tools import ToolContext
from google.genai import types

import racefree
from racefree.integrations import warm_up
from racefree.integrations.adk import RecordedSessionService, ScriptedLlm, StoreSessionService

STORE = "memory://"


def add_to_cart(item: str, tool_context: ToolContext) -> dict:
    """Add one item to the user's cart."""
    tool_context.state["cart"] = tool_context.state["cart"] + [item]  # the run's copy
    tool_context.state["count"] = tool_context.state["count"] + 1
    return {"cart": tool_context.state["cart"]}


# No network: a scripted model calls add_to_cart with the last word, then says "done".
model = ScriptedLlm(
    calls=lambda text: [("add_to_cart", {"item": text.split()[-1]})],
    latency=lambda text: 1.0 if "milk" in text else 1.5,
)
shopper = LlmAgent(name="shopper", model=model, tools=[add_to_cart], instruction="Shop.")


async def double_text(service):
    runner = Runner(agent=shopper, app_name="shop", session_service=service)
    await service.delete_session(app_name="shop", user_id="ann", session_id="s1")
    await service.create_session(
        app_name="shop", user_id="ann", session_id="s1", state={"cart": [], "count": 0}
    )

    async def say(text):
        message = types.Content(role="user", parts=[types.Part(text=text)])
        async for _ in runner.run_async(user_id="ann", session_id="s1", new_message=message):
            pass

    await asyncio.gather(say("add milk"), say("add eggs"))
    session = await service.get_session(app_name="shop", user_id="ann", session_id="s1")
    return dict(session.state)


def both_items_in_the_cart(state):
    """Both items are in the cart, and the count counts both."""
    assert sorted(state["cart"]) == ["eggs", "milk"], f"cart {state['cart']}"
    assert state["count"] == 2, f"count {state['count']}"


async def broken():
    """The app as written: ADK's InMemorySessionService, recorded."""
    return await double_text(RecordedSessionService(InMemorySessionService()))


async def fixed():
    """The same app on racefree's StoreSessionService."""
    service = StoreSessionService(STORE, reducers={"cart": "append", "count": "add"})
    return await double_text(service)


broken.invariants = fixed.invariants = [both_items_in_the_cart]
warm_up(fixed)  # ADK's first run imports and caches; do it before exploring

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=STORE, help="store URL for the fix (default memory://)")
    STORE = parser.parse_args().store
    if STORE != "memory://":
        warm_up(fixed)  # the store's first use (its file, its connections) before exploring

    found = racefree.explore(broken, invariants=broken.invariants, save_dir=None)
    print("1. ADK's InMemorySessionService, two runs at once:\n")
    print(found.report())
    # A store with threads of its own (SQLite, Redis) multiplies the orderings: bounded there.
    budget = 1000 if STORE == "memory://" else 100
    proof = racefree.explore(
        fixed, strategy="exhaustive", schedules=budget, invariants=fixed.invariants, save_dir=None
    )
    print(f"\n2. racefree's StoreSessionService on {STORE}, every ordering:\n")
    print("\n".join(proof.summary()))
    print("\nLook at the lost update on session s1 state.cart: shopper's run 2 applied a")
    print("state_delta computed from the cart it loaded before run 1's milk. With reducers")
    print("each run's change is merged, in any order.")
    sys.exit(0 if not found.ok and proof.ok else 1)
