"""Schedules as plain data: a seed and the agent chosen at each scheduling decision.

A :class:`Schedule` holds what a run needs to be repeated exactly: the run's
``seed`` (for simulated model replies and latencies) and ``steps``, the agent
chosen at every decision where two or more agents could run. Agents are named
by their *ordinal*: 0 is the workflow's own thread, then every thread and
asyncio task gets the next number in the order it was created. Creation order
is part of the run, so the numbering is the same on every replay and on every
Python version; nothing refers to bytecode offsets or line numbers.

An asyncio task can wait on more than one timer at a time; ``(3, 1)`` means
"agent 3's second pending wait completes". Most choices have ``sub == 0``.

The text form is ``rf1:<seed>:<steps>``: ``rf1`` is the format version,
steps are comma separated, ``3.1`` is ``(3, 1)`` and ``2*4`` repeats a
choice four times. It is short, safe in a shell and in a Python string::

    >>> Schedule(7, ((1, 0), (1, 0), (2, 0), (0, 1))).encode()
    'rf1:7:1*2,2,0.1'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from racefree.errors import UsageError

__all__ = ["FORMAT", "Choice", "Schedule"]

FORMAT = "rf1"

Choice = tuple[int, int]
"""One decision: (agent ordinal, which of its pending waits; usually 0)."""

_TOKEN = re.compile(r"^(\d+)(?:\.(\d+))?(?:\*(\d+))?$")


@dataclass(frozen=True)
class Schedule:
    """A run's seed and the agent chosen at each decision, in order."""

    seed: int
    steps: tuple[Choice, ...] = ()

    @classmethod
    def of(cls, seed: int, steps: Iterable[Choice | int]) -> Schedule:
        """Build a schedule; a plain ``int`` step means ``(agent, 0)``."""
        return cls(seed, tuple((s, 0) if isinstance(s, int) else (s[0], s[1]) for s in steps))

    def encode(self) -> str:
        """The compact text form, ``rf1:<seed>:<steps>``."""
        tokens: list[str] = []
        i, steps = 0, self.steps
        while i < len(steps):
            j = i
            while j < len(steps) and steps[j] == steps[i]:
                j += 1
            agent, sub = steps[i]
            token = str(agent) if sub == 0 else f"{agent}.{sub}"
            tokens.append(token if j - i == 1 else f"{token}*{j - i}")
            i = j
        return f"{FORMAT}:{self.seed}:{','.join(tokens)}"

    @classmethod
    def decode(cls, text: str) -> Schedule:
        """Parse :meth:`encode` output; a malformed text raises ``UsageError`` saying why."""
        text = text.strip()
        parts = text.split(":")
        if len(parts) != 3 or not parts[0].startswith("rf"):
            raise UsageError(
                f"{text[:40]!r} is not a racefree schedule: one looks like 'rf1:42:1*2,2,0'. "
                "Copy it whole from the failure report or the replay file."
            )
        if parts[0] != FORMAT:
            raise UsageError(
                f"This schedule is in format {parts[0]!r}, but this racefree reads {FORMAT!r}. "
                "Re-run the exploration with this version to get a fresh schedule."
            )
        if not parts[1].isdigit():
            raise UsageError(f"The schedule's seed must be a whole number, not {parts[1]!r}.")
        steps: list[Choice] = []
        for token in parts[2].split(",") if parts[2] else ():
            match = _TOKEN.match(token)
            if match is None:
                raise UsageError(
                    f"The schedule step {token!r} is malformed: a step is an agent number, "
                    "optionally '.N' for its N-th pending wait and '*K' for K repeats."
                )
            agent, sub, times = match.groups()
            steps.extend([(int(agent), int(sub or 0))] * int(times or 1))
        return cls(int(parts[1]), tuple(steps))

    def __str__(self) -> str:
        return self.encode()
