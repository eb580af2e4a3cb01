"""The LangGraph integration, against the real LangGraph (no network: the nodes sleep)."""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph", reason="install racefree[langgraph]")

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

import racefree
from racefree.errors import ConflictError, UsageError
from racefree.integrations import warm_up
from racefree.integrations.langgraph import RecordedCheckpointer, StoreCheckpointer

QUESTIONS = ("hi", "bye")
ERROR = "__error__"  # the channel of a task's error (private in LangGraph: WRITES_IDX_MAP maps it)
CONFIG: Any = {"configurable": {"thread_id": "t1"}}


class Chat(TypedDict):
    messages: Annotated[list[str], operator.add]


async def chatbot(state: Chat) -> dict[str, list[str]]:
    question = state["messages"][-1]
    await asyncio.sleep(1.0 if question == QUESTIONS[0] else 1.5)  # the model call
    return {"messages": [f"answer to {question}"]}


def graph(checkpointer: Any) -> Any:
    builder = StateGraph(Chat)
    builder.add_node("chatbot", chatbot)
    builder.add_edge(START, "chatbot")
    builder.add_edge("chatbot", END)
    return builder.compile(checkpointer=checkpointer)


def double_text(
    checkpointer: Callable[[], Any], durability: str = "async", *, stagger: bool = False
) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Two invocations on one thread_id at once; a refused one is invoked again.

    With ``stagger`` the messages arrive 0.1 s and 0.2 s in, so that either
    may be loaded first (the explorer may end either wait first).
    """

    async def workflow() -> dict[str, Any]:
        app = graph(checkpointer())

        async def say(text: str) -> None:
            if stagger:
                await asyncio.sleep(0.1 if text == QUESTIONS[0] else 0.2)
            for _ in range(3):
                try:
                    await app.ainvoke({"messages": [text]}, CONFIG, durability=durability)
                    return
                except ConflictError:
                    continue  # the thread moved on: invoke again from its latest checkpoint

        await asyncio.gather(*(say(q) for q in QUESTIONS))
        values: dict[str, Any] = (await app.aget_state(CONFIG)).values
        return values

    return workflow


def every_question_answered_once(state: dict[str, Any]) -> None:
    """Both questions and both answers are on the thread, each once."""
    expected = sorted([*QUESTIONS, *(f"answer to {q}" for q in QUESTIONS)])
    assert sorted(state["messages"]) == expected, state["messages"]


def recorded() -> RecordedCheckpointer:
    return RecordedCheckpointer(InMemorySaver())


def fixed() -> StoreCheckpointer:
    return StoreCheckpointer(racefree.open_store("memory://", history=racefree.History()))


@pytest.fixture(scope="module", autouse=True)
def first_use_outside_the_explorer() -> None:
    warm_up(double_text(fixed, "exit"))


def test_the_recorder_shows_the_second_run_saving_over_the_first() -> None:
    result = racefree.explore(
        double_text(recorded), invariants=[every_question_answered_once], save_dir=None
    )
    failure = result.failure
    assert failure is not None
    checker = [f for f in failure.run.failures if f.kind == "checker"]
    assert checker[0].title == "Checker: lost update on thread t1 (run 2, run 1)"
    assert checker[0].name == "lost-update"
    assert " ".join(checker[0].details) == (
        "run 2 loaded thread t1 at checkpoint 0. run 1 saved thread t1 as checkpoint 1. "
        "run 1 saved thread t1 as checkpoint 2. run 2 then saved thread t1 as checkpoint 3 "
        "from its copy of checkpoint 0. run 1's turn is gone. Use "
        "racefree.integrations.langgraph.StoreCheckpointer, which admits one run per "
        "thread_id at a time, or give concurrent conversations their own thread_id."
    )
    invariant = [f for f in failure.run.failures if f.kind == "invariant"]
    assert invariant and "every_question_answered_once" in invariant[0].title


def test_runs_are_named_by_their_run_name_and_saves_by_their_nodes() -> None:
    async def workflow() -> list[racefree.Event]:
        saver = recorded()
        app = graph(saver)
        await asyncio.gather(
            *(
                app.ainvoke({"messages": [q]}, {**CONFIG, "run_name": name})
                for q, name in zip(QUESTIONS, ("greeter", "farewell"), strict=True)
            )
        )
        return saver.history.events

    events = asyncio.run(workflow())
    assert {e.agent for e in events} == {"greeter", "farewell"}
    saves = [e for e in events if e.op == "write" and e.agent == "greeter"]
    assert [e.meta["step"] for e in saves] == [-1, 0, 1]
    assert [e.meta.get("nodes") for e in saves] == [None, ["__start__"], ["chatbot"]]
    writes = [e for e in events if e.op == "extend" and e.agent == "greeter"]
    assert writes[-1].meta["words"]["verb"] == "saved node chatbot's writes to"
    [lost, *_] = racefree.check(racefree.History(events)).of_kind("lost-update")
    assert lost.explanation.story().startswith(
        "farewell loaded thread t1 at checkpoint 0. greeter saved thread t1 as checkpoint 1."
    )


def test_the_store_checkpointer_passes_exhaustive_search_with_one_save_per_run() -> None:
    result = racefree.explore(
        double_text(fixed, "exit", stagger=True),
        strategy="exhaustive",
        schedules=10_000,
        invariants=[every_question_answered_once],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete and result.distinct >= 2


@pytest.mark.parametrize("durability", ["async", "sync"])
def test_with_per_step_saves_both_turns_are_kept_exactly_once_in_every_ordering(
    durability: str,
) -> None:
    # LangGraph's default durability: a run saves its question, then each step. One run
    # per thread_id at a time: the second run waits for the first to end, never refused.
    result = racefree.explore(
        double_text(fixed, durability, stagger=True),
        strategy="exhaustive",
        schedules=10_000,
        invariants=[every_question_answered_once],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete
    assert result.distinct >= 2  # either message's run may have the thread first


def refusing_only() -> StoreCheckpointer:
    store = racefree.open_store("memory://", history=racefree.History())
    return StoreCheckpointer(store, one_run_per_thread=False)


def test_without_one_run_per_thread_a_retried_run_can_repeat_its_question() -> None:
    # The limit of refusing a stale parent alone: the refused run had saved its question,
    # the other run built on it, and invoking the refused run again asks it a second time.
    result = racefree.explore(
        double_text(refusing_only, "async"),
        strategy="exhaustive",
        schedules=10_000,
        invariants=[every_question_answered_once],
        save_dir=None,
    )
    failure = result.failure
    assert failure is not None
    assert failure.failure.kind == "invariant"
    messages = failure.run.result["messages"]
    assert sorted(set(messages)) == sorted([*QUESTIONS, *(f"answer to {q}" for q in QUESTIONS)])
    assert len(messages) > 4  # a question asked twice, nothing missing


def test_a_run_that_fails_frees_its_thread_for_the_next_run() -> None:
    attempts: list[str] = []

    async def flaky(state: Chat) -> dict[str, list[str]]:
        attempts.append(state["messages"][-1])
        if len(attempts) == 1:
            raise RuntimeError("the model is down")
        return {"messages": [f"answer to {state['messages'][-1]}"]}

    builder = StateGraph(Chat)
    builder.add_node("chatbot", flaky)
    builder.add_edge(START, "chatbot")
    builder.add_edge("chatbot", END)
    saver = fixed()
    app = builder.compile(checkpointer=saver)

    async def main() -> dict[str, Any]:
        with pytest.raises(RuntimeError, match="the model is down"):
            await app.ainvoke({"messages": ["hi"]}, CONFIG)
        assert saver.store.get("langgraph t1/ lease") is None  # released as the run ended
        await app.ainvoke({"messages": ["bye"]}, CONFIG)
        assert saver.store.get("langgraph t1/ lease") is None
        values: dict[str, Any] = (await app.aget_state(CONFIG)).values
        return values

    assert asyncio.run(main())["messages"] == ["hi", "bye", "answer to bye"]


def test_a_lease_of_another_process_is_waited_for_until_it_expires() -> None:
    saver = StoreCheckpointer(lease_seconds=0.2)
    # A run of another process holds the thread; its process died without releasing it.
    saver.store.set(
        "langgraph t1/ lease",
        {"holder": "elsewhere:run", "by": "run 1", "until": time.time() + 0.2},
    )
    app = graph(saver)
    asyncio.run(app.ainvoke({"messages": ["hi"]}, CONFIG))
    assert saver.store.get("langgraph t1/ lease") is None
    assert app.get_state(CONFIG).values["messages"] == ["hi", "answer to hi"]


def test_a_lease_shorter_than_nothing_is_a_usage_error() -> None:
    with pytest.raises(
        UsageError, match=r"^lease_seconds must be a positive number of seconds, not 0\.$"
    ):
        StoreCheckpointer(lease_seconds=0)


def test_a_stale_parent_is_refused_naming_the_run_that_saved_since() -> None:
    saver = StoreCheckpointer()
    config: Any = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    first, second = empty_checkpoint(), empty_checkpoint()
    with racefree.agent("run A"):
        saved = saver.put(config, first, {"source": "input", "step": -1}, {})
    with racefree.agent("run B"), pytest.raises(ConflictError) as caught:
        saver.put(config, second, {"source": "input", "step": -1}, {})
    assert str(caught.value) == (
        "run B saved thread 't1' from checkpoint 0, but run A has since saved checkpoint 1: "
        "saving would lose run A's turn. Nothing was written; invoke the graph again on this "
        "thread (it starts from checkpoint 1), or give concurrent conversations their own "
        "thread_id."
    )
    latest = saver.get_tuple(config)
    assert latest is not None and latest.checkpoint["id"] == first["id"]
    assert saved["configurable"]["checkpoint_id"] == first["id"]


def test_two_checkpointers_on_one_store_refuse_each_others_stale_parent(shared_url: str) -> None:
    one, two = (
        StoreCheckpointer(shared_url),
        StoreCheckpointer(shared_url),
    )  # as two processes hold them
    config: Any = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    one.put(config, empty_checkpoint(), {"step": -1}, {})
    with pytest.raises(ConflictError, match=r"from checkpoint 0, but .* saved checkpoint 1"):
        two.put(config, empty_checkpoint(), {"step": -1}, {})
    one.close()
    two.close()


def test_pending_writes_of_parallel_tasks_are_all_kept_once() -> None:
    saver = StoreCheckpointer()
    config: Any = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    saved = saver.put(config, checkpoint, {"step": 0}, {})
    saver.put_writes(saved, [("results", "A")], task_id="task-a", task_path="~a")
    saver.put_writes(saved, [("results", "B")], task_id="task-b", task_path="~b")
    saver.put_writes(saved, [("results", "A again")], task_id="task-a", task_path="~a")  # retry
    saver.put_writes(saved, [(ERROR, "timeout")], task_id="task-c", task_path="~c")
    saver.put_writes(saved, [(ERROR, "refused")], task_id="task-c", task_path="~c")
    found = saver.get_tuple(saved)
    assert found is not None
    assert found.pending_writes == [
        ("task-a", "results", "A"),
        ("task-b", "results", "B"),
        ("task-c", ERROR, "refused"),  # the last error of a task replaces the one before
    ]


def test_the_store_checkpointer_runs_a_sync_graph_and_keeps_its_history() -> None:
    def echo(state: Chat) -> dict[str, list[str]]:
        return {"messages": [f"answer to {state['messages'][-1]}"]}

    builder = StateGraph(Chat)
    builder.add_node("echo", echo)
    builder.add_edge(START, "echo")
    builder.add_edge("echo", END)
    app = builder.compile(checkpointer=StoreCheckpointer())
    app.invoke({"messages": ["hi"]}, CONFIG)
    app.invoke({"messages": ["bye"]}, CONFIG)
    assert app.get_state(CONFIG).values["messages"] == [
        "hi",
        "answer to hi",
        "bye",
        "answer to bye",
    ]
    steps = [s.metadata["step"] for s in app.get_state_history(CONFIG)]
    assert steps == [4, 3, 2, 1, 0, -1]


def test_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(
        UsageError,
        match=r"^RecordedCheckpointer wraps a LangGraph checkpointer, not a dict\. "
        r"Pass one such as InMemorySaver\(\)\.$",
    ):
        RecordedCheckpointer({})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^A checkpointer needs a thread_id"):
        StoreCheckpointer().get_tuple({"configurable": {}})


def threaded_double_text(
    checkpointer: Callable[[], Any], durability: str = "exit"
) -> Callable[[], dict[str, Any]]:
    """The sync API: two threads each invoke the graph on one thread_id."""

    def reply(state: Chat) -> dict[str, list[str]]:
        question = state["messages"][-1]
        time.sleep(1.0 if question == QUESTIONS[0] else 1.5)  # the model call
        return {"messages": [f"answer to {question}"]}

    def workflow() -> dict[str, Any]:
        builder = StateGraph(Chat)
        builder.add_node("chatbot", reply)
        builder.add_edge(START, "chatbot")
        builder.add_edge("chatbot", END)
        app = builder.compile(checkpointer=checkpointer())

        def say(text: str) -> None:
            for _ in range(3):
                try:
                    app.invoke({"messages": [text]}, CONFIG, durability=durability)
                    return
                except ConflictError:
                    continue

        threads = [threading.Thread(target=say, args=(q,)) for q in QUESTIONS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        values: dict[str, Any] = app.get_state(CONFIG).values
        return values

    return workflow


def test_threads_on_the_sync_api_lose_a_turn_and_the_fix_passes_exhaustive_search() -> None:
    broken = racefree.explore(
        threaded_double_text(recorded), invariants=[every_question_answered_once], save_dir=None
    )
    assert broken.failure is not None
    kinds = {(f.kind, f.name) for f in broken.failure.run.failures}
    assert ("checker", "lost-update") in kinds and (
        "invariant",
        "every_question_answered_once",
    ) in kinds
    fixed_run = racefree.explore(
        threaded_double_text(fixed),
        strategy="exhaustive",
        schedules=10_000,
        invariants=[every_question_answered_once],
        save_dir=None,
    )
    assert fixed_run.ok, fixed_run.report()
    assert fixed_run.complete


def test_threads_with_per_step_saves_keep_both_turns_within_a_budget() -> None:
    # LangGraph's sync API saves from executor threads of its own: too many orderings to
    # finish (300 take about 25 s); none of the first 300 of exhaustive search fails.
    result = racefree.explore(
        threaded_double_text(fixed, "sync"),
        strategy="exhaustive",
        schedules=300,
        invariants=[every_question_answered_once],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.distinct == 300


class Found(TypedDict):
    results: list[str]  # no reducer: one value per step


class Gathered(TypedDict):
    results: Annotated[list[str], operator.add]


def fan_out(schema: Any) -> tuple[Callable[[], Awaitable[dict[str, Any]]], list[racefree.Event]]:
    """Two parallel branches (one superstep) each write the key ``results``.

    Returns the workflow and the list that receives its runs' recorded events.
    """
    events: list[racefree.Event] = []

    async def search(state: Any) -> dict[str, list[str]]:
        await asyncio.sleep(1.0)
        return {"results": ["web"]}

    async def lookup(state: Any) -> dict[str, list[str]]:
        await asyncio.sleep(1.5)
        return {"results": ["docs"]}

    async def workflow() -> dict[str, Any]:
        builder = StateGraph(schema)
        builder.add_node("search", search)
        builder.add_node("lookup", lookup)
        builder.add_edge(START, "search")
        builder.add_edge(START, "lookup")
        builder.add_edge("search", END)
        builder.add_edge("lookup", END)
        saver = recorded()
        app = builder.compile(checkpointer=saver)
        try:
            state: dict[str, Any] = await app.ainvoke({"results": []}, CONFIG)
        finally:
            events.extend(saver.history.events)
        return state

    return workflow, events


def test_parallel_branches_writing_one_key_without_a_reducer_fail_in_langgraph() -> None:
    workflow, events = fan_out(Found)
    result = racefree.explore(workflow, schedules=20, save_dir=None)
    failure = result.failure
    assert failure is not None
    assert (failure.failure.kind, failure.failure.name) == ("exception", "InvalidUpdateError")
    assert failure.failure.title.startswith(
        "The workflow raised InvalidUpdateError: At key 'results': Can receive only one "
        "value per step."
    )
    # The recorder shows both branches' writes of the key, one step, before the save fails.
    writes = {(e.meta["node"], tuple(e.value)) for e in events if e.meta.get("node")}
    assert {("search", ("results",)), ("lookup", ("results",))} <= writes


def test_a_reducer_on_the_key_merges_the_branches_in_every_ordering() -> None:
    def both_results(state: dict[str, Any]) -> None:
        """Both branches' results are in the state."""
        assert sorted(state["results"]) == ["docs", "web"], state

    workflow, _ = fan_out(Gathered)
    result = racefree.explore(
        workflow,
        strategy="exhaustive",
        schedules=1000,
        invariants=[both_results],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete
