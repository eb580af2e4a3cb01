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
from urllib.parse import unquote, unquote_plus

from racefree.errors import UnknownBackendError
from racefree.history import History
from racefree.state.backends.base import AsyncBackend, Backend, RetryOperation

__all__ = [
    "BACKENDS",
    "AsyncBackend",
    "Backend",
    "RetryOperation",
    "credentials",
    "open_async_backend",
    "open_backend",
    "redact",
    "scrub",
]

BACKENDS: dict[str, str] = {
    "memory": "racefree.state.backends.memory",
    "redis": "racefree.state.backends.redis",
    "rediss": "racefree.state.backends.redis",
    "sqlite": "racefree.state.backends.sqlite",
}


# A query option whose name suggests a credential (password=, auth_token=, ...).
_SECRET_OPTION = re.compile(
    r"(?i)((?:^|[?&;])[^=&;]*(?:pass|pwd|secret|token|auth|cred|key)[^=&;]*=)[^&;]*"
)


def redact(url: str) -> str:
    """The URL with every credential replaced by ``***``, fit for messages and reprs.

    The whole user info (``user:password@``) becomes ``***@``, and so does the
    value of every query option whose name suggests a credential
    (``password=``, ``token=``...). It assumes the URL is hostile: a password
    holding ``/``, ``?``, ``#`` or ``@`` is masked up to the *last* ``@``, so
    a malformed URL never shows part of its password (it may hide the host
    too). Only ``sqlite:///path`` keeps an ``@`` in its file name.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    local_file = scheme.lower() == "sqlite" and rest.startswith("/")
    if "@" in rest and not local_file:
        rest = "***" + rest[rest.rindex("@") :]
    return scheme + sep + _SECRET_OPTION.sub(r"\1***", rest)


def credentials(url: str) -> list[str]:
    """Every credential text in ``url`` (raw and percent-decoded), longest first.

    A message built from an engine's error text passes through
    :func:`scrub` with these, since the engine may quote what it was given.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        rest = url
    found: set[str] = set()
    if "@" in rest and not (scheme.lower() == "sqlite" and rest.startswith("/")):
        info = rest[: rest.rindex("@")]
        # The whole user info (a password alone, as redis://PASSWORD@host has
        # it) and the password after the first ':'; a user name alone is not
        # scrubbed, or every word containing it would be.
        found.update((info, info.partition(":")[2]))
    for match in _SECRET_OPTION.finditer(rest):
        found.add(rest[match.end(1) : match.end()])
    found |= {unquote(text) for text in found} | {unquote_plus(text) for text in found}
    return sorted((text for text in found if text), key=lambda text: (-len(text), text))


def scrub(text: str, url: str) -> str:
    """``text`` with every credential of ``url`` replaced by ``***``."""
    for secret in credentials(url):
        text = text.replace(secret, "***")
    return text


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
