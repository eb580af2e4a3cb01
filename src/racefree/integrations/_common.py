"""What every recorder shares: run names, JSON copies of values, point-then-record.

The contract (``docs/integrations.md``): announce each access to the session
layer with :func:`racefree.explore.hooks.point` *before* making it, record it
in a :class:`~racefree.history.History` once it has taken effect, under an op
the checker knows (``read``, ``write``, ``extend``, ``pop``, ``apply``...),
on one key per unit of the framework's shared state, by the framework's run.
"""

from __future__ import annotations

import json
from typing import Any

from racefree.agent import _current as _explicit_agent
from racefree.agent import current_agent

__all__ = ["RunNames", "jsonable"]


class RunNames:
    """Names a framework's runs ``"run 1"``, ``"run 2"``... in the order they first touch state.

    An explicit ``with racefree.agent("...")`` always wins. A run is known by
    a token the framework passes along (a run context, an invocation id);
    without one, the current agent (task or thread name) acts. Tokens are
    kept for the life of the recorder, so an id is never reused for a
    different run.
    """

    def __init__(self, prefix: str = "run") -> None:
        self._prefix = prefix
        self._names: dict[Any, str] = {}
        self._keep: list[Any] = []  # objects whose id() is a token stay alive: ids are not reused

    def name(self, token: Any = None, *, by_id: bool = False) -> str:
        """The acting run's name; ``by_id`` keys an unhashable token by its identity."""
        explicit = _explicit_agent.get()
        if explicit is not None:
            return explicit
        if token is None:
            return current_agent()
        if by_id:
            self._keep.append(token)
            token = ("id", id(token))
        name = self._names.get(token)
        if name is None:
            name = self._names[token] = f"{self._prefix} {len(self._names) + 1}"
        return name


def jsonable(value: Any) -> Any:
    """A JSON copy of ``value`` (pydantic models dumped, anything else as its text)."""

    def default(obj: Any) -> Any:
        dump = getattr(obj, "model_dump", None)
        if callable(dump):
            return dump(mode="json", exclude_none=True)
        return repr(obj)

    return json.loads(json.dumps(value, default=default))
