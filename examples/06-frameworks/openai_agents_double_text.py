"""openai_agents_double_text.py: two runs on one OpenAI Agents SDK session interleave their turns.

The user double-texts a concierge agent: "Book a table for Friday", then,
before the answer, "Make it for four people". The app runs `Runner.run` for
each message on the same `SQLiteSession`, as a chat server does. The SDK
saves a run's question when the run starts and its answer when it ends, so
the two turns interleave: question, question, answer, answer. The next model
call reads a conversation in which an answer no longer follows its question.

racefree's `RecordedSession` wraps the session so the explorer sees every
session call, named by run; `StoreSession` is the fix: each run's turn is
appended whole, in one atomic step, on any store URL.

    python openai_agents_double_text.py [--store sqlite:///sessions.db]
    racefree explore openai_agents_double_text:broken   # the same search from the CLI
"""

import argparse
import asyncio
import sys

import _lesson  # noqa: F401  (puts the clone's src/ on the path)
from agents import Agent, Runner, SQLiteSession

import racefree
from racefree.integrations.openai_agents import RecordedSession, StoreSession, scripted_model

QUESTIONS = ("Book a table for Friday", "Make it for four people")
STORE = "memory://"

# No network: a scripted model answers "answer to <question>" after 1 s or 1.5 s.
concierge = Agent(
    name="Concierge",
    instructions="You book restaurant tables.",
    model=scripted_model(latency=lambda question: 1.0 if question == QUESTIONS[0] else 1.5),
)


async def double_text(session):
    """Both messages arrive while the agent is thinking: two runs on one session."""
    await asyncio.gather(*(Runner.run(concierge, q, session=session) for q in QUESTIONS))
    return await session.get_items()


def answers_follow_questions(items):
    """Every question is followed at once by its own answer."""
    assert len(items) % 2 == 0, f"{len(items)} items: a question without its answer"
    for question, answer in zip(items[::2], items[1::2], strict=True):
        said = answer["content"][0]["text"] if answer.get("role") == "assistant" else None
        assert said == f"answer to {question.get('content')}", f"{question} then {answer}"


async def broken():
    """The app as written: the SDK's SQLiteSession, recorded."""
    return await double_text(RecordedSession(SQLiteSession("table-for-friday")))


async def fixed():
    """The same app on racefree's StoreSession."""
    session = StoreSession("table-for-friday", STORE)
    await session.clear_session()  # each explored run starts from an empty conversation
    return await double_text(session)


broken.invariants = fixed.invariants = [answers_follow_questions]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=STORE, help="store URL for the fix (default memory://)")
    STORE = parser.parse_args().store

    found = racefree.explore(broken, invariants=broken.invariants, save_dir=None)
    print("1. The SDK's SQLiteSession, two runs at once:\n")
    print(found.report())
    # A store with threads of its own (SQLite, Redis) multiplies the orderings: bounded there.
    budget = 1000 if STORE == "memory://" else 100
    proof = racefree.explore(
        fixed, strategy="exhaustive", schedules=budget, invariants=fixed.invariants, save_dir=None
    )
    print(f"\n2. racefree's StoreSession on {STORE}, every ordering:\n")
    print("\n".join(proof.summary()))
    print("\nLook at the checker's story: Concierge (run 2) saves its question inside the turn")
    print("of Concierge (run 1). With StoreSession each turn is appended whole, so no ordering")
    print("splits one.")
    sys.exit(0 if not found.ok and proof.ok else 1)
