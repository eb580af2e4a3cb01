"""FIX: a shared store for agents, sync and asyncio, with reducers and transactions.

Everything public is re-exported from :mod:`racefree`; see ``docs/store.md``.
"""

from __future__ import annotations

from racefree.state._store import (
    REDUCERS,
    AsyncStore,
    AsyncTransaction,
    Reducer,
    Store,
    Transaction,
    Versioned,
    open_async_store,
    open_store,
)

__all__ = [
    "REDUCERS",
    "AsyncStore",
    "AsyncTransaction",
    "Reducer",
    "Store",
    "Transaction",
    "Versioned",
    "open_async_store",
    "open_store",
]
