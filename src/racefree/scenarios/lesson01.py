"""Lesson 01: agents that share one session dict, in threads.

The agent functions here are the lesson: :func:`unsafe_agent` is the bug that
real agent code ships with (read the session, call the model, write back), and
:func:`locked_agent` is the fix. The ``run_*`` functions run them and measure
what happened; the ``forced_*`` functions use a :class:`Choreography` to make
one bad interleaving happen on every run.

Every race here is real: real threads, real shared dicts and lists, real
sleeps standing in for model calls. Nothing is corrupted by hand.
"""

from __future__ import annotations

import itertools
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from racefree.history import Event, History
from racefree.scenarios.choreography import Choreography
from racefree.scenarios.llm import LLMReply, SimulatedLLM
from racefree.scenarios.result import ScenarioResult

__all__ = [
    "SessionCopy",
    "add_reply",
    "combine",
    "flow_result",
    "forced_check_then_act",
    "forced_counter",
    "forced_history_copy",
    "forced_interleaved_turns",
    "locked_agent",
    "many_thread_appends",
    "new_seed",
    "new_session",
    "read_session",
    "run_broken_parallel",
    "run_race_condition_demo",
    "run_sequential",
    "run_simple_fix",
    "unsafe_agent",
    "write_back",
]

Session = dict[str, Any]
HISTORY = "conversation_history"


def new_session() -> Session:
    """The shared state every lesson-01 agent works on."""
    return {
        HISTORY: [],
        "agent_results": {},
        "agent_status": {},
        "metadata": {"total_tokens": 0, "completed": 0},
    }


# --- The agents -------------------------------------------------------------


@dataclass(frozen=True)
class SessionCopy:
    """What an agent read of the session: its own copies, which go stale."""

    conversation: list[dict[str, str]]
    total_tokens: int
    completed: int


def read_session(name: str, session: Session, history: History) -> SessionCopy:
    """Copy the history and the counters an agent is about to change."""
    seen = SessionCopy(
        list(session[HISTORY]),
        session["metadata"]["total_tokens"],
        session["metadata"]["completed"],
    )
    history.record("read", HISTORY, agent=name, version_read=len(seen.conversation))
    return seen


def write_back(
    name: str, session: Session, seen: SessionCopy, reply: LLMReply, history: History
) -> None:
    """Save the copy plus our part: it replaces whatever others saved since the copy."""
    conversation = [*seen.conversation, {"agent": name, "content": reply.text}]
    session[HISTORY] = conversation
    session["metadata"]["total_tokens"] = seen.total_tokens + reply.tokens
    session["metadata"]["completed"] = seen.completed + 1
    session["agent_results"][name] = reply.text
    session["agent_status"][name] = "done"
    history.record(
        "write",
        HISTORY,
        agent=name,
        version_read=len(seen.conversation),
        version_written=len(conversation),
        value=reply.text,
    )


def add_reply(
    name: str, session: Session, reply: LLMReply, history: History, how: str = "under the lock"
) -> None:
    """Read-modify-write in place: one indivisible step only while nobody else can run it.

    ``how`` says what guarantees that (for the story): a lock, or a single writer.
    """
    session[HISTORY].append({"agent": name, "content": reply.text})
    session["metadata"]["total_tokens"] += reply.tokens
    session["metadata"]["completed"] += 1
    session["agent_results"][name] = reply.text
    session["agent_status"][name] = "done"
    version = len(session[HISTORY])
    history.record(
        "append",
        HISTORY,
        agent=name,
        version_read=version - 1,
        version_written=version,
        value=reply.text,
        meta={"how": how},
    )


def unsafe_agent(name: str, session: Session, llm: SimulatedLLM, history: History) -> None:
    """The bug: read the session, call the model, write back the copy plus our part.

    Correct when agents run one at a time; loses work as soon as two overlap,
    because each writes back a copy taken before the other's write.
    """
    session["agent_status"][name] = "running"
    seen = read_session(name, session, history)  # 1. read: take copies
    history.record("call", agent=name)
    reply = llm.call(name)  # 2. 1 to 3 s, while every other agent runs too
    write_back(name, session, seen, reply, history)  # 3. write: our copy replaces theirs


def locked_agent(
    name: str,
    session: Session,
    lock: threading.Lock,
    llm: SimulatedLLM,
    history: History,
) -> LLMReply:
    """The fix: call the model outside the lock, then read-modify-write inside it."""
    history.record("call", agent=name)
    reply = llm.call(name)  # the slow part stays parallel: no lock is held while waiting
    with lock:  # read, modify and write as one indivisible step
        add_reply(name, session, reply, history)
    return reply


# --- Measuring a run ----------------------------------------------------------


def _expected(names: list[str], llm: SimulatedLLM) -> dict[str, int]:
    return {
        "history_entries": len(names),
        "results": len(names),
        "completed": len(names),
        "total_tokens": sum(llm.plan(name).tokens for name in names),
    }


def _actual(session: Session) -> dict[str, int]:
    return {
        "history_entries": len(session[HISTORY]),
        "results": len(session["agent_results"]),
        "completed": session["metadata"]["completed"],
        "total_tokens": session["metadata"]["total_tokens"],
    }


_STORY = {
    "read": "{agent} reads the history at v{read}",
    "write": "{agent} writes v{written} (its copy of v{read} plus its entry)",
    "append": "{agent} appends {how}: v{read} -> v{written}",
    "apply": "{agent} applies its delta in one atomic store operation: v{read} -> v{written}",
    "get": "{agent} reads the session at v{read}",
    "compare_and_set": "{agent} saves its copy of v{read} because the session is still at "
    "v{read}: v{written}",
    "conflict": "{agent}'s save of its copy of v{read} is refused: the session moved on; "
    "it re-reads and redoes its update",
}


_STORY_KEYS = (HISTORY, "session", None)


def _story_of_flow(events: list[Event], lost: list[str]) -> list[str]:
    lines = []
    for event in events:
        template = _STORY.get(event.op)
        if template is None:
            continue  # calls are in the lanes; the story is about reads and writes
        line = template.format(
            agent=event.agent,
            read=event.version_read,
            written=event.version_written,
            how=event.meta.get("how", ""),
        )
        lines.append(f"t={event.time:6.3f}s  {line}")
    writes = [e for e in events if e.version_written is not None]
    if lost and writes:
        last = writes[-1]
        lines.append(
            f"Lost: {', '.join(lost)}. {last.agent} wrote last, from its copy of "
            f"v{last.version_read}: whatever was not in that copy is gone."
        )
    elif writes:
        lines.append("Nothing lost: every write started from the version the one before it made.")
    return lines


def flow_result(
    scenario: str,
    title: str,
    names: list[str],
    llm: SimulatedLLM,
    session: Session,
    history: History,
    wall: float,
) -> ScenarioResult:
    """Measure a lesson flow: expected against actual, who lost work, the story."""
    expected, actual = _expected(names, llm), _actual(session)
    kept = {entry["agent"] for entry in session[HISTORY]}
    lost = [name for name in names if name not in kept]
    return ScenarioResult(
        scenario=scenario,
        title=title,
        agents=names,
        seed=llm.seed,
        time_scale=llm.time_scale,
        wall_seconds=wall,
        expected=expected,
        actual=actual,
        measure="history_entries",
        lost_updates=len(lost),
        lost_agents=lost,
        consistent=actual == expected,
        latencies={name: llm.plan(name).latency for name in names},
        final_state=session,
        story=_story_of_flow(
            [e for e in history.events if e.key in _STORY_KEYS and e.agent in names], lost
        ),
        history=history,
    )


def new_seed(seed: int | None) -> int:
    """``seed``, or a fresh random one to report so that the run can be repeated."""
    return seed if seed is not None else random.SystemRandom().randrange(10**6)


# --- The lesson's runs ------------------------------------------------------------


def run_sequential(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """The unsafe agent, one agent after another: slow, and nothing is lost."""
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()
    start = time.perf_counter()
    for name in names:
        unsafe_agent(name, session, llm, history)
    wall = time.perf_counter() - start
    return flow_result("broken_sequential", "one at a time", names, llm, session, history, wall)


def run_broken_parallel(
    names: list[str], *, seed: int | None = None, time_scale: float = 1.0
) -> ScenarioResult:
    """The same unsafe agent in a thread pool: fast, and every agent but one loses its work."""
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="agent") as pool:
        for future in [pool.submit(unsafe_agent, n, session, llm, history) for n in names]:
            future.result()
    wall = time.perf_counter() - start
    return flow_result("broken_parallel", "parallel, unsafe", names, llm, session, history, wall)


def run_simple_fix(
    names: list[str],
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    on_progress: Callable[[str, LLMReply, float], None] | None = None,
) -> ScenarioResult:
    """The locked agent in a thread pool: as fast as the broken one, and nothing is lost.

    ``on_progress(agent, reply, elapsed)`` is called from the calling thread
    as each agent finishes; the agents hand their news over a ``queue.Queue``.
    """
    llm, session, history = SimulatedLLM(new_seed(seed), time_scale), new_session(), History()
    lock = threading.Lock()
    progress: queue.Queue[tuple[str, LLMReply]] = queue.Queue()
    start = time.perf_counter()

    def report(name: str) -> None:  # printing from many threads garbles lines: hand it to one
        progress.put((name, locked_agent(name, session, lock, llm, history)))

    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="agent") as pool:
        futures = [pool.submit(report, n) for n in names]
        for _ in names:
            name, reply = progress.get()
            if on_progress is not None:
                on_progress(name, reply, time.perf_counter() - start)
        for future in futures:
            future.result()
    wall = time.perf_counter() - start
    return flow_result("simple_fix", "parallel, locked", names, llm, session, history, wall)


# --- Forced interleavings ---------------------------------------------------------


def _run_threads(names: list[str], target: Callable[[str], None]) -> float:
    errors: list[BaseException] = []

    def guarded(name: str) -> None:
        try:
            target(name)
        except BaseException as exc:  # surfaced below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,), name=n) for n in names]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def _reads_then_writes(names: list[str], read: str, write: str, time_scale: float) -> Choreography:
    """Everyone reads before anyone writes: the interleaving that loses the most.

    A step may wait for another agent's model call, so the time a step may
    wait grows with the latency scale.
    """
    patience = 30.0 + 2 * SimulatedLLM.MAX_SECONDS * time_scale
    return Choreography([(n, read) for n in names] + [(n, write) for n in names], timeout=patience)


def _overwritten(history: History, key: str) -> list[str]:
    """Agents whose write to ``key`` was replaced by a later write computed from an older read.

    Each write records the value it was computed from (``version_read``); a
    write is overwritten when a later write was computed from a read taken
    before it landed.
    """
    writes = [e for e in history.events if e.op == "write" and e.key == key]
    return [
        earlier.agent
        for i, earlier in enumerate(writes)
        if any(later.version_read < earlier.version_written for later in writes[i + 1 :])  # type: ignore[operator]
    ]


def forced_counter(names: list[str], *, seed: int = 0, time_scale: float = 0.01) -> ScenarioResult:
    """(a) Lost update on a counter: ``completed = completed + 1`` split by a model call."""
    llm, metadata, history = SimulatedLLM(seed, time_scale), {"completed": 0}, History()
    dance = _reads_then_writes(names, "read", "write", time_scale)
    story: list[str] = []

    def agent(name: str) -> None:
        with dance.step(name, "read"):
            completed = metadata["completed"]
            history.record("read", "completed", agent=name, value=completed)
            story.append(f"{name} reads completed = {completed}")
        llm.call(name)
        with dance.step(name, "write"):
            metadata["completed"] = completed + 1
            history.record(
                "write",
                "completed",
                agent=name,
                value=completed + 1,
                version_read=completed,
                version_written=completed + 1,
            )
            story.append(f"{name} writes completed = {completed + 1} (it read {completed})")

    wall = _run_threads(names, agent)
    lost = len(names) - metadata["completed"]
    story.append(
        f"{len(names)} agents finished but completed = {metadata['completed']}: "
        f"{lost} increment(s) lost, because every write was computed from a stale read."
    )
    return ScenarioResult(
        scenario="forced_counter",
        title="(a) counter",
        agents=names,
        seed=seed,
        time_scale=time_scale,
        wall_seconds=wall,
        expected={"completed": len(names)},
        actual={"completed": metadata["completed"]},
        measure="completed",
        lost_updates=lost,
        lost_agents=_overwritten(history, "completed"),
        consistent=lost == 0,
        initial_state={"metadata": {"completed": 0}},
        final_state={"metadata": metadata},
        story=story,
        history=history,
    )


def forced_history_copy(
    names: list[str], *, seed: int = 0, time_scale: float = 0.01
) -> ScenarioResult:
    """(b) Lost entry: the history is copied, extended and reassigned."""
    llm, session, history = SimulatedLLM(seed, time_scale), new_session(), History()
    dance = _reads_then_writes(names, "read", "write", time_scale)
    story: list[str] = []

    def agent(name: str) -> None:
        with dance.step(name, "read"):
            conversation = list(session[HISTORY])
            history.record("read", HISTORY, agent=name, version_read=len(conversation))
            story.append(f"{name} reads v{len(conversation)}")
        reply = llm.call(name)
        with dance.step(name, "write"):
            conversation.append({"agent": name, "content": reply.text})
            session[HISTORY] = conversation
            history.record(
                "write",
                HISTORY,
                agent=name,
                version_read=len(conversation) - 1,
                version_written=len(conversation),
            )
            story.append(f"{name} writes v{len(conversation)}")

    wall = _run_threads(names, agent)
    kept = {entry["agent"] for entry in session[HISTORY]}
    lost = [n for n in names if n not in kept]
    if lost:
        whose = " and ".join(f"{n}'s" for n in lost)
        story[-1] += f": {whose} entr{'y is' if len(lost) == 1 else 'ies are'} lost"
    return ScenarioResult(
        scenario="forced_history_copy",
        title="(b) history copy",
        agents=names,
        seed=seed,
        time_scale=time_scale,
        wall_seconds=wall,
        expected={"history_entries": len(names)},
        actual={"history_entries": len(session[HISTORY])},
        measure="history_entries",
        lost_updates=len(lost),
        lost_agents=lost,
        consistent=not lost,
        initial_state={HISTORY: []},
        final_state={HISTORY: session[HISTORY]},
        story=story,
        history=history,
    )


def forced_check_then_act(
    names: list[str], *, seed: int = 0, time_scale: float = 0.01
) -> ScenarioResult:
    """(c) Check-then-act: every agent sees the task free, so every agent claims and runs it."""
    llm, history = SimulatedLLM(seed, time_scale), History()
    board: dict[str, str | None] = {"summarize-report": None}
    runs: list[str] = []
    dance = _reads_then_writes(names, "check", "claim", time_scale)
    story: list[str] = []

    def agent(name: str) -> None:
        with dance.step(name, "check"):
            owner = board["summarize-report"]
            history.record("read", "summarize-report", agent=name, value=owner)
            story.append(f"{name} checks summarize-report: owner is {owner}")
        if owner is None:
            with dance.step(name, "claim"):
                board["summarize-report"] = name
                runs.append(name)
                history.record("write", "summarize-report", agent=name, value=name)
                story.append(f"{name} claims summarize-report and starts it")
            llm.call(name)

    wall = _run_threads(names, agent)
    duplicates = len(runs) - 1
    story.append(
        f"The task ran {len(runs)} times ({', '.join(runs)}); the board says "
        f"{board['summarize-report']} owns it, so {duplicates} claim(s) were overwritten."
    )
    return ScenarioResult(
        scenario="forced_check_then_act",
        title="(c) check-then-act",
        agents=names,
        seed=seed,
        time_scale=time_scale,
        wall_seconds=wall,
        expected={"task_runs": 1},
        actual={"task_runs": len(runs)},
        measure="task_runs",
        lost_updates=duplicates,
        lost_agents=[n for n in runs if n != board["summarize-report"]],
        consistent=len(runs) == 1,
        initial_state={"board": {"summarize-report": None}, "runs": []},
        final_state={"board": board, "runs": runs},
        story=story,
        history=history,
        extra={"duplicate_runs": duplicates},
    )


def _intact_turns(messages: list[dict[str, str]]) -> list[str]:
    """Agents whose user message is directly followed by their own assistant reply."""
    return [
        first["agent"]
        for first, second in itertools.pairwise(messages)
        if first["role"] == "user"
        and second["role"] == "assistant"
        and first["agent"] == second["agent"]
    ]


def forced_interleaved_turns(
    names: list[str], *, seed: int = 0, time_scale: float = 0.01
) -> ScenarioResult:
    """(d) Interleaved turns: every append is atomic, and the conversation is still wrong."""
    llm, history = SimulatedLLM(seed, time_scale), History()
    conversation: list[dict[str, str]] = []
    dance = _reads_then_writes(names, "user", "assistant", time_scale)
    story: list[str] = []

    def agent(name: str) -> None:
        with dance.step(name, "user"):
            conversation.append({"agent": name, "role": "user", "content": f"task for {name}"})
            history.record("append", HISTORY, agent=name, value="user")
            story.append(f"{name} appends its user message (position {len(conversation) - 1})")
        reply = llm.call(name)
        with dance.step(name, "assistant"):
            conversation.append({"agent": name, "role": "assistant", "content": reply.text})
            history.record("append", HISTORY, agent=name, value="assistant")
            story.append(f"{name} appends its reply (position {len(conversation) - 1})")

    wall = _run_threads(names, agent)
    intact = _intact_turns(conversation)
    broken = [n for n in names if n not in intact]
    story.append(
        f"All {len(conversation)} messages arrived, yet {len(broken)} of {len(names)} turns "
        "are split: a reply no longer follows the message it answers."
    )
    return ScenarioResult(
        scenario="forced_interleaved_turns",
        title="(d) interleaved turns",
        agents=names,
        seed=seed,
        time_scale=time_scale,
        wall_seconds=wall,
        expected={"messages": 2 * len(names), "intact_turns": len(names)},
        actual={"messages": len(conversation), "intact_turns": len(intact)},
        measure="intact_turns",
        lost_updates=2 * len(names) - len(conversation),
        lost_agents=[],
        consistent=not broken,
        initial_state={HISTORY: []},
        final_state={HISTORY: conversation},
        story=story,
        history=history,
        extra={"interleaved_turns": len(broken)},
    )


def many_thread_appends(threads: int = 8, per_thread: int = 100_000) -> ScenarioResult:
    """``list.append`` from many threads at once, unforced: nothing is lost.

    ``list.append`` is atomic in CPython (the library FAQ lists ``L.append(x)``;
    free-threaded builds keep it atomic with per-object locks), so every item
    arrives. Atomic single operations do not make multi-step updates safe.
    """
    shared: list[int] = []
    start_together = threading.Barrier(threads)
    names = [f"appender-{i}" for i in range(threads)]

    def appender(name: str) -> None:
        start_together.wait()
        append = shared.append
        for item in range(per_thread):
            append(item)

    wall = _run_threads(names, appender)
    expected = threads * per_thread
    lost = expected - len(shared)
    return ScenarioResult(
        scenario="many_thread_appends",
        title=f"list.append, {threads} threads",
        agents=names,
        seed=None,
        time_scale=0.0,
        wall_seconds=wall,
        expected={"items": expected},
        actual={"items": len(shared)},
        measure="items",
        lost_updates=lost,
        lost_agents=[],
        consistent=lost == 0,
        story=[
            f"{threads} threads appended {per_thread:,} items each to one list, all at once: "
            f"{len(shared):,} of {expected:,} arrived. A single list.append is atomic; what "
            "loses data is a read, then a write based on it, with other agents running between."
        ],
    )


def run_race_condition_demo(
    names: list[str],
    *,
    seed: int = 0,
    time_scale: float = 0.01,
    append_threads: int = 8,
    append_items: int = 100_000,
) -> list[ScenarioResult]:
    """All forced interleavings, then the unforced append test."""
    forced = [forced_counter, forced_history_copy, forced_check_then_act, forced_interleaved_turns]
    results = [case(names, seed=seed, time_scale=time_scale) for case in forced]
    results.append(many_thread_appends(append_threads, append_items))
    return results


def combine(scenario: str, results: list[ScenarioResult]) -> dict[str, Any]:
    """Several results as one JSON object with the documented top-level keys."""
    return {
        "scenario": scenario,
        "agents": results[0].agents if results else [],
        "seed": results[0].seed if results else None,
        "time_scale": results[0].time_scale if results else None,
        "wall_seconds": round(sum(r.wall_seconds for r in results), 4),
        "expected": {r.scenario: r.expected for r in results},
        "actual": {r.scenario: r.actual for r in results},
        "lost_updates": sum(r.lost_updates for r in results),
        "consistent": all(r.consistent for r in results),
        "cases": [r.to_json() for r in results],
    }
