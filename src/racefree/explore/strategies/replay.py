"""Replay: make exactly the recorded choices, and say so loudly when that is impossible."""

from __future__ import annotations

from collections.abc import Sequence

from racefree.errors import ReplayDivergedError
from racefree.explore.schedule import Choice
from racefree.explore.strategies.base import Decision, Step, Strategy

__all__ = ["Replay"]


def _who(names: dict[int, str], choice: Choice) -> str:
    name = names.get(choice[0], f"agent {choice[0]}")
    return name if choice[1] == 0 else f"{name} (wait {choice[1] + 1})"


class Replay(Strategy):
    """Follows ``steps`` (one choice per decision).

    Strict (the default): a recorded agent that cannot run, a run that needs
    more choices than recorded or one that ends early raises
    ``ReplayDivergedError`` naming the step and the agents. Lenient
    (``strict=False``): follows the recorded choices while they are possible,
    ``None`` means "the natural-timing choice", and any decision past the end
    or after a mismatch takes the natural-timing choice. Shrinking and
    regression tests of a changed workflow use the lenient form.
    """

    name = "replay"

    def __init__(
        self,
        steps: Sequence[Choice | None],
        *,
        strict: bool = True,
        names: dict[int, str] | None = None,
    ) -> None:
        self.steps = list(steps)
        self.strict = strict
        self.names = dict(names or {})
        self._pos = 0
        self._off = False
        self.diverged_at: int | None = None

    def new_run(self, run: int) -> bool:
        self._pos = 0
        self._off = False
        self.diverged_at = None
        return True

    def choose(self, decision: Decision) -> int:
        pos = self._pos
        self._pos += 1
        if self._off or pos >= len(self.steps):
            if self.strict:
                raise ReplayDivergedError(
                    f"The schedule holds {len(self.steps)} choices, but the run needed more "
                    f"(at step {len(decision.trace) + 1}, {self._runnable(decision)} could run). "
                    "The workflow changed since the schedule was recorded; re-run the "
                    "exploration to find a fresh schedule."
                )
            return decision.default
        wanted = self.steps[pos]
        if wanted is None:
            return decision.default
        for index, candidate in enumerate(decision.candidates):
            if candidate.id == wanted:
                return index
        if self.strict:
            raise ReplayDivergedError(
                f"Expected to run {_who(self.names, wanted)} at step {len(decision.trace) + 1} "
                f"(choice {pos + 1} of {len(self.steps)}), but the runnable agents were "
                f"{self._runnable(decision)}. The workflow changed since the schedule was "
                "recorded (or it is not deterministic: it reads the real clock, an unseeded "
                "random, or shared state the explorer cannot see); re-run the exploration."
            )
        self._off = True
        self.diverged_at = pos
        return decision.default

    @staticmethod
    def _runnable(decision: Decision) -> str:
        return ", ".join(sorted(c.name for c in decision.candidates))

    def end_run(self, trace: Sequence[Step], failed: bool) -> None:
        if self.strict and self._pos < len(self.steps):
            raise ReplayDivergedError(
                f"The run ended after {self._pos} choices, but the schedule holds "
                f"{len(self.steps)}. The workflow changed since the schedule was recorded; "
                "re-run the exploration to find a fresh schedule."
            )
