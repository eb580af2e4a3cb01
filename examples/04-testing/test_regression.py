"""test_regression.py: a found schedule, kept as a regression test.

find_race.py printed a schedule (`rf1:...`) for the broken agents. Pasted into
`replay=`, it reruns that exact interleaving: the first test shows the bug
happening on it, every time. The second test runs the same schedule against
the fixed agents (`strict=False`: the fix adds a lock, so the workflow offers
different choices; the replay follows the schedule as far as it can) and
the explorer's PCT search on top, so the fix stays checked by every test run.

Run it with pytest from this folder: `python -m pytest test_regression.py`
(conftest.py enables racefree's pytest plugin when racefree is not installed).
A schedule belongs to the racefree version that found it: if a newer racefree
makes different choices, the replay stops with ReplayDivergedError and you
find the schedule again with find_race.py.
"""

import _lesson  # noqa: F401  (puts the clone's src/ on the path)
import pytest

import racefree
from racefree.explore import lessons

# Found by `racefree explore racefree.explore.lessons:unsafe` (seed 0), shrunk.
FOUND = "rf1:0:1*3,2*3,3*3,2*4,3*4"


def test_the_found_schedule_loses_work_in_the_broken_agents():
    result = racefree.explore(
        lessons.unsafe, replay=FOUND, invariants=[lessons.nothing_lost], save_dir=None
    )
    assert not result.ok
    assert "lost:" in result.failure.failure.title


def test_the_fixed_agents_pass_the_found_schedule_and_pct():
    racefree.explore(
        lessons.locked, replay=FOUND, strict=False, invariants=[lessons.nothing_lost], save_dir=None
    ).check()
    racefree.explore(
        lessons.locked,
        strategy="pct",
        schedules=300,
        invariants=[lessons.nothing_lost],
        save_dir=None,
    ).check()


@pytest.mark.racefree(schedules=200, strategy="pct")
def test_with_the_pytest_plugin():
    assert lessons.nothing_lost(lessons.locked())
