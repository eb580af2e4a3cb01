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
follows.
"""

from __future__ import annotations

__all__: list[str] = []
