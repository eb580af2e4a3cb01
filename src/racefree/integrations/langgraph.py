"""LangGraph: a recorder for any checkpointer and a store-backed checkpointer.

``pip install racefree[langgraph]``. Both are ``BaseCheckpointSaver``
subclasses: pass them to ``graph.compile(checkpointer=...)``.

- :class:`RecordedCheckpointer` wraps your checkpointer (``InMemorySaver``,
  ``SqliteSaver``...) and records, on the key ``thread <thread_id>`` (with
  ``/<checkpoint_ns>`` for a subgraph), by run (one ``invoke``, named by its
  ``run_name`` when the config has one, else ``run 1``, ``run 2``...; a
  ``racefree.agent`` name wins):

  - ``get_tuple``: a ``read`` of the thread at the checkpoint returned (the
    version is the checkpoint's number on the thread, 1 for the first saved);
  - ``put``: a ``write`` of the thread: the new checkpoint replaces the
    thread's latest state, computed from the run's copy (``version_read``
    is the parent checkpoint's number);
  - ``put_writes``: an ``extend`` of ``thread <id> writes`` with the
    channels written (the API promises they are kept together) and the
    node that wrote them (meta ``node``; a save lists the nodes of the step
    it closes in meta ``nodes``, and its ``step``).

  Two runs on one ``thread_id`` both load checkpoint 3 and each saves a
  child of it; the thread's latest state is the one saved last, and the
  other run's turn is gone from it. The checker tells it as a ``lost-update``
  in LangGraph's words: "run 2 loaded thread t1 at checkpoint 3. run 1 saved
  thread t1 as checkpoint 4. run 2 then saved thread t1 as checkpoint 5 from
  its copy of checkpoint 3. run 1's turn is gone."

- :class:`StoreCheckpointer` keeps checkpoints in a racefree store and
  **admits one run per thread_id at a time**: a run's first load of its
  thread takes the thread's lease (a record in the store); another run
  loading the thread waits until that run ends (its run loop closes: it
  finished, failed, was interrupted or cancelled), then loads its last
  checkpoint. A run of another process holds the lease until it ends or
  ``lease_seconds`` after its last save (a crashed process). So two runs on
  one thread keep both turns exactly once at every durability, LangGraph's
  default (a save per step) too, with no retry. Underneath it **refuses a
  stale parent**: a checkpoint is saved only if its parent is still the
  thread's latest checkpoint, decided in one atomic transaction (across
  processes with ``sqlite:///``, across hosts with ``redis://``); otherwise
  ``ConflictError`` names the run that saved in between, and nothing is
  written: no turn is ever lost. With ``one_run_per_thread=False`` only the
  refusal is left; then a run refused after saving its input (per-step
  saves) repeats its question when invoked again, and ``durability="exit"``
  avoids it. Pending writes (``put_writes``) are merged in one atomic step,
  so parallel branches never drop each other's writes. Branching from an
  older checkpoint (time travel with ``checkpoint_id``) is refused as stale
  too: copy the thread first. ``DeltaChannel`` histories (beta in
  LangGraph) are not supported.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)

from racefree import hooks
from racefree.errors import ConflictError, StoreError, UsageError
from racefree.history import History
from racefree.integrations._common import PerObject, RunNames
from racefree.state import Store, Transaction, open_store

__all__ = ["RecordedCheckpointer", "StoreCheckpointer"]

# Methods of newer LangGraph versions that a recorder forwards unrecorded.
_FORWARDED = (
    "delete_for_runs",
    "adelete_for_runs",
    "copy_thread",
    "acopy_thread",
    "prune",
    "aprune",
    "get_delta_channel_history",
    "aget_delta_channel_history",
)


def _thread(config: RunnableConfig) -> tuple[str, str]:
    configurable = config.get("configurable") or {}
    if "thread_id" not in configurable:
        raise UsageError(
            "A checkpointer needs a thread_id: invoke the graph with "
            "config={'configurable': {'thread_id': '...'}}."
        )
    return str(configurable["thread_id"]), str(configurable.get("checkpoint_ns", ""))


def _key(thread_id: str, ns: str) -> str:
    return f"thread {thread_id}" if not ns else f"thread {thread_id}/{ns}"


def _run_of(config: RunnableConfig) -> Any:
    """The object LangGraph passes along one invocation (its runtime), or None."""
    return (config.get("configurable") or {}).get("__pregel_runtime")


def _node_of(task_path: str) -> str | None:
    """The node a task runs, from its path (``~__pregel_pull, chatbot``); None for a Send."""
    parts = [part.strip() for part in task_path.lstrip("~").split(",")]
    return parts[1] if len(parts) > 1 and parts[0] == "__pregel_pull" else None


# The checker tells a recorded history in LangGraph's words (docs/checker.md, "Story words").
_FIX = (
    "Use racefree.integrations.langgraph.StoreCheckpointer, which admits one run per "
    "thread_id at a time, or give concurrent conversations their own thread_id."
)
_LOADED = {"words": {"verb": "loaded", "version": "checkpoint"}}
_SAVED = {"verb": "saved", "version": "checkpoint", "change": "turn", "fix": _FIX}


class RecordedCheckpointer(BaseCheckpointSaver[Any]):
    """Any LangGraph checkpointer, with loads and saves recorded (see the module docstring).

    ``history`` receives the events (a new one by default: :attr:`history`).
    Each access is announced to the explorer before the wrapped call and
    recorded when it returns.
    """

    def __init__(self, saver: BaseCheckpointSaver[Any], *, history: History | None = None) -> None:
        if not isinstance(saver, BaseCheckpointSaver):
            raise UsageError(
                f"RecordedCheckpointer wraps a LangGraph checkpointer, not a "
                f"{type(saver).__name__}. Pass one such as InMemorySaver()."
            )
        super().__init__(serde=saver.serde)
        self.saver = saver
        self.history = history if history is not None else History()
        self._runs = RunNames()
        self._numbers: dict[tuple[str, str], dict[str, int]] = {}  # thread -> checkpoint id -> n
        self._nodes: dict[str, list[str]] = {}  # run -> nodes whose writes its next save holds
        for name in _FORWARDED:
            if hasattr(saver, name):
                setattr(self, name, getattr(saver, name))

    @property
    def config_specs(self) -> list[Any]:
        return list(self.saver.config_specs)

    def _number(self, thread: tuple[str, str], checkpoint_id: str | None) -> int | None:
        if checkpoint_id is None:
            return None
        numbers = self._numbers.setdefault(thread, {})
        if checkpoint_id not in numbers:  # saved before the recorder saw it
            numbers[checkpoint_id] = len(numbers) + 1
        return numbers[checkpoint_id]

    def _before(self, kind: str, config: RunnableConfig) -> tuple[str, tuple[str, str], str]:
        thread = _thread(config)
        key = _key(*thread)
        hooks.point(kind, key)
        # An invocation's run_name (config={"run_name": ...}) is LangGraph's name for it.
        label = config.get("run_name")
        who = self._runs.name(
            _run_of(config), label if isinstance(label, str) else None, numbered=False
        )
        return who, thread, key

    def _loaded(self, who: str, thread: tuple[str, str], found: CheckpointTuple | None) -> None:
        version = self._number(thread, found.checkpoint["id"]) if found else 0
        self.history.record(
            "read", _key(*thread), agent=who, version_read=version, meta=dict(_LOADED)
        )

    def _saved(
        self,
        who: str,
        thread: tuple[str, str],
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
    ) -> None:
        parent = self._number(thread, get_checkpoint_id(config))
        written = self._number(thread, checkpoint["id"])
        meta: dict[str, Any] = {"words": dict(_SAVED), "step": metadata.get("step")}
        nodes = self._nodes.pop(who, [])
        if nodes:  # the nodes of the step this checkpoint closes
            meta["nodes"] = nodes
        self.history.record(
            "write",
            _key(*thread),
            agent=who,
            version_read=parent if parent is not None else 0,
            version_written=written,
            meta=meta,
        )

    def _wrote(
        self, who: str, thread: tuple[str, str], writes: Sequence[tuple[str, Any]], task_path: str
    ) -> None:
        channels = [channel for channel, _ in writes]
        node = _node_of(task_path)
        verb = "saved pending writes to" if node is None else f"saved node {node}'s writes to"
        meta: dict[str, Any] = {"words": {"verb": verb}}
        if node is not None:
            meta["node"] = node
            self._nodes.setdefault(who, []).append(node)
        self.history.record(
            "extend", f"{_key(*thread)} writes", agent=who, value=channels, meta=meta
        )

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The wrapped ``get_tuple``, recorded as a read of the thread."""
        who, thread, _ = self._before("read", config)
        found = self.saver.get_tuple(config)
        self._loaded(who, thread, found)
        return found

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The wrapped ``aget_tuple``, recorded as a read of the thread."""
        who, thread, _ = self._before("read", config)
        found = await self.saver.aget_tuple(config)
        self._loaded(who, thread, found)
        return found

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """The wrapped ``put``, recorded as a write of the thread from the parent checkpoint."""
        who, thread, _ = self._before("write", config)
        saved = self.saver.put(config, checkpoint, metadata, new_versions)
        self._saved(who, thread, config, checkpoint, metadata)
        return saved

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """The wrapped ``aput``, recorded as a write of the thread from the parent checkpoint."""
        who, thread, _ = self._before("write", config)
        saved = await self.saver.aput(config, checkpoint, metadata, new_versions)
        self._saved(who, thread, config, checkpoint, metadata)
        return saved

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """The wrapped ``put_writes``, recorded as one extend of the thread's pending writes."""
        who, thread, _ = self._before("extend", config)
        self.saver.put_writes(config, writes, task_id, task_path)
        self._wrote(who, thread, writes, task_path)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """The wrapped ``aput_writes``, recorded as one extend of the thread's pending writes."""
        who, thread, _ = self._before("extend", config)
        await self.saver.aput_writes(config, writes, task_id, task_path)
        self._wrote(who, thread, writes, task_path)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """The wrapped ``list`` (not recorded: history browsing, not a run's state)."""
        return self.saver.list(config, filter=filter, before=before, limit=limit)

    def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """The wrapped ``alist`` (not recorded)."""
        return self.saver.alist(config, filter=filter, before=before, limit=limit)

    def delete_thread(self, thread_id: str) -> None:
        """The wrapped ``delete_thread``, recorded as a delete of the thread."""
        hooks.point("delete", _key(thread_id, ""))
        self.saver.delete_thread(thread_id)
        self.history.record("delete", _key(thread_id, ""), agent=self._runs.name())

    async def adelete_thread(self, thread_id: str) -> None:
        """The wrapped ``adelete_thread``, recorded as a delete of the thread."""
        hooks.point("delete", _key(thread_id, ""))
        await self.saver.adelete_thread(thread_id)
        self.history.record("delete", _key(thread_id, ""), agent=self._runs.name())

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.saver.get_next_version(current, channel)

    def __repr__(self) -> str:
        return f"RecordedCheckpointer({self.saver!r})"


# --- the fix --------------------------------------------------------------------------------


class _Stale(Exception):
    """Raised inside a transaction to leave it without writing (never escapes this module)."""

    def __init__(self, base: int, head: dict[str, Any]) -> None:
        super().__init__()
        self.base = base
        self.head = head


# One run per thread: a lease in the store names the run that holds the thread. A run is
# named per process, so that another process never mistakes it for its own; a run of this
# process holds its lease until it ends (LangGraph's run loop closes), one of another
# process until it ends or its lease expires (a crashed process).
_PROCESS = uuid.uuid4().hex[:12]
_RUNNING: set[str] = set()  # runs of this process that hold or may hold a lease
_LOCK = threading.Lock()
_FIRST_WAIT, _LONGEST_WAIT = 0.01, 0.5  # seconds between looks at another process's lease

# Waiters for a lease held in this process wait to be woken (no polling, so the explorer
# sees them blocked and every wait ends); another process's lease is looked at again.
_generation = 0
_async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
_sync_waiters: list[threading.Event] = []


def _local(holder: str) -> bool:
    return holder.startswith(f"{_PROCESS}:")


def _notify() -> None:
    """A lease of this process was released: wake the waiters, who look again."""
    global _generation
    with _LOCK:
        _generation += 1
        loops, events = list(_async_waiters), list(_sync_waiters)
        _async_waiters.clear()
        _sync_waiters.clear()
    for loop, future in loops:
        if not loop.is_closed():
            loop.call_soon_threadsafe(_wake, future)
    for event in events:
        event.set()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _at_run_end(end: Callable[[], None]) -> bool:
    """Call ``end`` when the LangGraph run loading its checkpoint now ends; False if unseen.

    A checkpointer is told of no run's end. The run loop that is loading
    (``SyncPregelLoop`` / ``AsyncPregelLoop``, entering) closes an exit stack
    when the run ends, whether it finished, failed, was interrupted or
    cancelled; ``end`` joins that stack (the caller's frames are looked at:
    a few, no further). Without it, an asyncio task's end stands in.
    """
    frame = inspect.currentframe()
    try:
        for _ in range(8):
            if frame is None:
                break
            loop = frame.f_locals.get("self")
            stack: Any = getattr(loop, "stack", None)
            if type(loop).__name__ in ("SyncPregelLoop", "AsyncPregelLoop") and hasattr(
                stack, "callback"
            ):
                stack.callback(end)
                return True
            frame = frame.f_back
    finally:
        del frame  # a frame held in a local would keep every caller's locals alive
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if task is not None:
        task.add_done_callback(lambda _: end())
        return True
    return False


class StoreCheckpointer(BaseCheckpointSaver[int]):
    """A LangGraph checkpointer on a racefree store: one run per thread_id, no stale parent.

    ``StoreCheckpointer("sqlite:///checkpoints.db")``, or pass an open
    :class:`~racefree.Store` (give ``history=`` to :func:`racefree.open_store`
    to record its operations). ``one_run_per_thread=False`` turns the lease
    off (only a stale parent is refused); ``lease_seconds`` is how long after
    its last save another process's run keeps a thread when its end is not
    seen (it crashed). Values are kept as the graph's serializer makes them
    (base64 in the store's JSON). The guarantee is in the module docstring.
    """

    def __init__(
        self,
        store: Store | str = "memory://",
        *,
        history: History | None = None,
        one_run_per_thread: bool = True,
        lease_seconds: float = 60.0,
    ) -> None:
        super().__init__()
        if not lease_seconds > 0:
            raise UsageError(
                f"lease_seconds must be a positive number of seconds, not {lease_seconds!r}."
            )
        self.one_run_per_thread = one_run_per_thread
        self.lease_seconds = float(lease_seconds)
        self._holders = PerObject()  # a run (its LangGraph runtime) -> its name in leases
        self._owns_store = isinstance(store, str)
        if isinstance(store, str):
            store = open_store(store, history=history)
        elif history is not None:
            raise UsageError(
                "Pass history= to open_store() when you open the store yourself; "
                "StoreCheckpointer records through the store."
            )
        self.store = store
        self._runs = RunNames()

    # --- layout: one head, one record per checkpoint, one dict of pending writes each ---

    @staticmethod
    def _prefix(thread_id: str, ns: str) -> str:
        return f"langgraph {thread_id}/{ns}"

    def _dump(self, value: Any) -> list[str]:
        kind, data = self.serde.dumps_typed(value)
        return [kind, base64.b64encode(data).decode("ascii")]

    def _load(self, dumped: list[str]) -> Any:
        return self.serde.loads_typed((dumped[0], base64.b64decode(dumped[1])))

    # --- one run per thread: a lease in the store -----------------------------------------

    def _admission(self, config: RunnableConfig) -> tuple[str, str, str] | None:
        """(lease key, this run's holder name, run name) when a run loads; else None.

        A run is admitted when it loads its thread (top-level namespace: a
        subgraph runs inside its parent's admission). Reads outside a run
        (``get_state``) are not.
        """
        run = _run_of(config)
        thread_id, ns = _thread(config)
        if not self.one_run_per_thread or run is None or ns:
            return None
        holder: str = self._holders.get(run, lambda: f"{_PROCESS}:{uuid.uuid4().hex[:12]}")
        return f"{self._prefix(thread_id, '')} lease", holder, self._runs.name(run)

    def _try_lease(self, key: str, holder: str, who: str) -> dict[str, Any] | None:
        """Take (or keep) the lease unless another run that has not ended holds it.

        Returns None when this run has it, else the lease that keeps it out.
        """

        def take(tx: Transaction) -> tuple[dict[str, Any] | None, bool]:
            lease = tx.get(key)
            now = time.time()
            if lease is not None and lease["holder"] != holder:
                if _local(lease["holder"]) and not lease.get("expires"):
                    held = lease["holder"] in _RUNNING  # known: the run has not ended
                else:
                    held = lease["until"] > now
                if held:
                    return dict(lease), False
            tx.set(key, {"holder": holder, "by": who, "until": now + self.lease_seconds})
            return None, lease is None or lease["holder"] != holder

        with _LOCK:
            _RUNNING.add(holder)
        refused, new = self.store.transaction(take)
        if refused is not None:
            return refused
        if new and not _at_run_end(lambda: self._release(key, holder)):
            # No end of this run will be seen (a load from outside LangGraph's run loop):
            # the lease only expires, lease_seconds after the run's last save.
            with _LOCK:
                _RUNNING.discard(holder)
            self.store.update(key, lambda lease: {**lease, "expires": True} if lease else lease)
        return None

    def _release(self, key: str, holder: str) -> None:
        """The run ended: free its lease and wake the runs waiting for the thread."""

        def free(tx: Transaction) -> None:
            lease = tx.get(key)
            if lease is not None and lease["holder"] == holder:
                tx.set(key, None)

        with _LOCK:
            _RUNNING.discard(holder)
        # Called as the run loop closes, maybe after close(): then the lease expires
        # (and this process's waiters see that its run has ended).
        with contextlib.suppress(StoreError):
            self.store.transaction(free)
        _notify()

    def _looks(self, admission: tuple[str, str, str]) -> Iterator[tuple[str, int | float]]:
        """Look at the lease until this run has it; between looks, say how to wait.

        Yields ``("sleep", seconds)`` for a lease of another process (looked
        at again and again) or ``("wake", generation)`` for one of this
        process (wait to be woken, unless a release came since ``generation``).
        The sync and asyncio admissions drive it, each waiting its own way.
        """
        wait = _FIRST_WAIT
        while True:
            generation = _generation
            lease = self._try_lease(*admission)
            if lease is None:
                return
            if not _local(lease["holder"]) or lease.get("expires"):
                yield "sleep", wait
                wait = min(wait * 2, _LONGEST_WAIT)
            else:
                yield "wake", generation

    def _admit(self, config: RunnableConfig) -> None:
        admission = self._admission(config)
        if admission is None:
            return
        for how, value in self._looks(admission):
            if how == "sleep":
                time.sleep(value)
                continue
            event = threading.Event()  # made here, so that an exploration controls it
            with _LOCK:
                if value != _generation:  # released since the look: look again
                    continue
                _sync_waiters.append(event)
            event.wait()

    async def _aadmit(self, config: RunnableConfig) -> None:
        admission = self._admission(config)
        if admission is None:
            return
        for how, value in self._looks(admission):
            if how == "sleep":
                await asyncio.sleep(value)
                continue
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            with _LOCK:
                if value != _generation:
                    continue
                _async_waiters.append((loop, future))
            await future

    def _renew(self, tx: Transaction, prefix: str, config: RunnableConfig) -> None:
        """Inside a save: push the run's lease expiry back (a run that saves is alive)."""
        run = _run_of(config)
        if not self.one_run_per_thread or run is None:
            return
        lease = tx.get(f"{prefix} lease")
        holder = self._holders.get(run, lambda: "")
        if lease is not None and lease["holder"] == holder:
            tx.set(f"{prefix} lease", {**lease, "until": time.time() + self.lease_seconds})

    # --- reads ---------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``checkpoint_id``, else the thread's latest.

        A run's first load waits until no other run holds the thread (see the
        module docstring).
        """
        self._admit(config)
        return self._get_tuple(config)

    def _get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, ns = _thread(config)
        prefix = self._prefix(thread_id, ns)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is None:
            head = self.store.get(f"{prefix} head")
            if head is None:
                return None
            checkpoint_id = head["id"]
        return self._tuple(thread_id, ns, str(checkpoint_id))

    def _tuple(self, thread_id: str, ns: str, checkpoint_id: str) -> CheckpointTuple | None:
        prefix = self._prefix(thread_id, ns)
        record = self.store.get(f"{prefix} checkpoint {checkpoint_id}")
        if record is None:
            return None
        writes = self.store.get(f"{prefix} writes {checkpoint_id}") or {}
        ordered = sorted(writes.values(), key=lambda w: writes_sort_key(w[3], w[0], w[4]))

        def config(cid: str) -> RunnableConfig:
            return {
                "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}
            }

        return CheckpointTuple(
            config=config(checkpoint_id),
            checkpoint=self._load(record["checkpoint"]),
            metadata=self._load(record["metadata"]),
            parent_config=config(record["parent"]) if record["parent"] else None,
            pending_writes=[(w[0], w[1], self._load(w[2])) for w in ordered],
        )

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save ``checkpoint`` if its parent is still the thread's latest, else ConflictError."""
        thread_id, ns = _thread(config)
        prefix = self._prefix(thread_id, ns)
        parent = get_checkpoint_id(config)
        who = self._runs.name(_run_of(config))
        record = {
            "checkpoint": self._dump(checkpoint),
            "metadata": self._dump(get_checkpoint_metadata(config, metadata)),
            "parent": parent,
        }

        def save(tx: Transaction) -> int:
            head = tx.get(f"{prefix} head")
            if (head["id"] if head else None) != parent:
                base = 0
                if parent is not None:
                    known = tx.get(f"{prefix} checkpoint {parent}")
                    base = known["n"] if known else 0
                raise _Stale(base, head or {"n": 0, "by": "another run"})
            number = (head["n"] if head else 0) + 1
            tx.set(f"{prefix} checkpoint {checkpoint['id']}", {**record, "n": number})
            tx.set(f"{prefix} head", {"id": checkpoint["id"], "n": number, "by": who})
            if head is None:
                threads = tx.get("langgraph threads") or {}
                threads.setdefault(thread_id, [])
                if ns not in threads[thread_id]:
                    threads[thread_id].append(ns)
                tx.set("langgraph threads", threads)
            tx.append(f"{prefix} checkpoints", checkpoint["id"])
            if not ns:
                self._renew(tx, prefix, config)
            return number

        try:
            self.store.transaction(save)
        except _Stale as stale:
            where = f"thread {thread_id!r}" + (f" (namespace {ns!r})" if ns else "")
            head = stale.head
            raise ConflictError(
                f"{who} saved {where} from checkpoint {stale.base}, but {head['by']} has "
                f"since saved checkpoint {head['n']}: saving would lose {head['by']}'s turn. "
                f"Nothing was written; invoke the graph again on this thread (it starts "
                f"from checkpoint {head['n']}), or give concurrent conversations their own "
                "thread_id.",
                key=f"{prefix} head",
                expected=stale.base,
                actual=int(head["n"]),
            ) from None
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Merge a task's writes into its checkpoint's pending writes, in one atomic step."""
        thread_id, ns = _thread(config)
        checkpoint_id = get_checkpoint_id(config)
        key = f"{self._prefix(thread_id, ns)} writes {checkpoint_id}"
        new = []
        for idx, (channel, value) in enumerate(writes):
            index = WRITES_IDX_MAP.get(channel, idx)
            new.append(
                (f"{task_id}|{index}", [task_id, channel, self._dump(value), task_path, idx])
            )

        def merge(current: Any) -> Any:
            merged = dict(current or {})
            for inner, write in new:
                # A regular write is kept once (a retried task does not write twice); a
                # special one (error, interrupt, resume) replaces the last of its kind.
                if inner in merged and not inner.endswith(("|-1", "|-2", "|-3", "|-4")):
                    continue
                merged[inner] = write
            return merged

        self.store.update(key, merge)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """The saved checkpoints, newest first, of one thread (or of every thread)."""
        if config is not None:
            thread_id, ns = _thread(config)
            threads = {thread_id: [ns]}
        else:
            threads = self.store.get("langgraph threads") or {}
        before_id = get_checkpoint_id(before) if before else None
        count = 0
        for thread_id, namespaces in threads.items():
            for ns in namespaces:
                ids = self.store.get(f"{self._prefix(thread_id, ns)} checkpoints") or []
                for checkpoint_id in reversed(ids):
                    if before_id is not None and checkpoint_id >= before_id:
                        continue
                    found = self._tuple(thread_id, ns, checkpoint_id)
                    if found is None:
                        continue
                    if filter and any(found.metadata.get(k) != v for k, v in filter.items()):
                        continue
                    if limit is not None and count >= limit:
                        return
                    count += 1
                    yield found

    def delete_thread(self, thread_id: str) -> None:
        """Forget every checkpoint and pending write of the thread."""
        threads = self.store.get("langgraph threads") or {}
        for ns in threads.get(thread_id, []):
            prefix = self._prefix(thread_id, ns)
            for checkpoint_id in self.store.get(f"{prefix} checkpoints") or []:
                self.store.set(f"{prefix} checkpoint {checkpoint_id}", None)
                self.store.set(f"{prefix} writes {checkpoint_id}", None)
            self.store.set(f"{prefix} checkpoints", None)
            self.store.set(f"{prefix} head", None)

        def drop(current: Any) -> Any:
            remaining = dict(current or {})
            remaining.pop(thread_id, None)
            return remaining

        self.store.update("langgraph threads", drop)

    # The store's sync calls are short: the asyncio variants make them directly.

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """As :meth:`get_tuple` (waiting for another run without blocking the event loop)."""
        await self._aadmit(config)
        return self._get_tuple(config)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """As :meth:`put`."""
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """As :meth:`put_writes`."""
        self.put_writes(config, writes, task_id, task_path)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """As :meth:`list`."""
        for found in self.list(config, filter=filter, before=before, limit=limit):
            yield found

    async def adelete_thread(self, thread_id: str) -> None:
        """As :meth:`delete_thread`."""
        self.delete_thread(thread_id)

    def close(self) -> None:
        """Close the store (a Redis client's connections), when this checkpointer opened it."""
        if self._owns_store:
            self.store.close()

    def __repr__(self) -> str:
        return f"StoreCheckpointer({self.store.url!r})"
