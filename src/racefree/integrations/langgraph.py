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
  **refuses a stale parent**: a checkpoint is saved only if its parent is
  still the thread's latest checkpoint, decided in one atomic transaction
  (across processes with ``sqlite:///``, across hosts with ``redis://``).
  Otherwise ``ConflictError`` names the run that saved in between, and
  nothing is written: no turn is ever lost. Pending writes
  (``put_writes``) are merged in one atomic step, so parallel branches never
  drop each other's writes. With ``durability="exit"`` a run saves once, at
  its end, so a refused run has saved nothing and invoking it again applies
  its input exactly once. With per-step saves (``"sync"``, ``"async"``, the
  default) a run may be refused after saving its input; another run may have
  built on that input already, and then invoking the refused run again would
  repeat its question: use ``durability="exit"`` for runs that may be retried.
  Branching from an older checkpoint (time travel with ``checkpoint_id``) is
  refused as stale too: copy the thread first. ``DeltaChannel`` histories
  (beta in LangGraph) are not supported.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator, Sequence
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
from racefree.errors import ConflictError, UsageError
from racefree.history import History
from racefree.integrations._common import RunNames
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


class StoreCheckpointer(BaseCheckpointSaver[int]):
    """A LangGraph checkpointer on a racefree store that refuses a stale parent.

    ``StoreCheckpointer("sqlite:///checkpoints.db")``, or pass an open
    :class:`~racefree.Store` (give ``history=`` to :func:`racefree.open_store`
    to record its operations). Values are kept as the graph's serializer
    makes them (base64 in the store's JSON). The guarantee is in the module
    docstring.
    """

    def __init__(self, store: Store | str = "memory://", *, history: History | None = None) -> None:
        super().__init__()
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

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``checkpoint_id``, else the thread's latest."""
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
        """As :meth:`get_tuple`."""
        return self.get_tuple(config)

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
