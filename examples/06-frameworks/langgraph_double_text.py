"""langgraph_double_text.py: two invocations on one LangGraph thread, and one turn is gone.

A chatbot graph keeps the conversation in a checkpointer, one thread per
conversation. The user double-texts: "hi", then "are you there?" before the
answer. The server invokes the graph for each message on the same
`thread_id`: both runs load checkpoint 0, each saves its own children of it,
and the thread's latest checkpoint is whichever was saved last. The other
run's question and answer are no longer in the conversation.

racefree's `RecordedCheckpointer` shows the explorer every load and save,
named by run; `StoreCheckpointer` is the fix: it admits one run per
`thread_id` at a time (the second message's run waits until the first has
ended, then loads its checkpoint), and refuses a save whose parent is no
longer the thread's latest. The app is unchanged: LangGraph's default
durability (a save per step), no retry loop.

    python langgraph_double_text.py [--store sqlite:///checkpoints.db]
    racefree explore langgraph_double_text:broken   # the same search from the CLI
"""

import argparse
import asyncio
import operator
import sys
from typing import Annotated, TypedDict

import _lesson  # noqa: F401  (puts the clone's src/ on the path)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

import racefree
from racefree.integrations import warm_up
from racefree.integrations.langgraph import RecordedCheckpointer, StoreCheckpointer

MESSAGES = ("hi", "are you there?")
CONFIG = {"configurable": {"thread_id": "ann"}}
STORE = "memory://"


class Chat(TypedDict):
    messages: Annotated[list, operator.add]


async def chatbot(state: Chat):
    """The model call (no network: it takes 1 s or 1.5 s and echoes)."""
    text = state["messages"][-1]
    await asyncio.sleep(1.0 if text == MESSAGES[0] else 1.5)
    return {"messages": [f"answer to {text}"]}


builder = StateGraph(Chat)
builder.add_node("chatbot", chatbot)
builder.add_edge(START, "chatbot")
builder.add_edge("chatbot", END)


async def double_text(checkpointer):
    graph = builder.compile(checkpointer=checkpointer)
    await checkpointer.adelete_thread("ann")

    async def say(text, after):
        await asyncio.sleep(after)  # the second message comes a moment after the first
        return await graph.ainvoke({"messages": [text]}, CONFIG)

    await asyncio.gather(say(MESSAGES[0], 0.1), say(MESSAGES[1], 0.2))
    return (await graph.aget_state(CONFIG)).values


def every_message_answered_once(state):
    """Both messages and both answers are in the conversation, each once."""
    expected = sorted([*MESSAGES, *(f"answer to {m}" for m in MESSAGES)])
    assert sorted(state["messages"]) == expected, f"the thread holds {state['messages']}"


async def broken():
    """The app as written: LangGraph's InMemorySaver, recorded."""
    return await double_text(RecordedCheckpointer(InMemorySaver()))


async def fixed():
    """The same app on racefree's StoreCheckpointer."""
    return await double_text(StoreCheckpointer(STORE))


broken.invariants = fixed.invariants = [every_message_answered_once]
warm_up(fixed)  # LangGraph's first run imports and caches; do it before exploring

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=STORE, help="store URL for the fix (default memory://)")
    STORE = parser.parse_args().store
    if STORE != "memory://":
        warm_up(fixed)  # the store's first use (its file, its connections) before exploring

    found = racefree.explore(broken, invariants=broken.invariants, save_dir=None)
    print("1. LangGraph's InMemorySaver, two invocations on one thread:\n")
    print(found.report())
    # A store with threads of its own (SQLite, Redis) multiplies the orderings: bounded there.
    budget = 1000 if STORE == "memory://" else 100
    proof = racefree.explore(
        fixed, strategy="exhaustive", schedules=budget, invariants=fixed.invariants, save_dir=None
    )
    print(f"\n2. racefree's StoreCheckpointer on {STORE}, every ordering:\n")
    print("\n".join(proof.summary()))
    print("\nLook at the lost update on thread ann: run 2 saved a checkpoint made from its copy")
    print("of checkpoint 0 after run 1 had saved its turn. StoreCheckpointer lets one run at a")
    print("time have the thread: the second waits, then starts from the first one's checkpoint.")
    sys.exit(0 if not found.ok and proof.ok else 1)
