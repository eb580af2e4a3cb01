"""A tracked object's lock under the explorer: free, it costs a C call; taken, a wait.

User code can run inside the lock (a value's ``__deepcopy__`` during
``copy.deepcopy(session)``, a model's property) and reach a scheduling point
there. Another agent that then touches the same tracked state waits for the
lock as a scheduling decision, whether the object was tracked inside the run
or at import, instead of blocking the OS thread that carries it.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from racefree.explore import explore
from racefree.track import track


class SlowToCopy:
    """A value whose deep copy takes time: a scheduling point inside the tracker's lock."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SlowToCopy:
        time.sleep(0.5)
        return SlowToCopy()


def copy_and_write(session: Any) -> list[str]:
    seen: list[str] = []

    def snapshot() -> None:
        seen.append(f"copied {len(copy.deepcopy(session)['notes'])} notes")

    def note() -> None:
        session["notes"].append("from the writer")

    threads = [threading.Thread(target=snapshot), threading.Thread(target=note)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


def explored(workflow: Any, **options: Any) -> Any:
    return explore(
        workflow,
        strategy="exhaustive",
        schedules=200,
        check=False,
        keep_going=True,
        save_dir=None,
        watchdog=5.0,
        **options,
    )


def test_an_agent_waits_for_a_tracked_lock_held_across_a_sleep() -> None:
    outcomes: set[tuple[str, ...]] = set()

    def workflow() -> None:
        session = track({"notes": [], "blob": SlowToCopy()})
        outcomes.add(tuple(copy_and_write(session)))

    result = explored(workflow)
    assert result.ok and result.complete, result.failures
    # The writer went before the copy, or waited for the whole copy: never inside it.
    assert outcomes == {("copied 0 notes",), ("copied 1 notes",)}


AT_IMPORT = track({"notes": [], "blob": SlowToCopy()})


def test_a_tracked_object_made_at_import_is_waited_for_too() -> None:
    outcomes: set[tuple[str, ...]] = set()

    def workflow() -> None:
        AT_IMPORT["notes"].clear()
        outcomes.add(tuple(copy_and_write(AT_IMPORT)))

    result = explored(workflow)
    assert result.ok and result.complete, result.failures
    assert outcomes == {("copied 0 notes",), ("copied 1 notes",)}


def test_a_tracked_lock_an_abandoned_run_kept_is_let_go() -> None:
    session = track({"notes": []})
    never = threading.Lock()
    never.acquire()
    runs = [0]

    class Stuck:
        def __deepcopy__(self, memo: dict[int, Any]) -> Stuck:
            if runs[0] == 1:
                never.acquire()  # blocks in C, inside the tracker's lock: the watchdog's case
            return Stuck()

    session["blob"] = Stuck()

    def workflow() -> None:
        runs[0] += 1
        worker = threading.Thread(target=copy.deepcopy, args=(session,), name="copier")
        worker.start()
        worker.join()
        session["notes"].append(runs[0])

    try:
        result = explore(
            workflow,
            strategy="random",
            schedules=3,
            check=False,
            keep_going=True,
            shrink=False,
            save_dir=None,
            watchdog=0.3,
        )
    finally:
        never.release()
    kinds = [report.failure.kind for report in result.failures]
    assert kinds == ["blocked"], [f.failure.title for f in result.failures]
    assert runs[0] == 3 and session["notes"][-2:] == [2, 3]


def test_an_agent_waits_for_a_free_thread_that_is_inside_the_lock() -> None:
    inside, copies = threading.Event(), []

    class RealSlowToCopy:
        def __deepcopy__(self, memo: dict[int, Any]) -> RealSlowToCopy:
            inside.set()
            time.sleep(0.2)  # a free thread's sleep is real: it holds the lock meanwhile
            return RealSlowToCopy()

    def workflow() -> list[str]:
        inside.clear()
        session = track({"notes": [], "blob": RealSlowToCopy()})
        exporter = threading.Thread(
            target=lambda: copies.append(copy.deepcopy(session)), name="Exporter"
        )
        exporter.start()
        inside.wait()  # the exporter runs free: this is a real wait
        session["notes"].append("after the export")  # waits for the exporter's copy
        exporter.join()
        return list(session["notes"])

    result = explore(
        workflow,
        schedules=2,
        threads=["free:Exporter"],
        check=False,
        save_dir=None,
        watchdog=5.0,
    )
    assert result.ok, result.failures
    assert [c["notes"] for c in copies] == [[], []]  # each copy was whole, made before the write


def test_a_deadlock_through_a_tracked_lock_names_it() -> None:
    class WaitsForTheOther:
        """A value whose deep copy waits for another thread, which needs the same state."""

        def __deepcopy__(self, memo: dict[int, Any]) -> WaitsForTheOther:
            other = threading.Thread(target=lambda: session["notes"].append(1), name="Other")
            other.start()
            other.join()  # inside the tracker's lock, which Other waits for
            return WaitsForTheOther()

    session: Any = None

    def workflow() -> None:
        nonlocal session
        session = track({"notes": [], "blob": WaitsForTheOther()})
        copier = threading.Thread(target=copy.deepcopy, args=(session,), name="Copier")
        copier.start()
        copier.join()

    result = explore(workflow, schedules=1, check=False, save_dir=None, watchdog=5.0)
    failure = result.failures[0].failure
    assert failure.kind == "deadlock"
    assert "Other waits for a tracked object's lock" in failure.title
    assert "(Copier holds it)" in failure.title
