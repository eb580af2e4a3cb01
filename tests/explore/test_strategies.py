"""Each strategy finds planted bugs of depth 1, 2 and 3; correct code passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from racefree.explore import explore
from tests.explore import workflows as w

PLANTED: list[tuple[str, Callable[[], Any], Callable[[Any], bool]]] = [
    ("depth 1: slow agent answers first", w.slow_agent_first, w.research_before_summary),
    ("depth 2: two agents claim one task", w.double_claim, w.claimed_once),
    ("depth 2: interleaved turns", w.interleaved_turns, w.turns_intact),
    ("depth 2: lost update among unrelated agents", w.hidden_lost_update, w.counted_twice),
    ("depth 3: plan replaced between two reads", w.plan_replaced, w.plan_consistent),
]


@pytest.mark.parametrize("strategy", ["random", "pct", "exhaustive"])
@pytest.mark.parametrize(("label", "workflow", "invariant"), PLANTED, ids=[p[0] for p in PLANTED])
def test_strategy_finds_planted_bug(
    strategy: str, label: str, workflow: Callable[[], Any], invariant: Callable[[Any], bool]
) -> None:
    result = explore(
        workflow, strategy=strategy, schedules=500, seed=1, invariants=[invariant], save_dir=None
    )
    assert not result.ok, f"{strategy} missed: {label}\n" + "\n".join(result.summary())
    assert result.failure is not None
    assert result.failure.failure.kind == "invariant"


@pytest.mark.parametrize("strategy", ["random", "pct", "exhaustive"])
def test_asyncio_read_modify_write_without_await_is_not_reported(strategy: str) -> None:
    result = explore(
        w.no_await_between,
        strategy=strategy,
        schedules=300,
        invariants=[w.all_completed],
        save_dir=None,
    )
    assert result.ok, result.report()


def test_a_fixed_seed_gives_the_same_runs() -> None:
    def schedules(seed: int) -> list[str]:
        seen: list[str] = []
        for strategy in ("random", "pct"):
            result = explore(
                w.hidden_lost_update,
                strategy=strategy,
                seed=seed,
                schedules=20,
                invariants=[w.counted_twice],
                keep_going=True,
                shrink=False,
                save_dir=None,
            )
            seen += [f.schedule.encode() for f in result.failures]
        return seen

    assert schedules(5) == schedules(5)
    assert schedules(5) != schedules(6)


def test_pct_states_its_guarantee_in_agent_terms() -> None:
    result = explore(w.double_claim, strategy="pct", depth=2, schedules=50, save_dir=None)
    (line,) = result.strategy_summary
    assert "Burckhardt" in line
    assert "depth 2" in line
    assert "1/(n*k^(d-1))" in line
