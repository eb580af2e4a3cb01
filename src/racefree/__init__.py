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
    HistoryFormatError,
    InvalidKeyError,
    NotSerializableError,
    RacefreeError,
    ReplayDivergedError,
    StoreError,
    UnknownBackendError,
    UsageError,
)
from racefree.history import Event, History

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "ConcurrentWriteError",
    "ConflictError",
    "Event",
    "History",
    "HistoryFormatError",
    "InvalidKeyError",
    "NotSerializableError",
    "RacefreeError",
    "ReplayDivergedError",
    "StoreError",
    "UnknownBackendError",
    "UsageError",
    "__version__",
    "agent",
    "current_agent",
]
