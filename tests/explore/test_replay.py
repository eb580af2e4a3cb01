"""Schedules round-trip as text; a replay reproduces its failure every time, or says why not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from racefree.errors import ReplayDivergedError, UsageError
from racefree.explore import Schedule, explore, lessons, load_replay
from tests.explore import workflows as w

steps = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 3)).map(lambda t: (t[0], t[1])), max_size=60
)


@given(st.integers(0, 2**32), steps)
def test_schedule_text_round_trips(seed: int, choices: list[tuple[int, int]]) -> None:
    schedule = Schedule(seed, tuple(choices))
    text = schedule.encode()
    assert text.startswith("rf1:")
    assert Schedule.decode(text) == schedule


def test_schedule_text_is_compact() -> None:
    assert Schedule.of(7, [1, 1, 2, (0, 1)]).encode() == "rf1:7:1*2,2,0.1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", r"is not a racefree schedule"),
        ("rf9:1:2", r"format 'rf9', but this racefree reads 'rf1'"),
        ("rf1:x:2", r"seed must be a whole number"),
        ("rf1:1:2,a", r"step 'a' is malformed"),
    ],
)
def test_a_bad_schedule_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Schedule.decode(text)


def _failing_run(tmp_path: Path) -> tuple[str, Path]:
    found = explore(
        w.hidden_lost_update,
        strategy="random",
        seed=3,
        invariants=[w.counted_twice],
        save_dir=tmp_path,
    )
    assert found.failure is not None and found.failure.replay_file is not None
    return found.failure.schedule.encode(), found.failure.replay_file


def test_replay_reproduces_the_failure_100_times_out_of_100(tmp_path: Path) -> None:
    schedule, path = _failing_run(tmp_path)
    for source in (schedule, path):
        for _ in range(50):
            again = explore(
                w.hidden_lost_update, replay=source, invariants=[w.counted_twice], save_dir=None
            )
            assert again.failure is not None
            assert again.failure.schedule.encode() == schedule


def test_the_failure_ends_with_the_command_to_paste(tmp_path: Path) -> None:
    _, path = _failing_run(tmp_path)
    found = explore(
        w.hidden_lost_update,
        strategy="random",
        seed=3,
        invariants=[w.counted_twice],
        save_dir=tmp_path,
    )
    assert found.failure is not None
    assert found.failure.text().splitlines()[-1].strip() == f"racefree replay {path}"
    data = load_replay(path)
    assert data["workflow"] == "tests.explore.workflows:hidden_lost_update"
    assert json.loads(path.read_text())["failure"]["kind"] == "invariant"


def test_shrinking_leaves_the_fewest_deviations(tmp_path: Path) -> None:
    found = explore(
        w.double_claim, strategy="random", seed=11, invariants=[w.claimed_once], save_dir=None
    )
    assert found.failure is not None
    # Two agents claiming one task need exactly one preemption: A checks, B runs.
    assert found.failure.run.deviations == 1


def test_a_replay_that_no_longer_fits_names_the_step_and_the_agents() -> None:
    schedule = Schedule.of(0, [7, 7, 7])
    with pytest.raises(
        ReplayDivergedError,
        match=r"^Expected to run agent 7 at step \d+ \(choice 1 of 3\), but the runnable agents "
        r"were agent-0, agent-1\. The workflow changed",
    ):
        explore(w.double_claim, replay=schedule, save_dir=None)


def test_a_lenient_replay_follows_what_it_can() -> None:
    result = explore(
        lessons.locked,
        replay=Schedule.of(0, [7, 7, 7]),
        strict=False,
        invariants=[lessons.nothing_lost],
        save_dir=None,
    )
    assert result.ok
    assert "no longer allows the recorded choice 1" in result.stopped


def test_the_printed_command_keeps_the_latency_and_the_invariants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the pasted line saves its replay file here
    import racefree
    from racefree.explore import lessons

    found = racefree.explore(
        lessons.unsafe, invariants=[lessons.nothing_lost], latency="virtual", save_dir=None
    )
    assert found.failure is not None
    command = found.failure.command
    assert "latency='virtual'" in command and "invariants=[nothing_lost]" in command
    names = {"racefree": racefree, "unsafe": lessons.unsafe, "nothing_lost": lessons.nothing_lost}
    again = eval(command, names)  # the line a user pastes
    assert not again.ok
