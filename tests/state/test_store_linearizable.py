"""Linearizability: every concurrent history equals some serial order of its operations.

Threads released together by a barrier run small random mixes of operations
on a few keys; each thread records what every operation returned. The test
then searches the serial orders that keep each thread's own order for one
where a plain model (a dict, one operation at a time) returns exactly the
same results and ends in the same state, versions included.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import racefree
from racefree import StoreError

KEYS = st.sampled_from(["a", "b"])
SMALL = st.integers(min_value=0, max_value=3)

OPERATION = st.one_of(
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("set"), KEYS, SMALL),
    st.tuples(st.just("append"), KEYS, SMALL),
    st.tuples(st.just("extend"), KEYS, SMALL),
    st.tuples(st.just("increment"), KEYS, SMALL),
    st.tuples(st.just("update"), KEYS, SMALL),
    st.tuples(st.just("cas"), KEYS, st.integers(min_value=0, max_value=2), SMALL),
    st.tuples(st.just("claim"), KEYS, st.sampled_from(["p", "q"])),
    st.tuples(st.just("apply"), KEYS, SMALL),  # reducers: a adds, b appends
    st.tuples(st.just("apply_both"), st.just("a"), SMALL),  # both keys in one apply
    st.tuples(st.just("swap"), st.just("a")),  # a transaction: a, b = b, a
)
REDUCERS: dict[str, racefree.Reducer] = {"a": "add", "b": "append"}
PROGRAMS = st.lists(st.lists(OPERATION, min_size=1, max_size=3), min_size=2, max_size=3)


def add_to(value: Any, n: int) -> Any:
    return (value if type(value) is int else 0) + n


def swap(tx: racefree.Transaction) -> None:
    a, b = tx.get("a"), tx.get("b")
    tx.set("a", b)
    tx.set("b", a)


def on_store(store: racefree.Store, op: tuple[Any, ...]) -> Any:
    """Run one operation on the store; an error is returned as its class name."""
    name, key, *args = op
    try:
        if name == "apply":
            return store.apply({key: args[0] if key == "a" else [args[0]]})
        if name == "apply_both":
            return store.apply({"a": args[0], "b": [args[0]]})
        if name == "swap":
            return store.transaction(swap)
        if name == "get":
            return tuple(store.get_versioned(key))
        if name == "set":
            return store.set(key, args[0])
        if name == "append":
            return store.append(key, args[0])
        if name == "extend":
            return store.extend(key, [args[0], args[0]])
        if name == "increment":
            return store.increment(key, args[0])
        if name == "update":
            return store.update(key, lambda v: add_to(v, args[0]))
        if name == "cas":
            return store.compare_and_set(key, args[1], expected_version=args[0])
        return store.claim(key, args[0])
    except StoreError as exc:
        return type(exc).__name__


def on_model(state: dict[str, tuple[Any, int]], op: tuple[Any, ...]) -> Any:
    """Run one operation on the serial model (mutates ``state``)."""
    name, key, *args = op
    value, version = state.get(key, (None, 0))

    def write(new: Any) -> None:
        state[key] = (new, version + 1)

    if name in ("apply", "apply_both", "swap"):
        (a, va), (b, vb) = state.get("a", (None, 0)), state.get("b", (None, 0))
        if name == "swap":
            state["a"], state["b"] = (b, va + 1), (a, vb + 1)
            return None
        new = {}
        if name == "apply_both" or key == "a":
            if a is not None and type(a) is not int:
                return "WrongTypeError"
            new["a"] = ((a or 0) + args[0], va + 1)
        if name == "apply_both" or key == "b":
            if b is not None and type(b) is not list:
                return "WrongTypeError"
            new["b"] = ([*(b or []), args[0]], vb + 1)
        state.update(new)
        return {k: v for k, (_, v) in new.items()}
    if name == "get":
        return (value, version)
    if name == "set":
        write(args[0])
        return version + 1
    if name in ("append", "extend"):
        items = [args[0]] if name == "append" else [args[0], args[0]]
        if value is not None and type(value) is not list:
            return "WrongTypeError"
        write((value or []) + items)
        return len(value or [])
    if name == "increment":
        if value is not None and type(value) is not int:
            return "WrongTypeError"
        write((value or 0) + args[0])
        return (value or 0) + args[0]
    if name == "update":
        write(add_to(value, args[0]))
        return add_to(value, args[0])
    if name == "cas":
        if version != args[0]:
            return "ConflictError"
        write(args[1])
        return version + 1
    if value is None:
        write(args[0])
        return True
    return value == args[0]


def serial_orders(
    programs: list[list[tuple[Any, ...]]],
    results: list[list[Any]],
    final: dict[str, tuple[Any, int]],
) -> Iterator[list[tuple[int, int]]]:
    """Serial orders (lists of (thread, step)) that explain every result and the final state."""

    def search(
        positions: tuple[int, ...], state: dict[str, tuple[Any, int]], order: list[tuple[int, int]]
    ) -> Iterator[list[tuple[int, int]]]:
        if all(p == len(prog) for p, prog in zip(positions, programs, strict=True)):
            if state == final:
                yield order
            return
        for t, prog in enumerate(programs):
            p = positions[t]
            if p == len(prog):
                continue
            branch = copy.deepcopy(state)
            if on_model(branch, prog[p]) != results[t][p]:
                continue
            moved = (*positions[:t], p + 1, *positions[t + 1 :])
            yield from search(moved, branch, [*order, (t, p)])

    yield from search(tuple(0 for _ in programs), {}, [])


def test_concurrent_histories_equal_some_serial_order(
    backend: str, new_url: Callable[[], str]
) -> None:
    # Engines pay a round trip per operation: fewer examples, the same property.
    @settings(
        max_examples=150 if backend == "memory" else 30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(programs=PROGRAMS)
    def check(programs: list[list[tuple[Any, ...]]]) -> None:
        store = racefree.open_store(new_url(), reducers=REDUCERS)
        try:
            run_and_check(store, programs)
        finally:
            store.close()

    check()


def run_and_check(store: racefree.Store, programs: list[list[tuple[Any, ...]]]) -> None:
    start = threading.Barrier(len(programs))
    results: list[list[Any]] = [[] for _ in programs]

    def run(t: int) -> None:
        start.wait()
        for op in programs[t]:
            try:
                results[t].append(on_store(store, op))
            except BaseException as exc:  # surfaces below, not in a thread's stderr
                results[t].append(exc)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows
    try:
        threads = [threading.Thread(target=run, args=(t,)) for t in range(len(programs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old_interval)

    crashed = [r for rs in results for r in rs if isinstance(r, BaseException)]
    assert not crashed, f"an operation raised {crashed[0]!r}"
    final = {key: (v.value, v.version) for key, v in store.snapshot().items()}
    witness = next(serial_orders(programs, results, final), None)
    assert witness is not None, (
        f"No serial order of {programs} explains the results {results} and the final state {final}."
    )


def test_the_checker_rejects_a_history_that_no_serial_order_explains() -> None:
    programs = [[("append", "a", 1)], [("append", "a", 2)]]
    lost_update = [[0], [0]]  # both appends claim index 0: one was lost
    final = {"a": ([2], 1)}
    assert next(serial_orders(programs, lost_update, final), None) is None
    assert next(serial_orders(programs, [[0], [1]], {"a": ([1, 2], 2)})) == [(0, 0), (1, 0)]
