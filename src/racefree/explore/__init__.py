"""FIND: the explorer. Runs a workflow under chosen schedules, one agent at a time.

See ``docs/explorer.md``. The public names are re-exported from :mod:`racefree`.
"""

from __future__ import annotations

from racefree.explore import hooks as hooks  # load it now: racefree.explore becomes a function
from racefree.explore.runner import (
    Exploration,
    Failure,
    FailureReport,
    Run,
    explore,
    load_replay,
    make_strategy,
    run_seed,
)
from racefree.explore.schedule import Schedule
from racefree.explore.strategies.base import Candidate, Decision, Step, Strategy

__all__ = [
    "Candidate",
    "Decision",
    "Exploration",
    "Failure",
    "FailureReport",
    "Run",
    "Schedule",
    "Step",
    "Strategy",
    "explore",
    "load_replay",
    "make_strategy",
    "run_seed",
]
