from __future__ import annotations

from typing import Any

import pytest

from racefree.history import History


class Recorder:
    """Write a history by hand: ``h("Analyzer", "read", "k", version_read=3)``."""

    def __init__(self) -> None:
        self.history = History()

    def __call__(self, agent: str, op: str, key: str | None = None, **fields: Any) -> int:
        return self.history.record(op, key, agent=agent, **fields).seq


@pytest.fixture
def h() -> Recorder:
    return Recorder()
