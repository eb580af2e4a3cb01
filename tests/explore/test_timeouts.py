"""Waits with a timeout under ``latency="any"``: a timer or an exporter's interval
that ends inside another agent's model call may time out there, as in real runs;
a safety net longer than every pending wait fires only when nothing else can run.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any

import pytest

import racefree
from racefree.explore import explore
from tests.explore.workflows import run_threads


def heartbeat_inside_a_model_call() -> dict[str, Any]:
    """A threading.Timer counts a heartbeat turn at 0.5 s; the agent read the turns
    before its 1 s model call and writes them back after it: in every real run the
    heartbeat's turn is lost."""
    session = racefree.track({"turns": 0}, name="session")

    def heartbeat() -> None:
        session["turns"] += 1

    timer = threading.Timer(0.5, heartbeat)
    timer.start()

    def agent() -> None:
        turns = session["turns"]
        time.sleep(1.0)  # the model call
        session["turns"] = turns + 1

    run_threads(agent)
    timer.join()
    return dict(session)


def both_turns(state: dict[str, Any]) -> bool:
    return bool(state["turns"] == 2)


@pytest.mark.parametrize("strategy", ["exhaustive", "random", "pct"])
def test_a_timer_that_ends_inside_a_model_call_fires_there(strategy: str) -> None:
    result = explore(
        heartbeat_inside_a_model_call,
        strategy=strategy,
        schedules=200,
        invariants=[both_turns],
        save_dir=None,
    )
    assert result.failure is not None, result.report()
    assert result.failure.run.result["turns"] == 1


class Exporter:
    """The common telemetry exporter: a daemon thread flushes the buffer every interval."""

    def __init__(self, *, swap: bool) -> None:
        self.buffer = racefree.track([], name="buffer")
        self.sent: list[str] = []
        self.swap = swap
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="exporter")
        self._thread.start()

    def record(self, span: str) -> None:
        with self._lock:
            self.buffer.append(span)

    def flush(self) -> None:
        with self._lock:
            batch = list(self.buffer)
            if self.swap:  # the fix: take what is there now, and only that
                del self.buffer[: len(batch)]
        if batch:
            time.sleep(0.05)  # the HTTP post to the collector
            self.sent.extend(batch)
            if not self.swap:
                with self._lock:
                    self.buffer.clear()  # the bug: drops what was recorded meanwhile

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.flush()

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()


def _export_spans(swap: bool) -> list[str]:
    exporter = Exporter(swap=swap)

    def agent(name: str) -> None:
        for i in range(2):
            time.sleep(0.7)  # a model call
            exporter.record(f"{name}-{i}")

    run_threads(lambda: agent("A"), lambda: agent("B"))
    exporter.shutdown()
    return sorted(exporter.sent)


def exporter_that_clears() -> list[str]:
    return _export_spans(swap=False)


def exporter_that_swaps() -> list[str]:
    return _export_spans(swap=True)


def every_span_sent(sent: list[str]) -> bool:
    return sent == ["A-0", "A-1", "B-0", "B-1"]


def test_an_exporters_interval_ends_while_agents_work_and_its_lost_spans_are_found() -> None:
    result = explore(
        exporter_that_clears, strategy="exhaustive", invariants=[every_span_sent], save_dir=None
    )
    assert result.failure is not None, result.report()


def test_the_exporter_that_takes_only_what_it_sends_passes_every_ordering() -> None:
    result = explore(
        exporter_that_swaps,
        strategy="exhaustive",
        schedules=5_000,
        invariants=[every_span_sent],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete, result.coverage()


def worker_with_a_safety_net() -> list[str]:
    """The worker waits up to 30 s for a job (a safety net); the producer's model call
    takes 1 s. No real run times out."""
    jobs: queue.Queue[str] = queue.Queue()
    done = racefree.track([], name="done")

    def producer() -> None:
        time.sleep(1.0)
        jobs.put("summarise")

    def worker() -> None:
        try:
            done.append(jobs.get(timeout=30.0))
        except queue.Empty:
            done.append("gave up")

    run_threads(producer, worker)
    return list(done)


@pytest.mark.parametrize("strategy", ["exhaustive", "random", "pct"])
def test_a_timeout_longer_than_every_pending_wait_does_not_fire_early(strategy: str) -> None:
    result = explore(
        worker_with_a_safety_net,
        strategy=strategy,
        schedules=200,
        invariants=[lambda done: done == ["summarise"]],
        save_dir=None,
    )
    assert result.ok, result.report()


async def reply_or_fallback(fallback: str | None = None) -> dict[str, Any]:
    """A model call under wait_for with a buggy fallback: a slow reply leaves None where
    the rest expects text. The timeout is cancelled once the call ends, so it never runs
    in natural timing and no shared key ties it to the call."""
    s = racefree.track({"reply": "", "log": []}, name="s")

    async def model() -> str:
        await asyncio.sleep(0.5)  # usually fast
        return "the plan"

    async def agent() -> None:
        try:
            s["reply"] = await asyncio.wait_for(model(), timeout=2.0)
        except TimeoutError:
            s["reply"] = fallback  # None: the bug

    async def logger() -> None:
        s["log"] = ["started"]

    await asyncio.gather(agent(), logger())
    return dict(s)


def test_exhaustive_search_lets_an_asyncio_timeout_end_before_its_own_call() -> None:
    result = explore(
        reply_or_fallback,
        strategy="exhaustive",
        invariants=[lambda s: isinstance(s["reply"], str)],
        save_dir=None,
    )
    assert result.failure is not None, result.report()
    assert result.failure.run.result["reply"] is None
    assert "times out (an asyncio timeout ends its wait)" in result.failure.text()


async def reply_or_good_fallback() -> dict[str, Any]:
    return await reply_or_fallback("(no reply)")


def test_exhaustive_search_of_an_asyncio_timeout_with_a_good_fallback_passes_complete() -> None:
    result = explore(
        reply_or_good_fallback,
        strategy="exhaustive",
        invariants=[lambda s: isinstance(s["reply"], str)],
        save_dir=None,
    )
    assert result.ok and result.complete, result.report()
    assert result.distinct == 2, result.report()  # the reply, and the timeout first


def flusher_that_copies_then_clears() -> list[str]:
    """A background flusher wakes every 50 ms (Event.wait), copies the buffer, then clears
    it with no lock: an append between the copy and the clear is lost. The agents work
    30 ms, so in natural timing both append before the first flush."""
    buffer = racefree.track([], name="buffer")
    sent: list[str] = []
    stop = threading.Event()

    def flush() -> None:
        batch = list(buffer)
        buffer.clear()
        sent.extend(batch)

    def loop() -> None:
        while not stop.wait(0.05):
            flush()

    flusher = threading.Thread(target=loop, name="flusher", daemon=True)
    flusher.start()

    def agent(name: str) -> None:
        time.sleep(0.03)
        buffer.append(name)

    run_threads(lambda: agent("a"), lambda: agent("b"))
    stop.set()
    flusher.join()
    flush()
    return sorted(sent)


def test_exhaustive_search_orders_a_clock_move_before_a_timeout_it_enables() -> None:
    # Whether the flusher's wait may time out while an agent still works hangs on the
    # deadlines the agents' sleeps set from the clock, which the order of earlier wakes
    # moved: exhaustive search once took such orders for one and said Complete.
    result = explore(
        flusher_that_copies_then_clears,
        strategy="exhaustive",
        invariants=[lambda sent: sent == ["a", "b"]],
        save_dir=None,
    )
    assert result.failure is not None, result.coverage()
    assert result.failure.failure.kind == "invariant"


def timed_wait_only_when_the_writer_is_late() -> list[str]:
    """The checker waits with a timeout only when it finds the log empty, which natural
    timing never gives: the first run has no wait with a timeout, later ones may."""
    log = racefree.track([], name="log")
    ready = threading.Event()

    def writer() -> None:
        time.sleep(0.01)
        log.append("w")

    def checker() -> None:
        time.sleep(0.02)
        if not log:
            ready.wait(0.05)
        log.append("c")

    run_threads(writer, checker)
    return list(log)


def test_a_search_whose_clock_came_to_matter_after_its_first_run_claims_no_completeness() -> None:
    # The runs before the first wait with a timeout did not order the clock, and their
    # steps shaped what the search pruned after: it cannot know every ordering ran.
    result = explore(
        timed_wait_only_when_the_writer_is_late,
        strategy="exhaustive",
        invariants=[lambda log: len(log) == 2],
        save_dir=None,
    )
    assert result.ok and not result.complete
    assert "but a run after the first waited with a timeout" in "\n".join(result.summary())
