"""Google ADK: a recorder for any ``SessionService`` and a store-backed ``SessionService``.

``pip install racefree[adk]``. Both are ``BaseSessionService`` subclasses,
so they drop into ``Runner(session_service=...)``.

- :class:`RecordedSessionService` wraps your service (``InMemorySessionService``,
  ``SqliteSessionService``...) and records, per run (a run is the session
  copy that ``get_session`` hands to one ``Runner.run_async``; runs are
  named after the Runner's root agent, ``shopper (run 1)``, ``shopper (run
  2)``..., ``run 1`` without a Runner, or by ``racefree.agent``):

  - ``get_session``: a ``read`` of every state key the copy holds, on keys
    ``session <id> state.<key>`` (``user <id> state.<key>`` for ``user:``
    keys, ``app <name> state.<key>`` for ``app:`` keys), plus every key the
    recorder has seen written, and a ``read`` of ``session <id> events``;
  - ``append_event``: a ``write`` of each key in the event's ``state_delta``
    (ADK applies it as the key's new value, computed from the run's copy),
    then an ``append`` of the event to ``session <id> events`` as a message
    (role ``user`` for the user's event, else ``assistant``; ``tool`` for a
    function response, with one ``tool_result`` block per response when ADK
    merged parallel calls' responses into one event; function calls as
    ``tool_calls``; the event's ``author`` in meta).
  - a ``ParallelAgent``'s branches: each branch's events go to ``session
    <id> events[<branch>]`` (ADK builds a branch's model request from its own
    events), by the branch's agent, ``weather in research (run 1)``; the
    branches share the run's copy, so a branch's reads of ``State``
    (``tool_context.state[...]``) are recorded as its ``read`` and its
    ``state_delta`` is versioned from what it read.

  Two runs on one session (double texting) read the same state, and the
  later ``state_delta`` replaces the earlier: the checker reports a
  ``lost-update`` in ADK's words ("shopper (run 2) then applied a state_delta
  to session s1 state.cart at v3 from its copy of v1: ["eggs"]. shopper
  (run 1)'s state_delta is gone."), and the events of the two runs
  interleave.
  ``InMemorySessionService`` loses the write silently; the database services
  raise ``StaleSessionError`` at the second run's ``append_event`` instead.

- :class:`StoreSessionService` keeps sessions in a racefree store. Each
  ``append_event`` is one atomic transaction that adds the event and applies
  its ``state_delta`` through a reducer per state key: ``"add"`` (a counter:
  the run's change, new value minus the value its copy held, is added),
  ``"append"`` (a list: the items the run added to its copy are appended) or
  ``"last_value"`` (the default: the value replaces the stored one only if
  nobody else wrote the key since the run's copy was read; otherwise
  ``ConcurrentWriteError`` names both writers and nothing is written). The
  guarantee holds across processes (``sqlite:///``) and hosts
  (``redis://``). Events of two concurrent runs still alternate in the
  session's event list (each lands whole): ADK does not ask a session
  service to serialise runs.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event as AdkEvent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.platform import time as adk_time
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from google.genai import types

from racefree import hooks
from racefree.agent import _current as _explicit_agent
from racefree.agent import agent as _acting
from racefree.errors import ConcurrentWriteError, UsageError
from racefree.history import History
from racefree.integrations._common import PerObject, RunNames, jsonable
from racefree.state import AsyncStore, AsyncTransaction, open_async_store

__all__ = [
    "REDUCERS",
    "RecordedSessionService",
    "ScriptedLlm",
    "StoreSessionService",
    "message_of",
]

REDUCERS = ("last_value", "add", "append")
"""The reducers a state key of :class:`StoreSessionService` can have."""


def _state_key(session: Session, key: str) -> str | None:
    """The history key of one ADK state key; None for ``temp:`` keys, which are never saved."""
    if key.startswith(State.TEMP_PREFIX):
        return None
    if key.startswith(State.APP_PREFIX):
        return f"app {session.app_name} state.{key.removeprefix(State.APP_PREFIX)}"
    if key.startswith(State.USER_PREFIX):
        return f"user {session.user_id} state.{key.removeprefix(State.USER_PREFIX)}"
    return f"session {session.id} state.{key}"


# The checker tells a recorded history in ADK's words (docs/checker.md, "Story words").
_STATE_FIX = (
    "Use racefree.integrations.adk.StoreSessionService with a reducer for this key "
    "('append' for a list, 'add' for a counter): it applies each state_delta atomically."
)
_EVENTS_FIX = (
    "ADK does not serialise the runs on one session: queue one session's messages, or give "
    "each conversation its own session."
)
_LOADED = {"words": {"verb": "loaded"}}


def _runner_agent() -> str | None:
    """The root agent's name of the ``Runner`` that is calling the service, if one is.

    A session service is handed no agent; the ``Runner`` calling it holds
    the root agent, so the caller's frames are looked at (a few, no further).
    """
    from google.adk.runners import Runner

    frame = inspect.currentframe()
    try:
        for _ in range(6):
            if frame is None:
                return None
            owner = frame.f_locals.get("self")
            if isinstance(owner, Runner):
                name = getattr(owner.agent, "name", None)
                return name if isinstance(name, str) and name else None
            frame = frame.f_back
        return None
    finally:
        del frame  # a frame held in a local would keep every caller's locals alive


def message_of(event: AdkEvent) -> dict[str, Any]:
    """An ADK event as the chat message the checker reads (role, author, text, tool calls)."""
    message: dict[str, Any] = {"role": "user" if event.author == "user" else "assistant"}
    message["author"] = event.author
    parts = event.content.parts if event.content and event.content.parts else []
    text = "".join(part.text for part in parts if part.text)
    if text:
        message["content"] = text
    calls = event.get_function_calls()
    if calls:
        message["tool_calls"] = [{"id": call.id, "name": call.name} for call in calls]
    responses = event.get_function_responses()
    if len(responses) == 1:
        message["role"] = "tool"
        message["tool_call_id"] = responses[0].id
    elif responses:
        # ADK merges the responses of parallel function calls into one event: one result
        # block per call, so each call id is answered (as in a message of tool_result blocks).
        message["role"] = "tool"
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        blocks += [
            {"type": "tool_result", "tool_use_id": response.id, "name": response.name}
            for response in responses
        ]
        message["content"] = blocks
    return message


def _events_key(session_id: str, branch: str | None) -> str:
    """The history key of one branch's events: ``session <id> events[<branch>]``.

    A ``ParallelAgent``'s branches add their events to one session, and ADK
    builds each branch's model request from that branch's events only, so
    each branch is a conversation of its own (``None``: the session's own).
    """
    events = f"session {session_id} events"
    return f"{events}[{branch}]" if branch else events


def _counts(session: Session) -> dict[str | None, int]:
    """The number of the session's events of each branch (``None``: those of no branch)."""
    counts: dict[str | None, int] = {None: 0}
    for event in session.events:
        counts[event.branch or None] = counts.get(event.branch or None, 0) + 1
    return counts


def _branch_context() -> Any:
    """The ADK invocation context of the ``ParallelAgent`` branch reading state, if one is.

    A state read is handed no context; the tool or callback reading holds its
    ``ToolContext`` (or ADK's flow its ``InvocationContext``), so the
    caller's frames are looked at (a few, no further).
    """
    from google.adk.agents.invocation_context import InvocationContext
    from google.adk.agents.readonly_context import ReadonlyContext

    frame = inspect.currentframe()
    try:
        for _ in range(12):
            if frame is None:
                return None
            for value in frame.f_locals.values():
                if isinstance(value, ReadonlyContext):
                    value = value._invocation_context
                if isinstance(value, InvocationContext):
                    return value if value.branch else None
            frame = frame.f_back
        return None
    finally:
        del frame


_STATE_GET = State.__getitem__.__code__


class _WatchedState(dict[str, Any]):
    """A run's session state that tells the recorder of each read made through ADK's ``State``.

    The branches of a ``ParallelAgent`` share the run's session copy, so what
    a branch's tool read is known only when it reads. Only reads through a
    context's ``state`` (``tool_context.state["notes"]``, ``.get``) are told:
    ADK's own bookkeeping reads the dict directly. Copies are plain dicts.
    """

    __slots__ = ("_on_read",)

    def __init__(self, state: dict[str, Any], on_read: Callable[[str, Any], None]) -> None:
        super().__init__(state)
        self._on_read = on_read

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if sys._getframe(1).f_code is _STATE_GET:
            self._on_read(key, value)
        return value

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (dict, (dict(self),))

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        import copy

        return copy.deepcopy(dict(self), memo)


class RecordedSessionService(BaseSessionService):
    """Any ADK session service, with reads and writes of sessions recorded (module docstring).

    ``history`` receives the events (a new one by default: :attr:`history`).
    Each access is announced to the explorer before the wrapped call and
    recorded when it returns.
    """

    def __init__(self, service: BaseSessionService, *, history: History | None = None) -> None:
        if not isinstance(service, BaseSessionService):
            raise UsageError(
                f"RecordedSessionService wraps a google.adk BaseSessionService, not a "
                f"{type(service).__name__}. Pass a service such as InMemorySessionService()."
            )
        self.service = service
        self.history = history if history is not None else History()
        self._runs = RunNames()
        self._versions: dict[str, int] = {}  # history key -> writes seen through the recorder
        self._copies = PerObject()  # a run's session copy -> {history key: version it holds}
        self._branches = PerObject()  # a run's session copy -> {branch's agent: {key: version}}
        self._held = PerObject()  # a run's session copy -> {history key: the value it holds}
        self._pending = PerObject()  # a run's session copy -> {key: [(branch, value read)]}

    def _read(self, session: Session, who: str) -> None:
        seen: dict[str, int] = self._copies.get(session, dict)
        held: dict[str, Any] = self._held.get(session, dict)
        keys = {k: _state_key(session, k) for k in session.state}
        known = {key for key in self._versions if key.startswith(f"session {session.id} ")}
        for name, key in keys.items():
            if key is not None:
                seen[key] = self._versions.get(key, 0)
                held[key] = jsonable(session.state[name])
                self.history.record(
                    "read",
                    key,
                    agent=who,
                    version_read=seen[key],
                    value=held[key],
                    meta=dict(_LOADED),
                )
        events = f"session {session.id} events"
        for key in sorted(known - set(keys.values())):
            if key.startswith(events):
                continue
            seen[key] = self._versions[key]  # a key this copy lacks: it was read as absent
            self.history.record("read", key, agent=who, version_read=seen[key], meta=dict(_LOADED))
        for branch, count in sorted(_counts(session).items(), key=lambda item: item[0] or ""):
            self.history.record(
                "read",
                _events_key(session.id, branch),
                agent=who,
                version_read=count,
                meta=dict(_LOADED),
            )

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """The wrapped ``create_session``; the initial state is recorded as writes."""
        who = self._runs.name()
        hooks.point("write", f"session {session_id} events" if session_id else None)
        session = await self.service.create_session(
            app_name=app_name, user_id=user_id, state=state, session_id=session_id
        )
        for name, value in (state or {}).items():
            key = _state_key(session, name)
            if key is not None:
                version = self._versions[key] = self._versions.get(key, 0) + 1
                self.history.record(
                    "write", key, agent=who, version_written=version, value=jsonable(value)
                )
        self._versions.setdefault(f"session {session.id} events", 0)
        return session

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """The wrapped ``get_session``: the run's copy, recorded as a read of its state."""
        hooks.point("read", f"session {session_id} events")
        session = await self.service.get_session(
            app_name=app_name, user_id=user_id, session_id=session_id, config=config
        )
        if session is not None:
            self._read(session, self._runs.name(session, _runner_agent()))
            copy = session

            def on_read(name: str, value: Any) -> None:
                self._branch_read(copy, name, value)

            session.state = _WatchedState(session.state, on_read)
        return session

    def _branch_read(self, session: Session, name: str, value: Any) -> None:
        """A read of the run's copy by a ``ParallelAgent`` branch, recorded as that branch's."""
        key = _state_key(session, name)
        if key is None:
            return
        context = _branch_context()
        if context is None:
            return
        who = f"{context.agent.name} in {self._runs.name(session)}"
        version = self._copies.get(session, dict).get(key, 0)
        if version != self._versions.get(key, 0):
            # Another run wrote the key since this copy was read: a read recorded now would
            # say the branch saw that write. Its last look stays its earlier read, if any.
            return
        found = jsonable(value)
        held: dict[str, Any] = self._held.get(session, dict)
        if key not in held or held[key] != found:
            # Another branch set the value in the shared copy and its event is not appended
            # yet: the read is recorded once that write is (it reads that write's version).
            self._pending.get(session, dict).setdefault(key, []).append((who, found))
            return
        self._branch_saw(session, who, key, version, found)

    def _branch_saw(self, session: Session, who: str, key: str, version: int, value: Any) -> None:
        seen: dict[str, int] = self._branches.get(session, dict).setdefault(who, {})
        if seen.get(key) == version:
            return  # read again, unchanged since
        seen[key] = version
        self.history.record("read", key, agent=who, version_read=version, value=value)

    async def append_event(self, session: Session, event: AdkEvent) -> AdkEvent:
        """The wrapped ``append_event``: the state_delta as writes, the event as an append."""
        if event.partial:
            return await self.service.append_event(session, event)
        who = self._runs.name(session, _runner_agent())
        branch = event.branch or None
        if branch and event.author:
            who = f"{event.author} in {who}"  # a ParallelAgent's branch: its own agent
        events = _events_key(session.id, branch)
        hooks.point("append", events)
        saved = await self.service.append_event(session, event)
        seen: dict[str, int] = self._copies.get(session, dict)
        # What a branch last saw of each key: its own reads and writes, else what the copy held.
        own: dict[str, int] = (
            self._branches.get(session, dict).setdefault(who, {}) if branch else seen
        )
        delta = event.actions.state_delta if event.actions else {}
        for name, value in (delta or {}).items():
            key = _state_key(session, name)
            if key is None:
                continue
            version = self._versions[key] = self._versions.get(key, 0) + 1
            written = self._held.get(session, dict)[key] = jsonable(value)
            self.history.record(
                "write",
                key,
                agent=who,
                version_read=own.get(key, seen.get(key)),
                version_written=version,
                value=written,
                meta={
                    "author": event.author,
                    "words": {
                        "verb": "applied a state_delta to",
                        "change": "state_delta",
                        "fix": _STATE_FIX,
                    },
                },
            )
            seen[key] = own[key] = version
            waiting: list[tuple[str, Any]] = self._pending.get(session, dict).get(key, [])
            for reader, found in [r for r in waiting if r[1] == written and r[0] != who]:
                self._branch_saw(session, reader, key, version, found)
            waiting[:] = [r for r in waiting if r[1] != written]
        count = self._versions.get(events, _counts(session).get(branch, 1) - 1)
        self._versions[events] = count + 1
        self.history.record(
            "append",
            events,
            agent=who,
            version_read=count,
            version_written=count + 1,
            value=message_of(event),
            meta={
                "author": event.author,
                "words": {"verb": "appended", "change": "event", "fix": _EVENTS_FIX},
            },
        )
        return saved

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The wrapped ``list_sessions`` (not recorded: it returns no events or state to act on)."""
        return await self.service.list_sessions(app_name=app_name, user_id=user_id)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """The wrapped ``delete_session``, recorded as a delete of the session's events."""
        who = self._runs.name()
        events = f"session {session_id} events"
        hooks.point("delete", events)
        await self.service.delete_session(app_name=app_name, user_id=user_id, session_id=session_id)
        self.history.record("delete", events, agent=who)

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The wrapped ``get_user_state``."""
        state: dict[str, Any] = await self.service.get_user_state(
            app_name=app_name, user_id=user_id
        )
        return state

    def __repr__(self) -> str:
        return f"RecordedSessionService({self.service!r})"


# --- the fix --------------------------------------------------------------------------------


class _Copy:
    """What a run's session copy was read from: per scope record, the values and versions."""

    __slots__ = ("values", "versions")

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, int]] = {}


def _empty_record() -> dict[str, Any]:
    return {"values": {}, "versions": {}, "writers": {}}


class StoreSessionService(BaseSessionService):
    """An ADK session service on a racefree store, with atomic reducer-merged state deltas.

    ``StoreSessionService("sqlite:///sessions.db", reducers={"count": "add",
    "cart": "append"})``, or pass an open :class:`~racefree.AsyncStore`
    (give ``history=`` to :func:`racefree.open_async_store` to record its
    operations). Reducers name plain state keys; ``user:``/``app:`` keys take
    the reducer of their key with the prefix. The guarantee is in the module
    docstring.
    """

    def __init__(
        self,
        store: AsyncStore | str = "memory://",
        *,
        reducers: Mapping[str, str] | None = None,
        history: History | None = None,
    ) -> None:
        self._owns_store = isinstance(store, str)
        if isinstance(store, str):
            store = open_async_store(store, history=history)
        elif history is not None:
            raise UsageError(
                "Pass history= to open_async_store() when you open the store yourself; "
                "StoreSessionService records through the store."
            )
        self.store = store
        self.reducers: dict[str, str] = dict(reducers or {})
        for key, reducer in self.reducers.items():
            if reducer not in REDUCERS:
                raise UsageError(
                    f"The state key {key!r} has the reducer {reducer!r}; choose one of "
                    f"{', '.join(REDUCERS)}."
                )
        self._copies = PerObject()

    # One store key per scope record and per session's events, and an index per app.
    @staticmethod
    def _keys(app: str, user: str, sid: str) -> dict[str, str]:
        return {
            "session": f"adk session {app}/{user}/{sid} state",
            "user": f"adk user {app}/{user} state",
            "app": f"adk app {app} state",
            "events": f"adk session {app}/{user}/{sid} events",
            "index": f"adk sessions {app}",
        }

    @staticmethod
    def _writer(event: AdkEvent) -> str:
        explicit = _explicit_agent.get()
        if explicit is not None:
            return explicit
        return f"{event.author or 'user'} (invocation {event.invocation_id or '?'})"

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """A new session; ``AlreadyExistsError`` if the id is taken (decided atomically)."""
        sid = (session_id or "").strip() or uuid.uuid4().hex
        keys = self._keys(app_name, user_id, sid)
        initial: dict[str, dict[str, Any]] = {"session": {}, "user": {}, "app": {}}
        for name, value in (state or {}).items():
            scope, plain = _scope(name)
            if scope is not None:
                initial[scope][plain] = jsonable(value)
        now = adk_time.get_time()

        async def create(tx: AsyncTransaction) -> None:
            index = dict(await tx.get(keys["index"]) or {})
            if sid in index.get(user_id, []):
                raise AlreadyExistsError(f"Session with id {sid} already exists.")
            index[user_id] = [*index.get(user_id, []), sid]
            tx.set(keys["index"], index)
            for scope in ("session", "user", "app"):
                if initial[scope] or scope == "session":
                    record = await tx.get(keys[scope]) or _empty_record()
                    _merge_blind(record, initial[scope], "create_session")
                    if scope == "session":
                        record["last_update_time"] = now
                    tx.set(keys[scope], record)
            tx.set(keys["events"], [])

        await self.store.transaction(create)
        found = await self.get_session(app_name=app_name, user_id=user_id, session_id=sid)
        assert found is not None  # just created; a delete in between would be the caller's race
        return found

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """A consistent copy of the session (state and events read in one transaction)."""
        keys = self._keys(app_name, user_id, session_id.strip())

        async def read(tx: AsyncTransaction) -> Any:
            record = await tx.get(keys["session"])
            if record is None:
                return None
            return (
                record,
                await tx.get(keys["user"]) or _empty_record(),
                await tx.get(keys["app"]) or _empty_record(),
                await tx.get(keys["events"]) or [],
            )

        found = await self.store.transaction(read)
        if found is None:
            return None
        record, user, app, raw_events = found
        events = [AdkEvent.model_validate(e) for e in raw_events]
        if config is not None:
            if config.num_recent_events is not None:
                events = events[-config.num_recent_events :] if config.num_recent_events else []
            if config.after_timestamp is not None:
                events = [e for e in events if e.timestamp >= config.after_timestamp]
        state: dict[str, Any] = dict(record["values"])
        state.update({State.USER_PREFIX + k: v for k, v in user["values"].items()})
        state.update({State.APP_PREFIX + k: v for k, v in app["values"].items()})
        session = Session(
            app_name=app_name,
            user_id=user_id,
            id=session_id.strip(),
            state=state,
            events=events,
            last_update_time=record.get("last_update_time", 0.0),
        )
        copy: _Copy = self._copies.get(session, _Copy)
        for scope, rec in (("session", record), ("user", user), ("app", app)):
            copy.values[scope] = dict(rec["values"])
            copy.versions[scope] = dict(rec["versions"])
        return session

    async def append_event(self, session: Session, event: AdkEvent) -> AdkEvent:
        """Add the event and merge its state_delta through the reducers, in one transaction."""
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        keys = self._keys(session.app_name, session.user_id, session.id)
        copy: _Copy = self._copies.get(session, _Copy)
        delta: dict[str, dict[str, Any]] = {"session": {}, "user": {}, "app": {}}
        for name, value in (event.actions.state_delta if event.actions else {}).items():
            scope, plain = _scope(name)
            if scope is not None:
                delta[scope][plain] = jsonable(value)
        writer = self._writer(event)
        dumped = event.model_dump(mode="json", exclude_none=True)
        merged: dict[str, dict[str, tuple[Any, int]]] = {}  # scope -> key -> (value, version)

        async def commit(tx: AsyncTransaction) -> None:
            saved = await tx.get(keys["events"])
            if saved is None:
                raise SessionNotFoundError(f"Session {session.id} not found.")
            if event.id and any(e.get("id") == event.id for e in saved):
                return  # a retried append of an event already saved
            for scope, changes in delta.items():
                if not changes and scope != "session":
                    continue
                record = await tx.get(keys[scope]) or _empty_record()
                for plain, value in changes.items():
                    self._reduce(record, scope, plain, value, copy, writer, session.id)
                merged[scope] = {
                    plain: (record["values"][plain], record["versions"][plain]) for plain in changes
                }
                if scope == "session":
                    record["last_update_time"] = event.timestamp
                tx.set(keys[scope], record)
            tx.append(keys["events"], dumped)

        with _acting(writer):
            await self.store.transaction(commit)
        # The keys this run wrote now hold, in its copy, what the store holds (a counter's
        # sum, the whole list); the keys it did not write stay as it read them.
        for scope, written in merged.items():
            prefix = {"session": "", "user": State.USER_PREFIX, "app": State.APP_PREFIX}[scope]
            for plain, (value, version) in written.items():
                copy.values.setdefault(scope, {})[plain] = value
                copy.versions.setdefault(scope, {})[plain] = version
                session.state[prefix + plain] = value
        session.events.append(event)
        session.last_update_time = event.timestamp
        return event

    def _reduce(
        self,
        record: dict[str, Any],
        scope: str,
        plain: str,
        value: Any,
        copy: _Copy,
        writer: str,
        session_id: str,
    ) -> None:
        name = {"session": "", "user": State.USER_PREFIX, "app": State.APP_PREFIX}[scope] + plain
        reducer = self.reducers.get(name, self.reducers.get(plain, "last_value"))
        stored = record["values"].get(plain)
        had = copy.values.get(scope, {}).get(plain)
        version = record["versions"].get(plain, 0)
        base = copy.versions.get(scope, {}).get(plain, 0)
        if reducer == "add":
            if not _number(value) or not (had is None or _number(had)):
                raise UsageError(
                    f"The state key {name!r} has the reducer 'add', but the run set it to "
                    f"{value!r}: give it a number. Nothing was written."
                )
            result: Any = (stored or 0) + value - (had or 0)
        elif reducer == "append":
            before = list(had or [])
            if not isinstance(value, list) or value[: len(before)] != before:
                raise UsageError(
                    f"The state key {name!r} has the reducer 'append', but the run's new value "
                    f"does not extend the list it read: set it to the old list plus new items. "
                    "Nothing was written."
                )
            result = list(stored or []) + value[len(before) :]
        else:
            if version != base:
                first = record["writers"].get(plain, "another run")
                raise ConcurrentWriteError(
                    f"Runs {first!r} and {writer!r} both wrote the state key {name!r} of "
                    f"session {session_id!r}: {writer!r} based its write on version {base}, but "
                    f"{first!r} has since written version {version}, so one answer would be "
                    "lost. Nothing was written; declare a reducer for it "
                    f"(StoreSessionService(reducers={{{name!r}: 'append'}}) or 'add'), or get "
                    "the session again and decide again.",
                    key=name,
                    writers=(first, writer),
                )
            result = value
        record["values"][plain] = result
        record["versions"][plain] = version + 1
        record["writers"][plain] = writer

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The sessions of a user (or of every user), without events, oldest update first."""
        index = await self.store.get(f"adk sessions {app_name}") or {}
        users = [user_id] if user_id is not None else list(index)
        sessions = []
        for user in users:
            for sid in index.get(user, []):
                found = await self.get_session(
                    app_name=app_name,
                    user_id=user,
                    session_id=sid,
                    config=GetSessionConfig(num_recent_events=0),
                )
                if found is not None:
                    sessions.append(found)
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Remove the session and its events (user and app state stay)."""
        keys = self._keys(app_name, user_id, session_id.strip())

        async def delete(tx: AsyncTransaction) -> None:
            index = dict(await tx.get(keys["index"]) or {})
            index[user_id] = [s for s in index.get(user_id, []) if s != session_id.strip()]
            tx.set(keys["index"], index)
            tx.set(keys["session"], None)
            tx.set(keys["events"], None)

        await self.store.transaction(delete)

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user-scoped state, without the ``user:`` prefix."""
        record = await self.store.get(f"adk user {app_name}/{user_id} state") or _empty_record()
        return dict(record["values"])

    async def aclose(self) -> None:
        """Close the store (a Redis client's connections), when this service opened it."""
        if self._owns_store:
            await self.store.aclose()

    def __repr__(self) -> str:
        return f"StoreSessionService({self.store.url!r})"


def _scope(name: str) -> tuple[str | None, str]:
    if name.startswith(State.TEMP_PREFIX):
        return None, name
    if name.startswith(State.APP_PREFIX):
        return "app", name.removeprefix(State.APP_PREFIX)
    if name.startswith(State.USER_PREFIX):
        return "user", name.removeprefix(State.USER_PREFIX)
    return "session", name


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _merge_blind(record: dict[str, Any], values: dict[str, Any], writer: str) -> None:
    for key, value in values.items():
        record["values"][key] = value
        record["versions"][key] = record["versions"].get(key, 0) + 1
        record["writers"][key] = writer


class ScriptedLlm(BaseLlm):
    """An ADK model with no network: it calls the tools ``calls(question)`` names, then answers.

    For tests and explorations. ``calls`` maps the user's last message to a
    list of ``(tool name, arguments)``; once their results are back (or when
    there are none) the model answers ``answer(question)``. Each model call
    takes ``latency`` seconds (or ``latency(question)``) of ``asyncio.sleep``:
    give the runs different latencies and, under ``latency="any"``, the
    explorer may end either run's call first (calls that end at the same
    instant resume in the order asyncio gives them).
    """

    model: str = "scripted"
    calls: Callable[[str], list[tuple[str, dict[str, Any]]]] = lambda question: []
    answer: Callable[[str], str] = lambda question: "done"
    latency: float | Callable[[str], float] = 1.0

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        question, answered = "", False
        for content in llm_request.contents:
            for part in content.parts or []:
                if content.role == "user" and part.text:
                    question, answered = part.text, False
                elif part.function_response is not None:
                    answered = True
        latency = self.latency(question) if callable(self.latency) else self.latency
        await asyncio.sleep(latency)
        planned = [] if answered else self.calls(question)
        if planned:
            parts = [
                types.Part(function_call=types.FunctionCall(name=name, args=args))
                for name, args in planned
            ]
        else:
            parts = [types.Part(text=self.answer(question))]
        usage = types.GenerateContentResponseUsageMetadata(
            prompt_token_count=1, candidates_token_count=1, total_token_count=2
        )
        yield LlmResponse(content=types.Content(role="model", parts=parts), usage_metadata=usage)
