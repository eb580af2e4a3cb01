"""Force real threads to take their steps in one chosen order, every run.

A race needs a bad interleaving; under natural timing it may come once in a
thousand runs. A :class:`Choreography` makes it come every time: each thread
wraps its steps in ``with dance.step(agent, action):`` and a step runs only
when every step before it in ``order`` has finished. The threads are real and
the shared state is really corrupted; only the order is chosen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = ["Choreography"]


class Choreography:
    """Lets the steps ``order`` = [(agent, action), ...] run one at a time, in that order."""

    def __init__(self, order: Sequence[tuple[str, str]], *, timeout: float = 30.0) -> None:
        if len(set(order)) != len(order):
            raise ValueError("each (agent, action) step may appear only once in the order")
        self._order = list(order)
        self._next = 0
        self._timeout = timeout
        self._turn = threading.Condition()

    @contextmanager
    def step(self, agent: str, action: str) -> Iterator[None]:
        """Wait for this step's turn, run the ``with`` body, then hand over to the next step."""
        wanted = (agent, action)
        if wanted not in self._order:
            raise ValueError(f"step {wanted} is not in the choreography")
        position = self._order.index(wanted)
        with self._turn:
            if not self._turn.wait_for(lambda: self._next == position, timeout=self._timeout):
                expected = self._order[self._next] if self._next < len(self._order) else None
                raise TimeoutError(
                    f"{agent} waited {self._timeout} s to {action}; the choreography is stuck "
                    f"at step {self._next} {expected}, whose thread never arrived."
                )
        try:
            yield
        finally:
            with self._turn:
                self._next += 1
                self._turn.notify_all()
