"""The checker on histories recorded by the store."""

from __future__ import annotations

import threading

from racefree import History, agent, check, open_store

NAMES = ["Researcher", "Analyzer", "Writer"]


def _run(step: object) -> History:
    history = History()
    store = open_store("memory://", history=history)
    store.set("notes", [])
    together = threading.Barrier(len(NAMES))

    def work(name: str) -> None:
        with agent(name):
            step(store, name, together)  # type: ignore[operator]

    threads = [threading.Thread(target=work, args=(n,)) for n in NAMES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return history


def test_get_then_set_across_a_barrier_is_a_lost_update() -> None:
    def step(store, name, together):  # type: ignore[no-untyped-def]
        notes = store.get("notes")
        together.wait()  # everyone has read before anyone writes
        store.set("notes", [*notes, name])

    report = check(_run(step))
    lost = {x.agent for f in report.of_kind("lost-update") for x in f.lost if not x.restored}
    assert len(lost) == 2
    assert {f.kind for f in report.errors} == {"lost-update"}


def test_atomic_store_ops_are_clean() -> None:
    def step(store, name, together):  # type: ignore[no-untyped-def]
        together.wait()
        store.append("notes", name)
        store.update("count", lambda n: (n or 0) + 1)
        store.claim("task", name)

    history = _run(step)
    final = {"notes": [*NAMES], "count": 3}
    report = check(history, final_state=final)
    assert report.findings == (), report.text()
