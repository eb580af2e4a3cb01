"""User code whose locks exist before any exploration: made at import, as apps make them.

Each ``*_fixed`` workflow guards its read-modify-write of a tracked counter with
a lock (or a primitive built on one) made when this module was imported; each
agent first sleeps (a scheduling point), then sleeps again while it holds the
lock, so that another agent wants the lock while its holder is parked.
"""

from __future__ import annotations

import queue
import threading
import time
import types
from dataclasses import dataclass
from typing import Any

from racefree import track

LOCK = threading.Lock()
RLOCK = threading.RLock()
CONDITION = threading.Condition()
SEMAPHORE = threading.Semaphore(1)
TOKENS: queue.Queue[int] = queue.Queue()
TOKENS.put(1)

# A lock also kept as a bound method: code that calls ACQUIRE() takes the real lock,
# so a virtual stand-in in LOCKED_TOO's place would no longer exclude it.
LOCKED_TOO = threading.Lock()
ACQUIRE = LOCKED_TOO.acquire

# A lock also kept where the explorer does not look (an object of the standard
# library's, not user code): it stays real for the same reason.
KEPT_ELSEWHERE = threading.Lock()
ELSEWHERE = types.SimpleNamespace(lock=KEPT_ELSEWHERE)

# A Condition whose bound acquire is kept too: CONDITION_ACQUIRE() takes the real lock.
CONDITION_KEPT = threading.Condition()
CONDITION_ACQUIRE = CONDITION_KEPT.acquire

# A Condition a thread outside the exploration waits on: the waiter takes the real
# lock back when woken, so the lock stays real while it waits.
WAITED_ON = threading.Condition()

# One lock under two names (an alias, as `from app import LOCK` makes): one stand-in
# serves both, so the two names still exclude each other.
ALIASED = threading.Lock()
ALSO_ALIASED = ALIASED


class Store:
    """A module-level object that made its lock in __init__, at import."""

    lock_of_the_class = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.Lock()


STORE = Store()


@dataclass
class Guard:
    """The primitive's name and how to hold it around the update."""

    enter: Any
    leave: Any


def _counted(guard: Guard, agents: int = 3) -> dict[str, int]:
    session = track({"n": 0})

    def agent() -> None:
        time.sleep(0.01)
        guard.enter()
        try:
            value = session["n"]
            time.sleep(0.01)  # parked while holding it
            session["n"] = value + 1
        finally:
            guard.leave()

    threads = [threading.Thread(target=agent, name=f"agent-{i}") for i in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert session["n"] == agents, f"{agents - session['n']} update(s) lost"
    return dict(session)


def _lock(lock: Any) -> Guard:
    return Guard(lock.acquire, lock.release)


def module_lock() -> dict[str, int]:
    return _counted(_lock(LOCK))


def module_rlock() -> dict[str, int]:
    return _counted(_lock(RLOCK))


def default_argument_lock(lock: Any = threading.Lock()) -> dict[str, int]:  # noqa: B008
    return _counted(_lock(lock))


def object_lock() -> dict[str, int]:
    return _counted(_lock(STORE.lock))


def class_lock() -> dict[str, int]:
    return _counted(_lock(Store.lock_of_the_class))


def condition() -> dict[str, int]:
    return _counted(_lock(CONDITION))


def semaphore() -> dict[str, int]:
    return _counted(Guard(SEMAPHORE.acquire, SEMAPHORE.release))


def queue_token() -> dict[str, int]:
    return _counted(Guard(TOKENS.get, lambda: TOKENS.put(1)))


def no_lock() -> dict[str, int]:
    return _counted(Guard(lambda: None, lambda: None))


def lock_kept_as_a_bound_method() -> dict[str, int]:
    return _counted(_lock(LOCKED_TOO))


def lock_kept_elsewhere() -> dict[str, int]:
    return _counted(_lock(KEPT_ELSEWHERE))


def condition_kept_as_a_bound_method() -> dict[str, int]:
    return _counted(_lock(CONDITION_KEPT))


def aliased_lock() -> dict[str, int]:
    # the agents take the lock under either name, in turn
    names = iter([ALIASED, ALSO_ALIASED] * 2)
    return _counted(Guard(lambda: next(names).acquire(), ALIASED.release))


FIXED = {
    "module_lock": module_lock,
    "module_rlock": module_rlock,
    "default_argument_lock": default_argument_lock,
    "object_lock": object_lock,
    "class_lock": class_lock,
    "condition": condition,
    "semaphore": semaphore,
    "queue_token": queue_token,
    "aliased_lock": aliased_lock,
}

# Workflows whose lock must stay real: a stand-in would split it in two.
KEPT_REAL = {
    "lock_kept_as_a_bound_method": lock_kept_as_a_bound_method,
    "lock_kept_elsewhere": lock_kept_elsewhere,
    "condition_kept_as_a_bound_method": condition_kept_as_a_bound_method,
}
