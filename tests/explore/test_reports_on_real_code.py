"""Failure reports on real code: the checker's story with an exception, the user's frames."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import racefree
from racefree.explore import explore
from tests.explore.foreign import installed_library


def _load_call_save(session: Any, name: str) -> None:
    turns = list(session["turns"])  # load
    time.sleep(1.0)  # the model call
    session["turns"] = [*turns, name]  # save


def asserting_workflow() -> None:
    session = racefree.track({"turns": []})
    threads = [
        threading.Thread(target=_load_call_save, args=(session, n), name=n)
        for n in ("Alice", "Bob", "Carol")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(session["turns"]) == 3, session["turns"]


def test_a_run_that_raised_still_gets_the_checker_story() -> None:
    result = explore(asserting_workflow, save_dir=None)
    assert result.failure is not None
    kinds = [(f.kind, f.name) for f in result.failure.run.failures]
    assert kinds[0] == ("exception", "AssertionError")
    assert ("checker", "lost-update") in kinds
    assert result.failure.failure.kind == "exception"  # what is shrunk and replayed


def test_three_agents_losing_two_turns_give_one_lost_update_finding() -> None:
    result = explore(asserting_workflow, save_dir=None, shrink=False)
    assert result.failure is not None
    checker = [f for f in result.failure.run.failures if f.kind == "checker"]
    assert len(checker) == 1, [f.title for f in checker]


def test_the_traceback_shows_the_users_frames_not_racefrees() -> None:
    result = explore(asserting_workflow, save_dir=None)
    assert result.failure is not None
    details = "\n".join(result.failure.run.failures[0].details)
    assert "test_reports_on_real_code.py" in details
    assert "in asserting_workflow" in details
    assert "racefree/explore" not in details and "threading.py" not in details


def test_steps_inside_a_library_fold_into_the_agents_step_unless_verbose(
    tmp_path: Path,
) -> None:
    library = installed_library(tmp_path, "fakelib_timeline")

    def workflow() -> None:
        session = racefree.track({"turns": []})

        def agent(name: str) -> None:
            with library.lock():  # the library's own bookkeeping: a real switch point
                pass
            _load_call_save(session, name)

        threads = [threading.Thread(target=agent, args=(n,), name=n) for n in ("Ann", "Bo")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(session["turns"]) == 2

    result = explore(workflow, save_dir=None)
    assert result.failure is not None
    assert "lib-lock#" not in result.failure.text()
    assert "write turns" in result.failure.text()
    assert "takes lib-lock#" in result.failure.text(verbose=True)


async def named_tasks() -> dict[str, Any]:
    session = racefree.track({"n": 0})

    async def agent() -> None:
        seen = session["n"]
        await asyncio.sleep(1.0)  # the model call
        session["n"] = seen + 1

    await asyncio.gather(
        asyncio.create_task(agent(), name="Researcher"),
        asyncio.create_task(agent(), name="Writer"),
    )
    return dict(session)


def test_task_names_given_at_creation_name_the_agents_everywhere() -> None:
    result = explore(named_tasks, save_dir=None)
    assert result.failure is not None
    names = set(result.failure.run.names.values())
    assert {"Researcher", "Writer"} <= names
    assert "main" in names  # the loop's thread is not renamed after a task's event
    timeline = "\n".join(result.failure.timeline())
    assert "Researcher  read n" in timeline and "Writer" in timeline
    checker = [f for f in result.failure.run.failures if f.kind == "checker"]
    assert checker and "Researcher" in checker[0].title and "Writer" in checker[0].title


def test_checker_stories_are_worded_only_for_the_failures_a_report_shows() -> None:
    def workflow() -> list[str]:
        session = racefree.track({"turns": []})
        threads = [
            threading.Thread(target=_load_call_save, args=(session, n), name=n)
            for n in ("Alice", "Bob")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return list(session["turns"])

    result = explore(workflow, schedules=20, keep_going=True, shrink=False, save_dir=None)
    checker = [f for r in result.failures for f in r.run.failures if f.kind == "checker"]
    assert len(checker) >= 2
    assert all(callable(f.lazy_details) for f in checker)  # nothing worded yet
    text = result.failures[0].text()
    shown = [f for f in result.failures[0].run.failures if f.kind == "checker"]
    assert all(isinstance(f.lazy_details, list) for f in shown)
    assert shown[0].details and " ".join(shown[0].details[:2]) in " ".join(text.split())
    rest = [f for r in result.failures[1:] for f in r.run.failures if f.kind == "checker"]
    assert rest and all(callable(f.lazy_details) for f in rest)


def _answer(answers: dict[str, str], name: str) -> None:
    mine = dict(answers)  # load a copy
    time.sleep(1.0)  # the model call
    mine[name] = f"{name}: done"
    answers.clear()
    answers.update(mine)  # save the copy over whatever the other agent wrote


def answers_workflow() -> dict[str, str]:
    answers: dict[str, str] = {}
    threads = [threading.Thread(target=_answer, args=(answers, n)) for n in ("writer", "critic")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def writer_answered(state: dict[str, str]) -> bool:
    return state["writer"].startswith("writer")  # a KeyError when the race dropped it


def test_an_invariant_that_raises_on_a_key_a_race_dropped_fails_that_schedule() -> None:
    result = explore(answers_workflow, invariants=[writer_answered], save_dir=None)
    assert result.failure is not None  # reported, not raised out of explore()
    titles = [f.title for f in result.failure.run.failures if f.kind == "invariant"]
    assert titles == ["Invariant writer_answered raised KeyError: 'writer'"]
    assert "writer_answered raised KeyError" in result.report()
    replayed = explore(
        answers_workflow,
        invariants=[writer_answered],
        replay=result.failure.schedule,
        save_dir=None,
    )
    assert not replayed.ok


def _add_one(state: Any) -> None:
    seen = state["n"]  # load
    time.sleep(0.1)  # the model call
    state["n"] = seen + 1  # save


def same_named_agents() -> None:
    state = racefree.track({"n": 0})
    threads = [threading.Thread(target=_add_one, args=(state,), name="agent") for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_two_threads_with_one_name_are_two_agents_to_the_checker() -> None:
    result = explore(same_named_agents, save_dir=None)
    assert result.failure is not None
    titles = [f.title for f in result.failure.run.failures]
    assert titles == ["Checker: lost update on n (agent, agent #2)"] or titles == [
        "Checker: lost update on n (agent #2, agent)"
    ]
