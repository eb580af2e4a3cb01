"""Store backends, chosen by the URL's scheme.

Each backend is one module with ``open_sync(url, *, history)`` and
``open_async(url, *, history)``; :data:`BACKENDS` maps a scheme to its
module, imported only when a store of that kind is opened. To add a
backend, implement :class:`~racefree.state.backends.base.Backend` and
:class:`~racefree.state.backends.base.AsyncBackend` in a new module and
register its scheme here.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from racefree.errors import UnknownBackendError
from racefree.history import History
from racefree.state.backends.base import AsyncBackend, Backend, RetryOperation

__all__ = [
    "BACKENDS",
    "AsyncBackend",
    "Backend",
    "RetryOperation",
    "open_async_backend",
    "open_backend",
    "redact",
]

BACKENDS: dict[str, str] = {
    "memory": "racefree.state.backends.memory",
    "redis": "racefree.state.backends.redis",
    "rediss": "racefree.state.backends.redis",
    "sqlite": "racefree.state.backends.sqlite",
}


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for messages."""
    return re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", url)


def _module(url: object) -> Any:
    scheme = url.split("://", 1)[0].lower() if isinstance(url, str) and "://" in url else None
    if scheme not in BACKENDS:
        known = ", ".join(f"{name}://" for name in sorted(BACKENDS))
        shown = redact(url) if isinstance(url, str) else repr(url)
        raise UnknownBackendError(
            f"No store backend serves the URL {shown!r}. Known schemes: {known}; "
            "open one of them, for example open_store('memory://')."
        )
    return importlib.import_module(BACKENDS[scheme])


def open_backend(url: str, *, history: History | None = None) -> Backend:
    """Open the sync backend that serves ``url``'s scheme."""
    backend: Backend = _module(url).open_sync(url, history=history)
    return backend


def open_async_backend(url: str, *, history: History | None = None) -> AsyncBackend:
    """Open the asyncio backend that serves ``url``'s scheme."""
    backend: AsyncBackend = _module(url).open_async(url, history=history)
    return backend
