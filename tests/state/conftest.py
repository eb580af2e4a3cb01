"""Fixtures for the store tests: one conformance suite, every backend, sync and asyncio.

Every store test runs against each backend of ``BACKEND_NAMES``: ``memory``,
``sqlite`` (a real file in ``tmp_path``) and ``redis`` (a real server, see
``redis_server.py``). Select one with ``-k``, such as
``pytest tests/state -k sqlite``.

Your own backend runs the same suite: set ``RACEFREE_TEST_STORE`` to a URL of
it in which ``{id}`` is replaced by a fresh name for each store (for example
``mydb://localhost/test_{id}``), and, if its scheme is not registered yet,
``RACEFREE_TEST_BACKEND`` to the module that implements it (registered under
the URL's scheme); the tests then run on it too, as the ``custom`` backend.

``any_store`` gives a sync-looking facade over either a ``Store`` or an
``AsyncStore`` (each call runs on a private event loop), so that one test
checks that both stores give the same answers.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import racefree
from racefree.state import _store as store_module
from racefree.state.backends import BACKENDS
from tests.state.redis_server import (
    TEST_PASSWORD,
    RedisServer,
    drop_namespace,
    find_server_binary,
    fresh_redis_url,
    shared_redis_url,
)

CUSTOM_STORE = os.environ.get("RACEFREE_TEST_STORE")
BACKEND_NAMES = ["memory", "sqlite", "redis", *(["custom"] if CUSTOM_STORE else [])]

if CUSTOM_STORE and os.environ.get("RACEFREE_TEST_BACKEND"):
    BACKENDS.setdefault(
        CUSTOM_STORE.split("://", 1)[0].lower(), os.environ["RACEFREE_TEST_BACKEND"]
    )


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


@pytest.fixture(autouse=True)
def close_sync_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close the sync stores a test opened and left open (their files and sockets)."""
    opened: list[Any] = []
    real = store_module.open_backend

    def tracked(url: str, **kwargs: Any) -> Any:
        backend = real(url, **kwargs)
        opened.append(backend)
        return backend

    monkeypatch.setattr(store_module, "open_backend", tracked)
    yield
    for backend in opened:
        backend.close()


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    """The Redis server of this test run (REDIS_URL, or one started for the run)."""
    yield shared_redis_url()


@pytest.fixture(params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    name: str = request.param
    return name


@pytest.fixture
def new_url(
    backend: str, tmp_path: Any, request: pytest.FixtureRequest
) -> Iterator[Callable[[], str]]:
    """A function that returns the URL of a fresh, empty store of the backend under test."""
    made: list[str] = []

    def make() -> str:
        if backend == "memory":
            url = "memory://"  # every open of memory:// is a fresh store
        elif backend == "sqlite":
            url = f"sqlite:///{tmp_path / f'store-{len(made)}.db'}"
        elif backend == "redis":
            url = fresh_redis_url(request.getfixturevalue("redis_base_url"))
        else:
            assert CUSTOM_STORE is not None
            url = CUSTOM_STORE.replace("{id}", uuid.uuid4().hex[:16])
        made.append(url)
        return url

    yield make
    if backend == "redis":
        for url in made:
            drop_namespace(url)


@pytest.fixture
def store_url(new_url: Callable[[], str]) -> str:
    """The URL of a fresh store of the backend under test (memory: each open is fresh)."""
    return new_url()


@pytest.fixture(params=["sync", "async"])
def open_any(request: pytest.FixtureRequest, new_url: Callable[[], str]) -> Iterator[StoreFactory]:
    """A function like open_store() that opens a sync store or an asyncio one.

    Without a URL it opens a fresh store of the backend under test.
    """
    opened: list[Any] = []

    def factory(url: str | None = None, **kwargs: Any) -> Any:
        url = url or new_url()
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
    """A fresh store of the backend under test, sync or asyncio (see ``open_any``)."""
    return open_any(reducers={"log": "append", "tokens": "add", "notes": "merge"})


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A Redis server of this test's own, with the password ``TEST_PASSWORD``, to stop at will."""
    binary = find_server_binary()
    if binary is None:
        pytest.skip("no redis-server binary to start and stop (REDIS_URL alone is not enough)")
    server = RedisServer(binary, password=TEST_PASSWORD)
    yield server
    server.stop()
