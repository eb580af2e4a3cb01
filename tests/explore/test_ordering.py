"""The one definition of a distinct ordering (strategies/base.py ``ordering``), on traces
built by hand: which interleavings it counts as the same and which as different."""

from __future__ import annotations

from racefree.explore.strategies.base import Step, ordering


def step(agent: int, **footprint: bool) -> Step:
    made = Step((agent, 0), f"agent{agent}", "access", None, 0.0, ((agent, 0),))
    made.footprint.update(footprint)
    return made


def test_reads_between_two_writes_commute() -> None:
    first = [step(1, k=True), step(2, k=False), step(3, k=False), step(1, k=True)]
    swapped = [step(1, k=True), step(3, k=False), step(2, k=False), step(1, k=True)]
    assert ordering(first) == ordering(swapped)


def test_a_read_moved_across_a_write_is_another_ordering() -> None:
    before = [step(2, k=False), step(1, k=True)]
    after = [step(1, k=True), step(2, k=False)]
    assert ordering(before) != ordering(after)


def test_the_order_of_two_writes_matters() -> None:
    assert ordering([step(1, k=True), step(2, k=True)]) != ordering(
        [step(2, k=True), step(1, k=True)]
    )


def test_accesses_to_different_keys_commute() -> None:
    one = [step(1, a=True), step(2, b=True)]
    other = [step(2, b=True), step(1, a=True)]
    assert ordering(one) == ordering(other)


def test_an_agents_work_split_into_more_steps_is_the_same_ordering() -> None:
    whole = [step(1, a=False, b=True), step(2, a=True)]
    split = [step(1, a=False), step(1, b=True), step(2, a=True)]
    assert ordering(whole) == ordering(split)


def test_how_often_an_agent_read_counts() -> None:
    once = [step(1, k=True), step(2, k=False), step(1, k=True)]
    twice = [step(1, k=True), step(2, k=False), step(2, k=False), step(1, k=True)]
    assert ordering(once) != ordering(twice)


def test_a_second_read_before_or_after_a_write_is_told_apart() -> None:
    # Agent 2 reads k twice; agent 1 writes k between the reads or after both.
    between = [step(2, k=False), step(1, k=True), step(2, k=False)]
    after = [step(2, k=False), step(2, k=False), step(1, k=True)]
    assert ordering(between) != ordering(after)


def test_a_clock_move_and_a_deadline_set_from_it_do_not_commute_in_either_order() -> None:
    from racefree.explore.strategies.base import CLOCK_MOVED, CLOCK_READ, independent

    woke_and_slept = {CLOCK_MOVED: False, CLOCK_READ: False}
    woke_only = {CLOCK_MOVED: False, "thread#3": True, "lock#1.1": True}  # the larger one
    assert not independent(woke_and_slept, woke_only)
    assert not independent(woke_only, woke_and_slept)
    assert not independent({CLOCK_READ: False}, {CLOCK_MOVED: False})
    assert independent({CLOCK_MOVED: False}, {CLOCK_MOVED: False})  # the later of two moves
    assert independent({CLOCK_READ: False}, {CLOCK_READ: False})
