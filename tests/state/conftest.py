"""Fixtures for the store tests: the same store API, sync and asyncio.

``any_store`` gives a sync-looking facade over either a ``Store`` or an
``AsyncStore`` (each call runs on a private event loop), so that one test
checks that both stores give the same answers.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import racefree


class AsyncFacade:
    """Calls an AsyncStore's coroutine methods as if they were sync."""

    def __init__(self, store: racefree.AsyncStore) -> None:
        self._store = store
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            # Each call is a new task; keep the agent the caller acts as (by
            # default this thread's name) instead of a fresh task name.
            with racefree.agent(racefree.current_agent()):
                return self._loop.run_until_complete(attr(*args, **kwargs))

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._store.aclose())
        self._loop.close()


StoreFactory = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def open_any(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """A function like open_store() that opens a sync store or an asyncio one."""
    opened: list[Any] = []

    def factory(url: str = "memory://", **kwargs: Any) -> Any:
        if request.param == "sync":
            store: Any = racefree.open_store(url, **kwargs)
        else:
            store = AsyncFacade(racefree.open_async_store(url, **kwargs))
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def any_store(open_any: StoreFactory) -> Any:
    """A fresh memory store, sync or asyncio (see ``open_any``)."""
    return open_any(reducers={"log": "append", "tokens": "add", "notes": "merge"})
