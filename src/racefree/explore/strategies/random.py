"""Random walk: at every decision, any candidate with equal probability.

Cheap and surprisingly good at shallow bugs; each run draws from its own
``random.Random`` seeded with (seed, run), so a fixed seed gives the same runs
and any single run can be regenerated without the ones before it.
"""

from __future__ import annotations

import random

from racefree.explore.strategies.base import Decision, Strategy

__all__ = ["RandomWalk"]


class RandomWalk(Strategy):
    """Uniform choice among the candidates at every decision."""

    name = "random"

    def __init__(self) -> None:
        self._random = random.Random(0).random
        self.seed = 0

    def new_run(self, run: int) -> bool:
        self._random = random.Random(f"racefree-random:{self.seed}:{run}").random
        return True

    def choose(self, decision: Decision) -> int:
        # random() scaled, not randrange(): one C call instead of three Python frames, at
        # every decision; the bias for a handful of candidates is below 2**-50.
        return int(self._random() * len(decision.candidates))
