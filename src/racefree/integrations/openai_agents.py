"""The OpenAI Agents SDK: a recorder for any ``Session`` and a store-backed ``Session``.

``pip install racefree[openai-agents]``. Both classes follow the SDK's
``Session`` protocol (``get_items``, ``add_items``, ``pop_item``,
``clear_session``) and accept the run context the SDK passes as ``wrapper``,
which is how they tell one ``Runner.run`` from another.

- :class:`RecordedSession` wraps your session (``SQLiteSession``, your own
  class...) and records each call on the key ``session <id>``: ``get_items``
  a ``read`` (the items seen; the version is the number of items),
  ``add_items`` an ``extend`` (the items, contiguous), ``pop_item`` a ``pop``,
  ``clear_session`` a ``write`` of ``[]``, each with the SDK's words for the
  checker's story (loaded, saved). The SDK saves a run's input when the run starts and
  its answer when it ends, so two runs on one session interleave their turns:
  the checker reports an ``interleaved-turn`` in these words.
- :class:`StoreSession` keeps the conversation in a racefree store. A run's
  items stay with that run until its turn is complete (the last item is the
  assistant's message and every tool call has its output); then the whole
  turn is appended in one atomic ``append_turn`` (with an idempotency key per
  run and turn), so turns never interleave, across processes (SQLite) and
  hosts (Redis) too. A run that fails before its
  answer saves nothing: the question is not left behind without its answer,
  and a retry does not duplicate it. Calls made without a run context (your
  own code calling ``add_items``) are each one atomic turn. A run whose
  final output is a tool's result (``tool_use_behavior="stop_on_first_tool"``,
  ``StopAtTools`` naming the tool called, or a function deciding it) has no
  assistant message: its turn (the question, the calls, their results) is
  appended whole once every call has its result.

Runs are named after the agent they start with: ``Concierge (run 1)``,
``Concierge (run 2)`` (or by ``racefree.agent``). The SDK hands sessions no
agent; the name (and the agent's ``tool_use_behavior``) is read from a
private context variable of the SDK, pinned by the tests against the
installed version; without it runs are ``run 1``, ``run 2``.

Exploring the SDK: its tracing exports spans from a background thread that
polls, and batches through a lock made on first use; under the explorer that
thread is taken for an agent. Importing this module installs a wrapper
around the SDK's trace provider that creates no trace or span while
an exploration runs, and passes everything through unchanged otherwise;
:func:`exploring` turns tracing off around any block, for explorations that
use sessions of their own.
"""

from __future__ import annotations

import contextlib
import inspect
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from racefree import hooks
from racefree.agent import agent as _acting
from racefree.errors import UsageError
from racefree.history import History
from racefree.integrations._common import PerObject, RunNames, jsonable
from racefree.state import AsyncStore, open_async_store

__all__ = ["RecordedSession", "StoreSession", "exploring", "scripted_model", "turn_is_complete"]


def _key(session_id: str) -> str:
    return f"session {session_id}"


# The checker tells a recorded history in the SDK's words (docs/checker.md, "Story words").
_FIX = (
    "Use racefree.integrations.openai_agents.StoreSession, which appends each run's turn "
    "whole, in one atomic step."
)
_WORDS = {
    "read": {"verb": "loaded"},
    "extend": {"verb": "saved", "change": "turn", "fix": _FIX},
    "pop": {"verb": "popped the last item of", "fix": _FIX},
    "write": {"verb": "cleared", "fix": _FIX},
}


def _words(op: str) -> dict[str, Any]:
    return {"words": dict(_WORDS[op])}


def _run_agents() -> list[Any]:
    """The agents of the running ``Runner.run`` so far, the starting agent first.

    The SDK hands sessions no agent. Each run does keep, in a context
    variable, the agents whose tools it resolved
    (``agents.run_internal.agent_tool_configuration``, private: the tests pin
    it against the installed version); without it, an empty list.
    """
    try:
        from agents.run_internal.agent_tool_configuration import _current_run
    except ImportError:  # pragma: no cover - another SDK version
        return []
    run = _current_run.get()
    return [resolution.agent for resolution in getattr(run, "resolutions", {}).values()]


def _starting_agent() -> str | None:
    """The name of the agent the running ``Runner.run`` started with, if the SDK shows it."""
    for agent in _run_agents():
        name = getattr(agent, "name", None)
        return name if isinstance(name, str) and name else None
    return None


def _ends_at_tool(items: list[Any], agents: list[Any]) -> bool:
    """True when ``items`` end with tool results that the run's agent may take as its output.

    With ``tool_use_behavior="stop_on_first_tool"``, ``StopAtTools`` naming
    one of the tools called, or a function deciding it, a run ends without an
    assistant message: its final output is a tool's result. A function's
    decision cannot be seen, so its turn is taken as ended; if the model is
    then called again, its answer is saved as a turn of its own.
    """
    if not items or not isinstance(items[-1], dict):
        return False
    if not str(items[-1].get("type", "")).endswith("_call_output"):
        return False
    called = {
        str(item.get("name"))
        for item in items
        if isinstance(item, dict) and str(item.get("type", "")).endswith("_call")
    }
    owners = [a for a in agents if called & {getattr(t, "name", None) for t in a.tools}]
    for agent in owners or agents:
        behavior = getattr(agent, "tool_use_behavior", "run_llm_again")
        if behavior == "stop_on_first_tool" or callable(behavior):
            return True
        if isinstance(behavior, dict) and called & set(behavior.get("stop_at_tool_names", ())):
            return True
    return False


def _takes_wrapper(method: Any) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    wrapper = parameters.get("wrapper")
    return wrapper is not None and wrapper.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


class RecordedSession:
    """Any SDK ``Session``, with each call recorded as an event (see the module docstring).

    ``history`` receives the events (a new one by default: :attr:`history`).
    The event is recorded when the wrapped call returns; the explorer is told
    before the call starts, so it can run another run first.
    """

    def __init__(self, session: Any, *, history: History | None = None) -> None:
        for method in ("get_items", "add_items", "pop_item", "clear_session"):
            if not callable(getattr(session, method, None)):
                raise UsageError(
                    f"RecordedSession wraps an OpenAI Agents SDK Session, and "
                    f"{type(session).__name__} has no {method}() method. Pass a session "
                    "such as agents.SQLiteSession('id')."
                )
        _quiet_tracing_in_exploration()
        self.session = session
        self.session_id: str = session.session_id
        self.session_settings = getattr(session, "session_settings", None)
        self.history = history if history is not None else History()
        self.key = _key(self.session_id)
        self._runs = RunNames()
        self._count: int | None = None  # items in the session, as far as the calls through us show
        self._pass_wrapper = all(
            _takes_wrapper(getattr(session, m))
            for m in ("get_items", "add_items", "pop_item", "clear_session")
        )

    def _who(self, wrapper: Any) -> str:
        return self._runs.name(wrapper, _starting_agent())

    def _kwargs(self, wrapper: Any) -> dict[str, Any]:
        return {"wrapper": wrapper} if self._pass_wrapper and wrapper is not None else {}

    async def get_items(self, limit: int | None = None, wrapper: Any = None) -> list[Any]:
        """The wrapped ``get_items``, recorded as a ``read`` of the items it returned."""
        who = self._who(wrapper)
        hooks.point("read", self.key)
        items: list[Any] = await self.session.get_items(limit, **self._kwargs(wrapper))
        if limit is None:
            self._count = len(items)
        self.history.record(
            "read",
            self.key,
            agent=who,
            version_read=self._count,
            value=jsonable(items),
            meta=_words("read"),
        )
        return items

    async def add_items(self, items: list[Any], wrapper: Any = None) -> None:
        """The wrapped ``add_items``, recorded as one ``extend`` (the items land contiguously)."""
        who = self._who(wrapper)
        hooks.point("extend", self.key)
        await self.session.add_items(items, **self._kwargs(wrapper))
        before = self._count
        if before is not None:
            self._count = before + len(items)
        self.history.record(
            "extend",
            self.key,
            agent=who,
            version_read=before,
            version_written=self._count,
            value=jsonable(list(items)),
            meta=_words("extend"),
        )

    async def pop_item(self, wrapper: Any = None) -> Any:
        """The wrapped ``pop_item``, recorded as a ``pop`` of the item it removed."""
        who = self._who(wrapper)
        hooks.point("pop", self.key)
        item = await self.session.pop_item(**self._kwargs(wrapper))
        before = self._count
        if before is not None and item is not None:
            self._count = before - 1
        self.history.record(
            "pop",
            self.key,
            agent=who,
            version_read=before,
            version_written=self._count,
            value=jsonable(item),
            meta=_words("pop"),
        )
        return item

    async def clear_session(self, wrapper: Any = None) -> None:
        """The wrapped ``clear_session``, recorded as a ``write`` of an empty conversation."""
        who = self._who(wrapper)
        hooks.point("write", self.key)
        await self.session.clear_session(**self._kwargs(wrapper))
        self._count = 0
        self.history.record(
            "write", self.key, agent=who, version_written=0, value=[], meta=_words("write")
        )

    def __repr__(self) -> str:
        return f"RecordedSession({self.session!r})"


def turn_is_complete(items: list[Any]) -> bool:
    """True when ``items`` end a turn: the assistant's message last, every tool call answered."""
    if not items:
        return False
    last = items[-1]
    return (
        isinstance(last, dict)
        and last.get("role") == "assistant"
        and last.get("type", "message") == "message"
        and _answered(items)
    )


def _answered(items: list[Any]) -> bool:
    """True when every tool call in ``items`` has its output."""
    calls: set[Any] = set()
    answered: set[Any] = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("type", ""))
        if kind.endswith("_call_output"):
            answered.add(item.get("call_id"))
        elif kind.endswith("_call") and item.get("call_id") is not None:
            calls.add(item.get("call_id"))
    return calls <= answered


class _Turn:
    __slots__ = ("items", "saved", "token")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.token = uuid.uuid4().hex  # one per run: its saves are idempotent across retries
        self.saved = 0


class StoreSession:
    """An SDK ``Session`` kept in a racefree store, whose turns never interleave.

    ``StoreSession("t1", "sqlite:///sessions.db")`` or with an open
    :class:`~racefree.AsyncStore` (pass ``history=`` to :func:`racefree.open_async_store`
    to record its operations). The guarantee is in the module docstring: a
    run's turn is appended whole, atomically, once.
    """

    def __init__(
        self,
        session_id: str,
        store: AsyncStore | str = "memory://",
        *,
        history: History | None = None,
    ) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise UsageError(f"A session id must be a non-empty string, not {session_id!r}.")
        self._owns_store = isinstance(store, str)
        if isinstance(store, str):
            store = open_async_store(store, history=history)
        elif history is not None:
            raise UsageError(
                "Pass history= to open_async_store() when you open the store yourself; "
                "StoreSession records through the store."
            )
        _quiet_tracing_in_exploration()
        self.session_id = session_id
        self.session_settings = None
        self.store = store
        self.key = _key(session_id)
        self._runs = RunNames()
        self._turns = PerObject()

    def _turn(self, wrapper: Any) -> _Turn | None:
        if wrapper is None:
            return None
        turn: _Turn = self._turns.get(wrapper, _Turn)
        return turn

    @contextlib.contextmanager
    def _as_run(self, wrapper: Any) -> Iterator[None]:
        if wrapper is None:
            yield
            return
        with _acting(self._runs.name(wrapper, _starting_agent())):
            yield

    async def get_items(self, limit: int | None = None, wrapper: Any = None) -> list[Any]:
        """The saved conversation, followed by this run's items not yet saved."""
        with self._as_run(wrapper):
            saved = await self.store.get(self.key, [])
        turn = self._turn(wrapper)
        items = list(saved) + (list(turn.items) if turn else [])
        if limit is None:
            return items
        return items[-limit:] if limit > 0 else []

    async def add_items(self, items: list[Any], wrapper: Any = None) -> None:
        """Add to this run's turn; a complete turn is appended to the store in one step."""
        new = jsonable(list(items))
        turn = self._turn(wrapper)
        if turn is None:
            if new:
                await self.store.append_turn(self.key, new)
            return
        turn.items.extend(new)
        if turn_is_complete(turn.items) or (
            _answered(turn.items) and _ends_at_tool(turn.items, _run_agents())
        ):
            with self._as_run(wrapper):
                await self.store.append_turn(
                    self.key, turn.items, idempotency_key=f"{turn.token}:{turn.saved}"
                )
            turn.items = []
            turn.saved += 1

    async def pop_item(self, wrapper: Any = None) -> Any:
        """Remove and return the newest item: this run's unsaved one first, else the store's."""
        turn = self._turn(wrapper)
        if turn is not None and turn.items:
            return turn.items.pop()

        async def pop(tx: Any) -> Any:
            items = list(await tx.get(self.key, []))
            if not items:
                return None
            item = items.pop()
            tx.set(self.key, items)
            return item

        with self._as_run(wrapper):
            return await self.store.transaction(pop)

    async def clear_session(self, wrapper: Any = None) -> None:
        """Empty the conversation (and this run's unsaved items)."""
        turn = self._turn(wrapper)
        if turn is not None:
            turn.items = []
        with self._as_run(wrapper):
            await self.store.set(self.key, [])

    async def aclose(self) -> None:
        """Close the store (a Redis client's connections), when this session opened it."""
        if self._owns_store:
            await self.store.aclose()

    def __repr__(self) -> str:
        return f"StoreSession({self.session_id!r}, {self.store.url!r})"


@contextlib.contextmanager
def exploring() -> Iterator[None]:
    """Turn the SDK's tracing off inside the block, then restore the setting.

    Tracing exports from a background thread and batches through a lock made
    on first use; neither belongs to the agents being explored, and no span
    should leave the machine during a test anyway.
    """
    restore = _tracing_off()
    try:
        yield
    finally:
        restore()


def _tracing_off() -> Callable[[], None]:
    """Turn the SDK's tracing off; return the function that restores the previous setting."""
    from agents.tracing import get_trace_provider

    provider: Any = get_trace_provider()
    if isinstance(provider, _QuietInExploration):
        provider = provider.provider
    before = getattr(provider, "_manual_disabled", None)
    provider.set_disabled(True)

    def restore() -> None:
        refresh = getattr(provider, "_refresh_disabled_flag", None)
        if before is None and callable(refresh):  # back to following the environment
            setattr(provider, "_manual_disabled", None)  # noqa: B010 - private in the SDK
            refresh()
        else:
            provider.set_disabled(bool(before))

    return restore


class _QuietInExploration:
    """The SDK's trace provider, making no trace or span while an exploration runs.

    Installed as the global provider by the sessions of this module; outside
    an exploration every call goes to the provider it wraps, unchanged.
    """

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def create_trace(self, *args: Any, **kwargs: Any) -> Any:
        if hooks._scheduler is not None:
            kwargs["disabled"] = True
        return self.provider.create_trace(*args, **kwargs)

    def create_span(self, *args: Any, **kwargs: Any) -> Any:
        if hooks._scheduler is not None:
            kwargs["disabled"] = True
        return self.provider.create_span(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)


def _quiet_tracing_in_exploration() -> None:
    """Make the SDK trace nothing inside an exploration (and exactly as before outside one).

    Called when this module is imported, normally outside any exploration:
    the SDK makes its provider (and its locks) on first use, and locks made
    during an exploration's run stay bound to it.
    """
    from agents.tracing import get_trace_provider, set_trace_provider

    provider = get_trace_provider()
    if not isinstance(provider, _QuietInExploration):
        set_trace_provider(_QuietInExploration(provider))  # type: ignore[arg-type]


def scripted_model(
    reply: Callable[[str], str] = lambda question: f"answer to {question}",
    *,
    latency: float | Callable[[str], float] = 1.0,
) -> Any:
    """An SDK ``Model`` that answers the last user message with ``reply(text)`` after ``latency``.

    No network: for tests and explorations. It answers any question, where
    the SDK's own ``agents.testing.ScriptedModel`` (0.24 and later) plays a
    fixed list of steps, tool calls included. The latency (seconds, or
    ``latency(question)``) is an ``asyncio.sleep``: give two runs different
    latencies and, under ``latency="any"``, the explorer may end either
    run's call first (calls that end at the same instant resume in the order
    asyncio gives them).
    """
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import ResponseOutputMessage, ResponseOutputText

    class _Scripted(Model):
        async def get_response(
            self, system_instructions: Any, input: Any, *a: Any, **k: Any
        ) -> Any:
            import asyncio

            question = ""
            for item in input if isinstance(input, list) else [{"role": "user", "content": input}]:
                if isinstance(item, dict) and item.get("role") == "user":
                    question = str(item.get("content"))
            await asyncio.sleep(latency(question) if callable(latency) else latency)
            text = ResponseOutputText(type="output_text", text=reply(question), annotations=[])
            message = ResponseOutputMessage(
                id="msg", type="message", role="assistant", status="completed", content=[text]
            )
            return ModelResponse(output=[message], usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError("scripted_model answers Runner.run, not streaming runs.")

    return _Scripted()


_quiet_tracing_in_exploration()
