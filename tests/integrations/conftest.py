"""Shared stores for the integration tests: a real SQLite file and the suite's real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.state.redis_server import drop_namespace, fresh_redis_url, shared_redis_url


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL that several store objects (and processes) share."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = fresh_redis_url(shared_redis_url())
        yield url
        drop_namespace(url)
