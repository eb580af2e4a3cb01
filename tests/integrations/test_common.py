"""What every recorder shares: run names and JSON copies."""

from __future__ import annotations

import gc
from typing import Any

import racefree
from racefree.integrations import RunNames, jsonable
from racefree.integrations._common import PerObject


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


def test_objects_that_take_no_weak_reference_are_kept_only_the_newest() -> None:
    class Slotted:
        __slots__ = ()

    per = PerObject()
    kept = [Slotted() for _ in range(PerObject.KEPT + 1)]
    for number, obj in enumerate(kept):
        per.get(obj, lambda n=number: n)
    assert per.get(kept[-1], lambda: "new") == PerObject.KEPT
    assert per.get(kept[0], lambda: "new") == "new"  # the oldest was let go


def test_runs_are_named_after_the_framework_label_and_numbered() -> None:
    names = RunNames()
    first, second, third = Run(), Run(), Run()
    assert names.name(first, "Concierge") == "Concierge (run 1)"
    assert names.name(second, "Concierge") == "Concierge (run 2)"
    assert names.name(first, "Sommelier") == "Concierge (run 1)"  # named once, kept
    assert names.name(third, "greeter", numbered=False) == "greeter"
