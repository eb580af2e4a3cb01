"""Locks that user code made before the exploration (at import) are the explorer's while
it runs: correct code guarded by them passes instead of stalling until the watchdog."""

from __future__ import annotations

import threading

import pytest

from racefree.explore import _adopt, explore

from . import made_before


@pytest.mark.parametrize("name", list(made_before.FIXED))
def test_code_guarded_by_a_primitive_made_at_import_passes_every_ordering(name: str) -> None:
    result = explore(
        made_before.FIXED[name], strategy="exhaustive", schedules=500, watchdog=2, save_dir=None
    )
    assert result.failure is None, result.summary()
    assert result.complete, result.summary()


def _ids() -> dict[str, int]:
    # ids, not references: a reference held here would be one more place the lock is
    # kept, and a lock kept where the explorer cannot swap it stays real (a test below)
    return {
        "LOCK": id(made_before.LOCK),
        "RLOCK": id(made_before.RLOCK),
        "store": id(made_before.STORE.lock),
        "class": id(made_before.Store.lock_of_the_class),
        "default": id((made_before.default_argument_lock.__defaults__ or ())[0]),
        "condition": id(made_before.CONDITION._lock),  # type: ignore[attr-defined]
        "queue": id(made_before.TOKENS.mutex),
        "queue's condition": id(made_before.TOKENS.not_empty._lock),  # type: ignore[attr-defined]
        "semaphore": id(made_before.SEMAPHORE._cond._lock),  # type: ignore[attr-defined]
        "alias": id(made_before.ALIASED),
        "the alias's other name": id(made_before.ALSO_ALIASED),
    }


def test_the_originals_are_back_after_the_exploration() -> None:
    before = _ids()
    for workflow in made_before.FIXED.values():
        result = explore(workflow, schedules=5, watchdog=2, save_dir=None)
        assert result.failure is None, result.summary()
    assert _ids() == before
    assert type(made_before.LOCK) is type(threading.Lock())
    # and they work as before: the condition's methods are its lock's again
    with made_before.CONDITION:
        assert made_before.CONDITION._is_owned()  # type: ignore[attr-defined]
    assert made_before.TOKENS.get_nowait() == 1
    made_before.TOKENS.put(1)


def test_a_missing_lock_is_still_a_lost_update() -> None:
    result = explore(made_before.no_lock, strategy="exhaustive", schedules=200, save_dir=None)
    assert result.failure is not None
    kinds = [(f.kind, f.signature) for f in result.failure.run.failures]
    assert ("checker", "checker:lost-update") in kinds, kinds


@pytest.mark.parametrize("name", list(made_before.KEPT_REAL))
def test_a_lock_also_referred_to_elsewhere_stays_real(name: str) -> None:
    """A lock also kept where the explorer does not swap (a bound ``acquire`` in a
    variable, an object of the standard library's) would be split in two by a
    stand-in. It stays real, and the run that blocks on it is reported as blocked
    (the watchdog), never as a race."""

    def kept() -> list[int]:  # ids: a reference held here would keep them real too
        return [
            id(made_before.LOCKED_TOO),
            id(made_before.KEPT_ELSEWHERE),
            id(made_before.CONDITION_KEPT._lock),  # type: ignore[attr-defined]
        ]

    before = kept()
    result = explore(
        made_before.KEPT_REAL[name],
        strategy="exhaustive",
        schedules=20,
        watchdog=0.3,
        save_dir=None,
    )
    assert kept() == before
    assert result.failure is not None
    assert {f.failure.kind for f in result.failures} == {"blocked"}


def test_a_lock_held_when_the_exploration_starts_is_left_alone() -> None:
    with made_before.LOCK:
        result = explore(made_before.module_lock, schedules=3, watchdog=0.3, save_dir=None)
        assert made_before.LOCK.locked()
    assert result.failure is not None
    assert {f.failure.kind for f in result.failures} == {"blocked"}
    assert not made_before.LOCK.locked()
    assert type(made_before.LOCK) is type(threading.Lock())


def test_a_condition_someone_waits_on_keeps_its_real_lock() -> None:
    """The waiter will take the real lock back when woken: a stand-in would split it."""
    woken = threading.Event()
    waiting = threading.Event()

    def waiter() -> None:
        with made_before.WAITED_ON:
            waiting.set()  # wait_for releases the lock once it waits, inside this hold
            made_before.WAITED_ON.wait_for(woken.is_set, timeout=30)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    assert waiting.wait(10)
    with made_before.WAITED_ON:  # taken only once the waiter is in wait_for
        assert made_before.WAITED_ON._waiters  # type: ignore[attr-defined]
    lock = id(made_before.WAITED_ON._lock)  # type: ignore[attr-defined]
    swap = _adopt.adopt()
    try:
        assert id(made_before.WAITED_ON._lock) == lock  # type: ignore[attr-defined]
        assert swap.count > 0  # the module's other locks were swapped
    finally:
        swap.restore()
        with made_before.WAITED_ON:
            woken.set()
            made_before.WAITED_ON.notify_all()
        thread.join(10)
    assert not thread.is_alive()
