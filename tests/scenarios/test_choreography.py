from __future__ import annotations

import threading

import pytest

from racefree.scenarios.choreography import Choreography


def test_steps_run_in_the_given_order_whatever_order_threads_start_in() -> None:
    order = [("B", "one"), ("A", "one"), ("B", "two"), ("A", "two")]
    dance = Choreography(order)
    seen: list[tuple[str, str]] = []

    def run(name: str) -> None:
        for action in ("one", "two"):
            with dance.step(name, action):
                seen.append((name, action))

    threads = [threading.Thread(target=run, args=(n,)) for n in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == order


def test_a_step_not_in_the_order_is_refused() -> None:
    dance = Choreography([("A", "read")])
    refused = pytest.raises(ValueError, match=r"^step \('A', 'write'\) is not in the choreography$")
    with refused, dance.step("A", "write"):
        pass


def test_a_repeated_step_is_refused() -> None:
    with pytest.raises(ValueError, match="only once"):
        Choreography([("A", "read"), ("A", "read")])


def test_a_step_whose_predecessor_never_comes_times_out_with_a_diagnosis() -> None:
    dance = Choreography([("A", "read"), ("B", "read")], timeout=0.05)
    stuck = pytest.raises(TimeoutError, match=r"stuck at step 0 \('A', 'read'\)")
    with stuck, dance.step("B", "read"):
        pass
