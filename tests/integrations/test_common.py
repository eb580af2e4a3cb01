"""What every recorder shares: run names and JSON copies."""

from __future__ import annotations

import gc
from typing import Any

import racefree
from racefree.integrations import RunNames, jsonable


class Run:
    """A stand-in for a framework's per-run object (unhashable, as pydantic models are)."""

    __hash__ = None  # type: ignore[assignment]


def test_runs_are_numbered_in_order_of_first_access_and_keep_their_name() -> None:
    names = RunNames()
    first, second = Run(), Run()
    assert [names.name(first), names.name(second), names.name(first)] == [
        "run 1",
        "run 2",
        "run 1",
    ]


def test_an_explicit_agent_name_wins() -> None:
    names = RunNames()
    with racefree.agent("Alice"):
        assert names.name(Run()) == "Alice"


def test_a_new_run_never_inherits_the_name_of_a_collected_one() -> None:
    names = RunNames()
    seen = set()
    for _ in range(5):
        run = Run()
        seen.add(names.name(run))
        del run
        gc.collect()
    assert seen == {"run 1", "run 2", "run 3", "run 4", "run 5"}


def test_jsonable_dumps_pydantic_models_and_names_anything_else() -> None:
    class Model:
        def model_dump(self, **_: Any) -> dict[str, int]:
            return {"x": 1}

    assert jsonable({"m": Model(), "n": [1, 2]}) == {"m": {"x": 1}, "n": [1, 2]}
    assert isinstance(jsonable(object()), str)
