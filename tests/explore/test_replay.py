"""Schedules round-trip as text; a replay reproduces its failure every time, or says why not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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


def test_a_replay_file_under_another_latency_says_which_to_pass(tmp_path: Path) -> None:
    invariants = [lessons.nothing_lost]
    found = explore(lessons.unsafe, invariants=invariants, latency="virtual", save_dir=tmp_path)
    assert found.failure is not None and found.failure.replay_file is not None
    path = re.escape(str(found.failure.replay_file))
    with pytest.raises(
        UsageError,
        match=rf"^{path} was recorded with latency='virtual', and this replay runs with "
        rf"latency='any': pass latency='virtual', or run racefree replay {path}\.$",
    ):
        explore(lessons.unsafe, replay=found.failure.replay_file, invariants=invariants)
    again = explore(
        lessons.unsafe,
        replay=found.failure.replay_file,
        invariants=invariants,
        latency="virtual",
        save_dir=None,
    )
    assert again.failure is not None
    assert again.failure.failure.title == found.failure.failure.title


@pytest.mark.parametrize(("recorded", "other"), [("virtual", "any"), ("any", "virtual")])
def test_a_schedule_under_another_latency_says_which_to_pass(recorded: str, other: str) -> None:
    invariants = [lessons.nothing_lost]
    found = explore(lessons.unsafe, invariants=invariants, latency=recorded, save_dir=None)
    assert found.failure is not None
    with pytest.raises(
        ReplayDivergedError,
        match=rf"^This schedule cannot be followed with latency='{other}', but it can with "
        rf"latency='{recorded}': pass latency='{recorded}' to replay it \(a schedule holds "
        r"the choices of the latency it was found with\)\.$",
    ):
        explore(
            lessons.unsafe,
            replay=found.failure.schedule.encode(),
            invariants=invariants,
            latency=other,
            save_dir=None,
        )


def test_the_api_command_carries_every_option_that_changes_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the pasted line saves its replay file here
    import racefree

    options: dict[str, Any] = {"latency": "virtual", "check": False, "max_steps": 5000}
    found = explore(
        w.hidden_lost_update, invariants=[w.counted_twice], seed=3, save_dir=None, **options
    )
    assert found.failure is not None
    schedule = found.failure.schedule.encode()
    assert found.failure.command == (
        f"racefree.explore(hidden_lost_update, replay={schedule!r}, latency='virtual', "
        "invariants=[counted_twice], check=False, max_steps=5000)"
    )
    names = {"racefree": racefree, **vars(w)}
    again = eval(found.failure.command, names)  # the line a user pastes
    assert again.failure is not None
    assert again.failure.failure.title == found.failure.failure.title


class Pipelines:
    """Workflows as methods, named ``module:Class.method`` in a replay file."""

    @staticmethod
    def lossy() -> dict[str, int]:
        return w.hidden_lost_update()

    @classmethod
    def lossy_too(cls) -> dict[str, int]:
        return w.hidden_lost_update()

    def bound(self) -> dict[str, int]:
        return w.hidden_lost_update()


@pytest.mark.parametrize("method", ["lossy", "lossy_too"], ids=["static", "class"])
def test_a_static_or_class_method_replays_by_its_qualname(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    from racefree.cli import main

    workflow = getattr(Pipelines, method)
    found = explore(workflow, invariants=[w.counted_twice], seed=3, save_dir=tmp_path)
    assert found.failure is not None and found.failure.replay_file is not None
    data = load_replay(found.failure.replay_file)
    assert data["workflow"] == f"tests.explore.test_replay:Pipelines.{method}"
    assert data["invariants"] == ["tests.explore.workflows:counted_twice"]
    assert main(["replay", str(found.failure.replay_file)]) == 1
    assert found.failure.failure.title in capsys.readouterr().out


def _make_workflow() -> Any:
    def workflow() -> dict[str, int]:
        return w.hidden_lost_update()

    return workflow


def test_a_nested_function_gets_no_replay_file_and_a_command_that_says_why(
    tmp_path: Path,
) -> None:
    import racefree

    nested = _make_workflow()
    found = explore(nested, invariants=[w.counted_twice], seed=3, save_dir=tmp_path)
    assert found.failure is not None
    assert found.failure.replay_file is None and not list(tmp_path.iterdir())
    schedule = found.failure.schedule.encode()
    assert found.failure.command == (
        f"racefree.explore(workflow, replay={schedule!r}, invariants=[counted_twice])  # the "
        "workflow is defined inside _make_workflow(): racefree replay cannot reload it, so "
        "paste this where it is defined, or define it with def at module level; no replay "
        "file was written."
    )
    names = {"racefree": racefree, "workflow": nested, "counted_twice": w.counted_twice}
    again = eval(found.failure.command, names)  # pasted where the function is defined
    assert again.failure is not None
    assert again.failure.failure.title == found.failure.failure.title


def test_lambdas_and_bound_methods_get_placeholders_and_the_reason(tmp_path: Path) -> None:
    found = explore(
        Pipelines().bound,
        invariants=[w.counted_twice, lambda state: state["counter"] == 2],
        seed=3,
        save_dir=tmp_path,
    )
    assert found.failure is not None
    assert found.failure.replay_file is None and not list(tmp_path.iterdir())
    assert found.failure.command.endswith(
        ", invariants=[counted_twice, invariant_2])  # the workflow is a method bound to one "
        "Pipelines object; invariant_2 is a lambda: racefree replay cannot reload them, so "
        "paste this where they are defined, or define them with def at module level; no "
        "replay file was written."
    )
    assert found.failure.command.startswith("racefree.explore(workflow, replay='rf1:")


def test_a_version_1_replay_file_is_refused_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from racefree.cli import main

    path = tmp_path / "old.json"
    data = {
        "format": "racefree-replay",
        "version": 1,
        "workflow": "racefree.explore.lessons:unsafe",
        "schedule": "rf1:1285674079:1,2,3,2,3",
        "latency": "any",
        "agents": {},
        "failure": {"title": "lost"},
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["replay", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"racefree: error: {path} is a version 1 replay file, which does not record the "
        "invariants it checked, and this racefree reads version 2: re-run the exploration to "
        "record a fresh one.\n"
    )


def test_a_replay_file_without_its_invariants_is_refused_not_passed(tmp_path: Path) -> None:
    _, path = _failing_run(tmp_path)
    with pytest.raises(
        UsageError,
        match=rf"^{re.escape(str(path))} was recorded with invariants=\[counted_twice\], "
        r"max_steps=20000, and this replay runs with invariants=\[\], max_steps=50: pass "
        rf"invariants=\[counted_twice\], max_steps=20000, or run racefree replay "
        rf"{re.escape(str(path))}\.$",
    ):
        explore(w.hidden_lost_update, replay=path, max_steps=50, save_dir=None)
