"""Recorders and store-backed fixes for the session layers of agent frameworks.

One module per framework, each imported only when you use it (the framework
is an optional extra)::

    from racefree.integrations.openai_agents import RecordedSession, StoreSession
    from racefree.integrations.adk import RecordedSessionService, StoreSessionService
    from racefree.integrations.langgraph import RecordedCheckpointer, StoreCheckpointer

A *recorder* wraps the framework's own object, announces each access to the
explorer and records it as an event named after the framework's run, so the
checker tells the story in the framework's words. A *fix* is a drop-in for
the framework's class, backed by a racefree store (``memory://``,
``sqlite:///...``, ``redis://...``). ``docs/integrations.md`` says what each
records and guarantees, and the contract a recorder for another framework
follows; :class:`RunNames` and :func:`jsonable` are the pieces such a
recorder shares with these three.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from racefree.integrations._common import RunNames, jsonable

__all__ = ["RunNames", "jsonable", "warm_up"]


def warm_up(workflow: Callable[[], Any]) -> Any:
    """Run ``workflow`` once, outside any exploration, and return what it returns.

    Frameworks import modules and build caches on first use (ADK's first run
    imports a library that makes a logging handler with its own lock; the
    first run may start work the later ones skip). Done inside an
    exploration, that first use makes the first schedule differ from the
    rest (exhaustive search then reports the workflow as not deterministic)
    and leaves objects made under the explorer behind. Call this before
    ``racefree.explore(workflow, ...)``.
    """
    result = workflow()
    if inspect.isawaitable(result):
        return asyncio.run(_wait(result))
    return result


async def _wait(awaitable: Any) -> Any:
    return await awaitable
