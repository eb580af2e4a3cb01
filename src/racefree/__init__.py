"""racefree: see, fix and find race conditions in multi-agent systems.

The public API is flat: import everything from ``racefree``; modules whose
names start with an underscore are private.
"""

from __future__ import annotations

from racefree.agent import agent, current_agent
from racefree.check import Explanation, Finding, Lost, Report, check
from racefree.errors import (
    BackendUnavailableError,
    CassetteError,
    CassetteFormatError,
    CassetteMissError,
    ConcurrentWriteError,
    ConflictError,
    ContentionError,
    HistoryEncodeError,
    HistoryFormatError,
    InvalidKeyError,
    NotRecordableError,
    NotSerializableError,
    RaceFoundError,
    RacefreeError,
    ReplayDivergedError,
    StoreError,
    UnknownBackendError,
    UsageError,
    WrongTypeError,
)
from racefree.explore import Exploration, Schedule, Strategy, explore
from racefree.explore.cassette import Cassette
from racefree.explore.stress import StressResult, stress
from racefree.history import Event, History
from racefree.scenarios.llm import SimulatedLLM
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
from racefree.track import history_of, suspension, track

__version__ = "0.1.0"

__all__ = [
    "REDUCERS",
    "AsyncStore",
    "AsyncTransaction",
    "BackendUnavailableError",
    "Cassette",
    "CassetteError",
    "CassetteFormatError",
    "CassetteMissError",
    "ConcurrentWriteError",
    "ConflictError",
    "ContentionError",
    "Event",
    "Explanation",
    "Exploration",
    "Finding",
    "History",
    "HistoryEncodeError",
    "HistoryFormatError",
    "InvalidKeyError",
    "Lost",
    "NotRecordableError",
    "NotSerializableError",
    "RaceFoundError",
    "RacefreeError",
    "Reducer",
    "ReplayDivergedError",
    "Report",
    "Schedule",
    "SimulatedLLM",
    "Store",
    "StoreError",
    "Strategy",
    "StressResult",
    "Transaction",
    "UnknownBackendError",
    "UsageError",
    "Versioned",
    "WrongTypeError",
    "__version__",
    "agent",
    "check",
    "current_agent",
    "explore",
    "history_of",
    "open_async_store",
    "open_store",
    "stress",
    "suspension",
    "track",
]
