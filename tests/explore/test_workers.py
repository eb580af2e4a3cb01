"""Workers and shards: the runs of one process, split; the same first failure and counts."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from racefree.cli import main
from racefree.errors import UsageError
from racefree.explore import Exploration, explore, lessons
from tests.explore import workflows as w

pytest_plugins = ["pytester"]

# (workflow, invariant, strategy, seed): the first failure of each comes after a few
# passing runs, so a split that reported another share's failure, or counted runs past
# the first failure, would be seen.
FIRST_FAILURE_LATE = {
    "random": (w.plan_replaced, w.plan_consistent, 3),
    "pct": (w.hidden_lost_update, w.counted_twice, 1),
    "exhaustive": (w.hidden_lost_update, w.counted_twice, 0),
    "auto": (w.hidden_lost_update, w.counted_twice, 0),
}


def _workers_alive() -> list[int]:
    """Worker processes this test process started that are still running."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"racefree.explore._workers" in cmdline:
            alive.append(int(entry.name))
    return alive


def _same_outcome(serial: Exploration, split: Exploration) -> None:
    assert split.runs == serial.runs
    assert split.distinct == serial.distinct
    assert split.orderings == serial.orderings or split.workers > 1  # hashes differ by process
    assert split.complete == serial.complete
    assert [f.found_after for f in split.failures] == [f.found_after for f in serial.failures]
    assert [f.schedule for f in split.failures] == [f.schedule for f in serial.failures]
    assert [f.failure.title for f in split.failures] == [f.failure.title for f in serial.failures]
    assert split.summary()[1:] == serial.summary()[1:]  # the first line has the wall time


@pytest.mark.parametrize("strategy", list(FIRST_FAILURE_LATE))
def test_two_workers_report_the_first_failure_one_process_finds_with_its_counts(
    strategy: str, tmp_path: Path
) -> None:
    workflow, invariant, seed = FIRST_FAILURE_LATE[strategy]
    options: dict[str, Any] = {
        "strategy": strategy,
        "seed": seed,
        "schedules": 300,
        "invariants": [invariant],
    }
    serial = explore(workflow, save_dir=None, **options)
    assert serial.failure is not None and serial.failure.found_after > 1
    split = explore(workflow, workers=2, save_dir=tmp_path, **options)
    _same_outcome(serial, split)
    assert split.summary()[0].count("2 worker processes") == 1
    # Its replay file replays it: the same failure, on the first schedule.
    found = split.failure
    assert found is not None and found.replay_file is not None
    assert found.command == f"racefree replay {found.replay_file}"
    again = explore(workflow, replay=found.replay_file, invariants=[invariant], save_dir=None)
    assert again.failure is not None
    assert again.failure.failure.title == found.failure.title
    assert not _workers_alive()


def _whole_search(invariant: Callable[[Any], Any]) -> dict[str, Any]:
    """Options of an exhaustive search that runs to the end and keeps every failure."""
    return {
        "strategy": "exhaustive",
        "schedules": 10_000,
        "keep_going": True,
        "invariants": [invariant],
        "save_dir": None,
    }


def test_with_keep_going_workers_collect_every_failure_of_a_complete_search() -> None:
    options = _whole_search(w.turns_intact)
    serial = explore(w.interleaved_turns, **options)
    split = explore(w.interleaved_turns, workers=2, **options)
    assert serial.complete and len(serial.failures) > 1
    _same_outcome(serial, split)
    assert split.coverage() == serial.coverage()  # "Complete: all 6 distinct orderings ..."


def test_workers_cut_a_search_at_the_budget_where_one_process_stops() -> None:
    options: dict[str, Any] = {
        "strategy": "exhaustive",
        "schedules": 40,
        "invariants": [lessons.nothing_lost],
        "save_dir": None,
    }
    serial = explore(lessons.locked, **options)
    split = explore(lessons.locked, workers=2, target="racefree.explore.lessons:locked", **options)
    assert not serial.complete and serial.runs == 40
    _same_outcome(serial, split)


def _shards(workflow: Callable[[], Any], n: int, **options: Any) -> list[Exploration]:
    return [explore(workflow, shard=(i, n), save_dir=None, **options) for i in range(1, n + 1)]


@pytest.mark.parametrize(
    ("strategy", "workflow", "invariant", "schedules"),
    [
        ("random", w.plan_replaced, w.plan_consistent, 100),
        ("pct", w.plan_replaced, w.plan_consistent, 100),
        ("exhaustive", w.hidden_lost_update, w.counted_twice, 5000),  # the whole tree
    ],
)
def test_shards_together_run_exactly_the_runs_of_one_process(
    strategy: str, workflow: Callable[[], Any], invariant: Callable[[Any], Any], schedules: int
) -> None:
    options: dict[str, Any] = {
        "strategy": strategy,
        "schedules": schedules,
        "keep_going": True,
        "invariants": [invariant],
    }
    serial = explore(workflow, save_dir=None, **options)
    whole = explore(workflow, shard=(1, 1), save_dir=None, **options)
    _same_outcome(serial, whole)
    shards = _shards(workflow, 3, **options)
    fingerprints = [shard.schedule_fingerprints for shard in shards]
    assert set().union(*fingerprints) == whole.schedule_fingerprints
    assert sum(len(f) for f in fingerprints) == len(whole.schedule_fingerprints)  # disjoint
    assert sum(shard.runs for shard in shards) == serial.runs
    assert set().union(*(shard.orderings for shard in shards)) == serial.orderings
    failing = sorted(f.found_after for shard in shards for f in shard.failures)
    if strategy != "exhaustive":  # run numbers are the one-process numbers
        assert failing == [f.found_after for f in serial.failures]
    assert len(failing) == len(serial.failures)


def test_a_shard_split_over_workers_runs_what_the_shard_runs_alone() -> None:
    options = _whole_search(w.counted_twice)
    alone = explore(w.hidden_lost_update, shard=(2, 2), **options)
    split = explore(w.hidden_lost_update, shard=(2, 2), workers=2, **options)
    assert alone.complete and "Shard 2/2 complete" in alone.coverage()
    _same_outcome(alone, split)


def test_auto_shards_split_the_budget_into_disjoint_shares() -> None:
    # The portfolio's rounds differ in size, so a shard counts its share of the budget
    # in its own rounds: disjoint shares that add up to the budget (not the first 120
    # runs one process would run).
    options: dict[str, Any] = {"schedules": 120, "invariants": [lessons.nothing_lost]}
    shards = _shards(lessons.locked, 2, **options)
    assert [shard.runs for shard in shards] == [60, 60]
    first, second = (shard.schedule_fingerprints for shard in shards)
    assert not first & second
    assert all(shard.ok for shard in shards)
    assert "shard 2/2" in shards[1].summary()[0]


def test_a_workflow_no_other_process_can_load_is_a_usage_error_saying_what_to_do() -> None:
    def inner() -> None:
        w.double_claim()

    for workflow, why in [(lambda: w.double_claim(), "is a lambda"), (inner, "inside test_a")]:
        with pytest.raises(UsageError, match=rf"^workers=2 runs .*{why}.*define it with def"):
            explore(workflow, workers=2, schedules=10)
    with pytest.raises(UsageError, match=r"^A shard is I/N"):
        explore(w.double_claim, shard="3/2")
    with pytest.raises(UsageError, match=r"^A replay runs one schedule"):
        explore(w.double_claim, workers=2, replay="rf1:0:")
    assert not _workers_alive()


def test_ctrl_c_stops_every_worker_and_says_how_far_it_got() -> None:
    seen: list[int] = []

    def interrupt(done: int, total: int, failures: int) -> None:
        seen.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match=r"^Interrupted after [\d,]+ complete run"):
        explore(
            lessons.locked,
            workers=2,
            target="racefree.explore.lessons:locked",
            schedules=100_000,
            strategy="random",
            on_run=interrupt,
            save_dir=None,
        )
    assert seen
    assert not _workers_alive()


def test_the_time_limit_stops_the_workers_and_progress_is_reported() -> None:
    calls: list[tuple[int, int, int]] = []
    result = explore(
        lessons.locked,
        workers=2,
        target="racefree.explore.lessons:locked",
        schedules=1_000_000,
        strategy="pct",
        invariants=[lessons.nothing_lost],
        time_limit=1.0,
        on_run=lambda *progress: calls.append(progress),
        save_dir=None,
    )
    assert result.ok and 0 < result.runs < 1_000_000
    assert result.stopped.startswith("Stopped at the time limit (1 s)")
    assert calls and calls[-1][0] == result.runs and calls[-1][1] == 1_000_000
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)


def test_cli_workers_and_shards_exit_codes_and_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["explore", "racefree.explore.lessons:unsafe", "--schedules", "50"]
    assert main([*args, "--workers", "2"]) == 1
    out = capsys.readouterr().out.rstrip().splitlines()
    assert "2 worker processes" in out[0]
    assert out[-1].strip().startswith("racefree replay .racefree/replays/unsafe-")
    assert main(["replay", out[-1].split()[-1]]) == 1
    fixed = ["explore", "racefree.explore.lessons:locked", "--strategy", "random"]
    assert main([*fixed, "--schedules", "40", "--shard", "1/2"]) == 0
    assert "shard 1/2" in capsys.readouterr().out
    assert main([*fixed, "--shard", "0/2"]) == 2
    assert "A shard is I/N with 1 <= I <= N" in capsys.readouterr().err


MARKED = """
import threading, time
import pytest
from racefree.explore import hooks

def lose_an_update():
    state = {"n": 0}
    def agent():
        hooks.point("read", "n")
        seen = state["n"]
        time.sleep(1)
        hooks.point("write", "n")
        state["n"] = seen + 1
    threads = [threading.Thread(target=agent) for _ in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
    return state["n"]

@pytest.mark.racefree(schedules=100, strategy="pct", seed=1, workers=2)
def test_counter():
    assert lose_an_update() == 2

@pytest.mark.racefree(schedules=20, workers=2)
def test_with_a_fixture(tmp_path):
    assert tmp_path
"""


def test_the_pytest_marker_runs_a_test_in_workers(pytester: pytest.Pytester) -> None:
    from tests.explore.test_pytest_plugin import PLUGIN

    pytester.makepyfile(test_agents=MARKED)
    result = pytester.runpytest(*PLUGIN, "-q")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert "2 worker processes" in output
    assert "takes arguments (fixtures or parameters: tmp_path), and workers run" in output
    command = re.search(r"pytest '(test_agents.py::test_counter)' --racefree-replay (\S+)", output)
    assert command is not None, output
    again = pytester.runpytest(
        *PLUGIN, "-q", command.group(1), "--racefree-replay", command.group(2)
    )
    again.assert_outcomes(failed=1)
    assert "failed on schedule 1" in again.stdout.str()


PARAMETRIZED = """
import pytest

@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.racefree(schedules=5)
def test_param(n):
    assert n

class TestAgents:
    @pytest.mark.racefree(schedules=5)
    def test_method(self):
        assert True
"""


def test_workers_from_the_command_line_run_a_test_with_arguments_in_this_process(
    pytester: pytest.Pytester,
) -> None:
    # --racefree-workers is for every marked test; one the workers cannot import by name
    # (a parameter, a method) is explored here rather than failed.
    from tests.explore.test_pytest_plugin import PLUGIN

    pytester.makepyfile(test_param=PARAMETRIZED)
    result = pytester.runpytest(*PLUGIN, "-q", "--racefree-workers", "2")
    result.assert_outcomes(passed=3)
    shard = pytester.runpytest(*PLUGIN, "-q", "--racefree-shard", "1/2")
    shard.assert_outcomes(failed=3)
    output = shard.stdout.str()
    assert "--racefree-shard" in output and "During handling" not in output


def research_first(log: list[str]) -> bool:
    return log == ["research", "summary"]


def test_workers_see_an_ordering_whose_runs_ended_differently_as_one_process_does() -> None:
    from tests.explore.test_strategies_on_real_shapes import invisible_order

    kwargs: dict[str, Any] = {
        "invariants": [research_first],
        "schedules": 40,
        "keep_going": True,
        "save_dir": None,
    }
    alone = explore(invisible_order, **kwargs)
    split = explore(invisible_order, workers=2, **kwargs)
    assert alone.split_orderings == split.split_orderings == 1
    assert not alone.complete and not split.complete
    assert split.coverage() == alone.coverage()


def test_auto_finishes_its_search_after_a_first_run_that_warmed_a_cache() -> None:
    # The search begins again after such a run; under auto it once waited for a round
    # that had gone by, never ran again, and said it stopped at the budget.
    options: dict[str, Any] = {"strategy": "auto", "schedules": 60, "save_dir": None}
    w.CLIENTS.clear()
    serial = explore(w.warms_a_client_first, **options)
    assert serial.complete and serial.distinct == 2, serial.summary()
    assert "Exhaustive search finished" in "\n".join(serial.summary())
    split = explore(w.warms_a_client_first, workers=2, **options)  # fresh processes
    _same_outcome(serial, split)
