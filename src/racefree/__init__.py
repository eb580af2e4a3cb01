"""racefree: see, fix and find race conditions in multi-agent systems.

The public API is flat: import everything from ``racefree``; modules whose
names start with an underscore are private.
"""

from __future__ import annotations

from racefree.agent import agent, current_agent
from racefree.errors import (
    BackendUnavailableError,
    ConcurrentWriteError,
    ConflictError,
    ContentionError,
    HistoryFormatError,
    InvalidKeyError,
    NotSerializableError,
    RacefreeError,
    ReplayDivergedError,
    StoreError,
    UnknownBackendError,
    UsageError,
    WrongTypeError,
)
from racefree.history import Event, History
from racefree.state import (
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

__version__ = "0.1.0"

__all__ = [
    "REDUCERS",
    "AsyncStore",
    "AsyncTransaction",
    "BackendUnavailableError",
    "ConcurrentWriteError",
    "ConflictError",
    "ContentionError",
    "Event",
    "History",
    "HistoryFormatError",
    "InvalidKeyError",
    "NotSerializableError",
    "RacefreeError",
    "Reducer",
    "ReplayDivergedError",
    "Store",
    "StoreError",
    "Transaction",
    "UnknownBackendError",
    "UsageError",
    "Versioned",
    "WrongTypeError",
    "__version__",
    "agent",
    "current_agent",
    "open_async_store",
    "open_store",
]
