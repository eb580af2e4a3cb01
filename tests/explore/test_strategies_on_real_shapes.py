"""The default strategy finds both hard shapes; polls never starve; coverage is said exactly."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import racefree
from racefree.cli import main
from racefree.explore import explore, hooks
from tests.explore import shapes
from tests.explore import workflows as w
from tests.explore.test_exhaustive import CASES
from tests.explore.workflows import run_threads

# --- the portfolio default -------------------------------------------------------------------


def test_random_walk_misses_a_depth_one_bug_behind_a_long_sequence() -> None:
    # Why random walk alone is not the default: all 20 races must go one way.
    result = explore(
        shapes.long_sequence_then_look,
        strategy="random",
        schedules=300,
        invariants=[shapes.one_report],
        save_dir=None,
    )
    assert result.ok


def test_exhaustive_search_misses_a_lost_update_among_noise_within_the_budget() -> None:
    # Why exhaustive search alone is not the default: it re-orders the late noise first.
    result = explore(
        shapes.lost_update_among_noise,
        strategy="exhaustive",
        schedules=300,
        invariants=[shapes.both_counted],
        save_dir=None,
    )
    assert result.ok and not result.complete


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("workflow", "invariant"),
    [
        (shapes.long_sequence_then_look, shapes.one_report),
        (shapes.lost_update_among_noise, shapes.both_counted),
    ],
    ids=["depth 1 behind 20 steps", "lost update among noise"],
)
def test_auto_finds_both_shapes_within_the_default_budget(
    seed: int, workflow: Callable[[], Any], invariant: Callable[[Any], bool]
) -> None:
    result = explore(workflow, seed=seed, invariants=[invariant], save_dir=None)
    assert result.strategy == "auto"
    assert result.failure is not None, "\n".join(result.summary())
    assert result.failure.failure.kind == "invariant"
    assert result.failure.failure.name == invariant.__name__
    (found,) = [line for line in result.summary() if line.startswith("The failure was found")]
    assert found.split(" part")[0].split()[-1] in ("exhaustive", "pct", "random")


def test_auto_says_complete_when_its_exhaustive_part_finishes_and_goes_on() -> None:
    bodies, expected = CASES["read-modify-write, two agents"]
    result = explore(lambda: run_threads(*bodies), schedules=60, save_dir=None)
    assert result.complete and result.runs == 60
    assert result.distinct == expected
    assert any(line.startswith(f"Complete: all {expected} distinct") for line in result.summary())


async def invisible_order() -> list[str]:
    """A race on an untracked list: only the order of two waits decides it."""
    log: list[str] = []

    async def researcher() -> None:
        await asyncio.sleep(0.5)
        log.append("research")

    async def summarizer() -> None:
        await asyncio.sleep(3.0)
        log.append("summary")

    await asyncio.gather(researcher(), summarizer())
    return log


def test_auto_still_finds_a_race_on_state_the_explorer_cannot_see() -> None:
    # Exhaustive search counts one ordering here (it sees no shared access); the other
    # parts go on re-ordering the waits and find the race. A failing and a passing run of
    # one ordering show that something unseen decided: no claim of completeness is made.
    result = explore(
        invisible_order,
        invariants=[lambda log: log == ["research", "summary"]],
        keep_going=True,
        save_dir=None,
    )
    assert result.failure is not None and result.failure.failure.kind == "invariant"
    assert result.distinct == 1 and result.split_orderings == 1
    assert not result.complete
    assert "ended differently (one failing, one passing)" in result.coverage()
    assert result.to_json()["split_orderings"] == 1


def test_one_ordering_with_one_outcome_keeps_its_claim_of_completeness() -> None:
    result = explore(polling_waiter, strategy="exhaustive", schedules=1000, save_dir=None)
    assert result.complete and result.split_orderings == 0
    assert result.coverage().startswith("Complete: all")


def test_a_search_with_one_ordering_says_it_was_the_only_one() -> None:
    def one_agent() -> list[str]:
        log = racefree.track([])
        run_threads(lambda: log.append("done"))
        return log

    result = explore(one_agent, strategy="exhaustive", save_dir=None)
    assert result.complete and result.distinct == 1
    assert result.coverage().startswith("Complete: the only distinct ordering explored, ")


# --- polls and loops under every strategy ----------------------------------------------------


def polling_waiter() -> dict[str, Any]:
    """A worker answers after a slow call; the waiter polls for it, then files a summary."""
    state = racefree.track({"results": [], "summary": None})

    def worker() -> None:
        time.sleep(1.0)
        state["results"].append("answer")

    def waiter() -> None:
        while not state["results"]:
            time.sleep(0.05)
        state["summary"] = f"{len(state['results'])} result"

    run_threads(worker, waiter)
    return dict(state)


def summarised(state: dict[str, Any]) -> bool:
    return bool(state["summary"] == "1 result")


@pytest.mark.parametrize("strategy", ["auto", "random", "pct", "exhaustive"])
def test_a_polling_agent_never_starves_the_one_it_waits_for(strategy: str) -> None:
    result = explore(
        polling_waiter, strategy=strategy, schedules=200, invariants=[summarised], save_dir=None
    )
    assert result.ok, result.report()


def test_exhaustive_search_of_a_polling_agent_is_complete() -> None:
    result = explore(polling_waiter, strategy="exhaustive", schedules=1000, save_dir=None)
    assert result.ok and result.complete
    assert result.polls_folded > 0
    assert "A poll that changed nothing" in result.coverage()


def tool_calls_then_publish() -> dict[str, Any]:
    """A researcher makes three quick tool calls (nothing shared written) and publishes;
    the editor's slow model call returns later and it reads what was published. Real
    runs always see the findings: the researcher is done at 0.3 s, the editor reads at 1 s."""
    board = racefree.track({"findings": None, "editor_saw": None})

    def researcher() -> None:
        for _ in range(3):
            time.sleep(0.1)
        board["findings"] = "3 sources"

    def editor() -> None:
        time.sleep(1.0)
        board["editor_saw"] = board["findings"]

    run_threads(researcher, editor)
    return dict(board)


def editor_saw_nothing(state: dict[str, Any]) -> bool:
    return state["editor_saw"] is None  # broken exactly in the order real runs take


@pytest.mark.parametrize("strategy", ["auto", "random", "pct", "exhaustive"])
def test_work_in_a_row_ahead_of_a_slower_agent_is_explored_in_its_natural_order(
    strategy: str,
) -> None:
    # Each tool-call step writes nothing shared, as a poll's does, but it looks at nothing
    # shared either (a poll checks something): it is not held back, so the natural order,
    # where it finishes ahead of the slower agent, is reachable.
    result = explore(
        tool_calls_then_publish,
        strategy=strategy,
        schedules=200,
        invariants=[editor_saw_nothing],
        save_dir=None,
    )
    assert result.failure is not None, result.report()
    assert result.failure.run.result["editor_saw"] == "3 sources"


def test_exhaustive_search_runs_both_orders_of_work_in_a_row_and_a_slower_read() -> None:
    seen = set()

    def record(state: dict[str, Any]) -> bool:
        seen.add(state["editor_saw"])
        return True

    result = explore(
        tool_calls_then_publish, strategy="exhaustive", invariants=[record], save_dir=None
    )
    assert result.ok and result.complete
    assert seen == {None, "3 sources"}


def tool_calls_inside_a_read_write_window() -> dict[str, Any]:
    """A researcher makes three tool calls (nothing shared touched) and counts one in; the
    editor reads the count, thinks, writes it back plus one. When the tools are quick the
    researcher's count lands inside the editor's window and is lost: a real race, though
    not in natural timing (the tools take 0.3 s, the editor's window ends at 0.05 s)."""
    state = racefree.track({"count": 0})

    def researcher() -> None:
        time.sleep(0.1)  # search
        time.sleep(0.1)  # fetch
        time.sleep(0.1)  # summarise
        state["count"] += 1

    def editor() -> None:
        time.sleep(0.001)
        seen = state["count"]
        time.sleep(0.05)
        state["count"] = seen + 1

    run_threads(researcher, editor)
    return dict(state)


def both_counted(state: dict[str, Any]) -> bool:
    return bool(state["count"] == 2)


def test_tool_calls_in_a_row_are_not_held_back_as_a_poll() -> None:
    # Each tool call's step writes nothing shared, as a poll's does; but it sleeps at a new
    # place each time, so it is work moving on, and the order in which all three end inside
    # the editor's window is explored.
    result = explore(
        tool_calls_inside_a_read_write_window,
        strategy="exhaustive",
        invariants=[both_counted],
        save_dir=None,
    )
    assert result.failure is not None, result.report()
    assert result.failure.run.result["count"] == 1


async def _call_tool(name: str) -> str:
    await asyncio.sleep(0.1)
    return name


async def async_tool_calls_inside_a_read_write_window() -> dict[str, Any]:
    """The same race in asyncio tasks, the tool calls made through one helper."""
    state = racefree.track({"count": 0})

    async def researcher() -> None:
        await _call_tool("search")
        await _call_tool("fetch")
        await _call_tool("summarise")
        state["count"] += 1

    async def editor() -> None:
        await asyncio.sleep(0.001)
        seen = state["count"]
        await asyncio.sleep(0.05)
        state["count"] = seen + 1

    await asyncio.gather(researcher(), editor())
    return dict(state)


def test_awaited_tool_calls_in_a_row_through_one_helper_are_not_held_back_as_a_poll() -> None:
    result = explore(
        async_tool_calls_inside_a_read_write_window,
        strategy="exhaustive",
        invariants=[both_counted],
        save_dir=None,
    )
    assert result.failure is not None, result.report()
    assert result.failure.run.result["count"] == 1


def warm_up_then_take_the_slot() -> list[str]:
    """Each agent makes four warm-up tool calls in a loop (nothing shared touched), then
    waits for a free slot and takes it: check-then-act, so both can take it when the
    Writer's tools are quicker than in natural timing."""
    active = racefree.track({"slot": None}, name="active")
    log: list[str] = []

    def agent(name: str, tool_latency: float) -> None:
        for _ in range(4):
            time.sleep(tool_latency)
        while active["slot"]:
            time.sleep(0.05)
        time.sleep(0.01)  # open a connection
        active["slot"] = name
        time.sleep(0.2)  # the job
        if active["slot"] != name:
            log.append("overlap")
        active["slot"] = None

    run_threads(lambda: agent("Planner", 0.1), lambda: agent("Writer", 0.15))
    return log


def test_a_loop_of_tool_calls_that_looks_at_nothing_shared_is_never_held_back() -> None:
    # Each warm-up step sleeps where the last one did, as a poll's does, but it checks
    # nothing shared: it races with no one, so it is not held back, and the order where
    # the Writer's warm-up ends first is explored.
    result = explore(
        warm_up_then_take_the_slot,
        strategy="exhaustive",
        invariants=[lambda log: "overlap" not in log],
        save_dir=None,
    )
    assert result.failure is not None, result.report()


def _nap() -> None:
    time.sleep(0.05)


def poll_at_two_places_through_a_helper() -> dict[str, Any]:
    """A poll whose round sleeps twice, through a helper: it comes back to places it slept
    at, so it is a loop going round, and held back like any pure poll."""
    state = racefree.track({"results": [], "summary": None})

    def worker() -> None:
        time.sleep(1.0)
        state["results"].append("answer")

    def waiter() -> None:
        while not state["results"]:
            _nap()
            _nap()
        state["summary"] = f"{len(state['results'])} result"

    run_threads(worker, waiter)
    return dict(state)


def test_a_poll_that_sleeps_at_two_places_through_a_helper_is_still_held_back() -> None:
    result = explore(
        poll_at_two_places_through_a_helper,
        strategy="exhaustive",
        schedules=1000,
        invariants=[summarised],
        save_dir=None,
    )
    assert result.ok and result.complete, result.report()
    assert result.polls_folded > 0


def impatient_waiter() -> dict[str, Any]:
    """The waiter gives up after 1 s and summarises what it has; the worker usually
    answers in 0.3 s, but a slow model call leaves the summary empty."""
    state = racefree.track({"results": [], "summary": None})

    def worker() -> None:
        time.sleep(0.3)
        state["results"].append("answer")

    def waiter() -> None:
        deadline = time.monotonic() + 1.0
        while not state["results"] and time.monotonic() < deadline:
            time.sleep(0.05)
        state["summary"] = f"{len(state['results'])} result"

    run_threads(worker, waiter)
    return dict(state)


@pytest.mark.parametrize("strategy", ["auto", "exhaustive"])
def test_a_poll_with_a_deadline_is_explored_until_it_gives_up(strategy: str) -> None:
    # It reads the clock, so it is no pure poll: the explorer may run it again and again
    # ahead of a slow worker, until its deadline passes. (Random walk alone rarely gets
    # there: 20 polls in a row, about 2**-20 per run, the long-sequence shape.)
    result = explore(
        impatient_waiter,
        strategy=strategy,
        schedules=500,
        invariants=[summarised],
        save_dir=None,
    )
    assert result.failure is not None, result.report()
    assert result.failure.failure.kind == "invariant"
    assert result.failure.run.result["summary"] == "0 result"


def logging_waiter() -> dict[str, Any]:
    """A pure poll that logs each time round: the log record's timestamp is the standard
    library's clock read, not a deadline of the agent's."""
    state = racefree.track({"results": []})
    log = logging.getLogger("tests.logging_waiter")
    log.setLevel(logging.INFO)  # so that every call makes a record (and reads the clock)
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())

    def worker() -> None:
        time.sleep(1.0)
        state["results"].append("answer")

    def waiter() -> None:
        while not state["results"]:
            log.info("still waiting")
            time.sleep(0.05)

    run_threads(worker, waiter)
    return dict(state)


def test_a_poll_that_logs_is_still_a_pure_poll() -> None:
    result = explore(logging_waiter, strategy="exhaustive", schedules=1000, save_dir=None)
    assert result.ok and result.complete, result.report()
    assert result.polls_folded > 0


def heartbeat() -> dict[str, Any]:
    """A reporter beats (a write) every second until the worker says it is done."""
    state = racefree.track({"done": False, "beats": 0})

    def reporter() -> None:
        while not state["done"]:
            state["beats"] += 1
            time.sleep(1.0)

    def worker() -> None:
        time.sleep(5.0)
        state["done"] = True

    run_threads(reporter, worker)
    return dict(state)


def test_pct_lets_a_heartbeat_loop_yield_instead_of_reporting_a_livelock() -> None:
    result = explore(heartbeat, strategy="pct", schedules=200, check=False, save_dir=None)
    assert result.ok, result.report()


def real_livelock() -> None:
    """Two agents each wait for the other to go first: no schedule ends."""
    flags = racefree.track({"a": False, "b": False})

    def agent(mine: str, theirs: str) -> None:
        while not flags[theirs]:
            time.sleep(0.05)
        flags[mine] = True

    run_threads(lambda: agent("a", "b"), lambda: agent("b", "a"))


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_a_real_livelock_is_still_a_step_limit_failure(strategy: str) -> None:
    result = explore(real_livelock, strategy=strategy, schedules=3, max_steps=2_000, save_dir=None)
    assert result.failure is not None
    assert result.failure.failure.kind == "step-limit"


def test_time_limit_bounds_shrinking_too() -> None:
    runs: list[int] = []

    def workflow() -> dict[str, Any]:
        runs.append(1)
        return shapes.lost_update_among_noise()

    def first_run_fails(seed: int) -> bool:
        probe = explore(
            shapes.lost_update_among_noise,
            strategy="random",
            seed=seed,
            schedules=1,
            invariants=[shapes.both_counted],
            shrink=False,
            save_dir=None,
        )
        return probe.failure is not None

    seed = next(s for s in range(100) if first_run_fails(s))
    result = explore(
        workflow,
        strategy="random",
        seed=seed,
        invariants=[shapes.both_counted],
        time_limit=0.0,
        save_dir=None,
    )
    assert result.failure is not None
    assert result.failure.run.deviations == result.failure.original_deviations > 0
    assert len(runs) == result.runs == 1  # no shrinking run past the limit


# --- one definition of "distinct ordering" ----------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_every_strategy_counts_orderings_as_exhaustive_search_does(
    name: str, strategy: str
) -> None:
    bodies, expected = CASES[name]
    result = explore(
        lambda: run_threads(*bodies), strategy=strategy, schedules=400, seed=1, save_dir=None
    )
    assert not result.complete
    assert result.distinct == expected  # 400 random runs hit every class, and no more


def test_exhaustive_counts_each_run_it_counts_as_distinct_once() -> None:
    from racefree.explore.strategies.exhaustive import Exhaustive

    for bodies, expected in CASES.values():
        strategy = Exhaustive()
        result = explore(
            lambda b=bodies: run_threads(*b), strategy=strategy, schedules=10_000, save_dir=None
        )
        assert strategy.distinct == result.distinct == expected


# --- nothing to check --------------------------------------------------------------------------


def copy_sleep_write_back() -> dict[str, Any]:
    """Three agents copy a plain dict, call a model, write the copy back: a real race,
    but on state nobody tracks, with nothing asserted."""
    session: dict[str, Any] = {"history": []}

    def agent(name: str) -> None:
        mine = dict(session, history=list(session["history"]))
        time.sleep(0.5)
        mine["history"].append(name)
        session.update(mine)

    threads = [threading.Thread(target=agent, args=(n,)) for n in "ABC"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return session


def test_a_finished_search_that_saw_no_shared_state_claims_no_completeness() -> None:
    # Every ordering looked alike to it: "Complete" over no visible step proved nothing
    # while PCT found the race on the untracked dict.
    result = explore(
        copy_sleep_write_back,
        strategy="exhaustive",
        invariants=[lambda session: len(session["history"]) <= 3],
        save_dir=None,
    )
    assert result.ok and result.saw_no_state and not result.complete
    assert result.coverage().startswith(
        "Not exhaustive: the search ran the 1 distinct ordering it could tell apart, "
    )
    assert "but it saw no shared state and no lock, so the orders of" in result.coverage()
    assert result.to_json()["saw_no_state"] is True
    tracked = explore(w.slow_agent_first, strategy="exhaustive", save_dir=None)
    assert tracked.complete and not tracked.saw_no_state


def test_an_exploration_with_nothing_to_check_says_so() -> None:
    result = explore(copy_sleep_write_back, strategy="exhaustive", save_dir=None)
    assert result.ok and not result.checked
    assert result.nothing_checked.startswith("Nothing was checked: no invariant was given")
    assert result.nothing_checked in result.summary()
    data = result.to_json()
    assert data["checked"] is False and data["nothing_checked"] == result.nothing_checked
    assert "shared state: none the explorer could see" in result.coverage()


def test_an_invariant_or_a_recorded_access_or_an_assert_counts_as_a_check() -> None:
    def with_assert() -> None:
        state = copy_sleep_write_back()
        assert len(state["history"]) == 3

    def three_entries(state: dict[str, Any]) -> bool:
        return len(state["history"]) == 3

    with_invariant = explore(copy_sleep_write_back, invariants=[three_entries], save_dir=None)
    assert with_invariant.checked and not with_invariant.ok  # and it finds the race
    assert explore(polling_waiter, schedules=5, save_dir=None).checked  # tracked accesses
    assert not explore(with_assert, schedules=5, save_dir=None).ok  # the assert fails


def test_the_cli_exits_2_when_nothing_was_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = "tests.explore.test_strategies_on_real_shapes:copy_sleep_write_back"
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2]))
    assert main(["explore", spec, "--schedules", "20"]) == 2
    captured = capsys.readouterr()
    assert "nothing in it could fail" in captured.err
    assert "--allow-unchecked" in captured.err
    assert main(["explore", spec, "--schedules", "20", "--allow-unchecked", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checked"] is False


def test_hooks_alone_are_visible_state_but_not_a_check() -> None:
    def announced() -> None:
        run_threads(lambda: hooks.point("write", "k"), lambda: hooks.point("write", "k"))

    result = explore(announced, strategy="exhaustive", save_dir=None)
    assert result.keys == ["k"] and result.complete and not result.checked


class PollingExporter:
    """An exporter whose thread polls: sleep, then flush, which copies and clears the
    buffer under its lock, also when there is nothing to send (an empty clear)."""

    def __init__(self) -> None:
        self.buffer = racefree.track([], name="buffer")
        self.sent = racefree.track([], name="sent")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flusher", daemon=True)
        self._thread.start()

    def record(self, item: str) -> None:
        with self._lock:
            self.buffer.append(item)

    def flush(self) -> None:
        with self._lock:
            batch = list(self.buffer)
            self.buffer.clear()
        if batch:
            self.sent.extend(batch)

    def _loop(self) -> None:
        while not self._stop.is_set():
            time.sleep(0.05)
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()


def export_with_a_polling_flusher() -> list[str]:
    exporter = PollingExporter()

    def agent(name: str) -> None:
        for i in range(2):
            time.sleep(0.03)
            exporter.record(f"{name}{i}")

    run_threads(lambda: agent("a"), lambda: agent("b"))
    exporter.close()
    return sorted(exporter.sent)


def test_a_poll_whose_clear_leaves_an_empty_buffer_empty_is_folded_as_a_poll() -> None:
    # The clear is a write, so the poll was taken for work: the flusher polled hundreds
    # of times inside one agent's sleep and exhaustive search had not finished in a minute.
    result = explore(
        export_with_a_polling_flusher,
        strategy="exhaustive",
        schedules=5_000,
        invariants=[lambda sent: sent == ["a0", "a1", "b0", "b1"]],
        save_dir=None,
    )
    assert result.ok, result.report()
    assert result.complete and result.polls_folded > 0, result.coverage()


def test_a_step_that_changed_a_key_then_wrote_it_again_unchanged_changed_something() -> None:
    from racefree.explore.strategies.exhaustive import Exhaustive
    from racefree.explore.strategies.fair import _changes_something

    async def one_step_of_writes() -> None:
        d = racefree.track({"status": "idle", "buffer": ["x"]}, name="d")

        async def worker() -> None:  # no switch point among these: one step
            d["status"] = "busy"  # a change ...
            d["status"] = "busy"  # ... then the same value again
            d["buffer"].clear()  # a change ...
            del d["buffer"][:0]  # ... then an empty delete
            await asyncio.sleep(0.01)

        await asyncio.gather(worker(), asyncio.sleep(0.02))

    steps: list[Any] = []

    class Watching(Exhaustive):
        def end_run(self, trace: Any, failed: bool) -> None:
            steps.extend(s for s in trace if "d.status" in s.footprint)
            super().end_run(trace, failed)

    explore(one_step_of_writes, strategy=Watching(), schedules=1, save_dir=None)
    [step] = steps
    assert not step.kept and _changes_something(step)


async def untracked_reply_with_a_timeout() -> dict[str, str]:
    """A call under wait_for with a fallback, and a logger; the state is a plain dict."""
    state = {"reply": "", "log": ""}

    async def model() -> str:
        await asyncio.sleep(0.5)
        return "the plan"

    async def agent() -> None:
        try:
            state["reply"] = await asyncio.wait_for(model(), timeout=2.0)
        except TimeoutError:
            state["reply"] = "(no reply)"

    async def logger() -> None:
        await asyncio.sleep(0.1)
        state["log"] = "started"

    await asyncio.gather(agent(), logger())
    return state


def test_orders_told_apart_only_by_timers_are_no_claim_of_completeness() -> None:
    # The search tells the timeout's order from the call's (more than one ordering), but
    # it saw none of the agents' accesses: that is no proof about them.
    result = explore(
        untracked_reply_with_a_timeout,
        strategy="exhaustive",
        invariants=[lambda s: bool(s["reply"])],
        save_dir=None,
    )
    assert result.ok and result.distinct > 1
    assert result.saw_no_state and not result.complete
