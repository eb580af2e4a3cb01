"""What every recorder shares: run names, JSON copies of values, point-then-record.

The contract (``docs/integrations.md``): announce each access to the session
layer with :func:`racefree.hooks.point` *before* making it, record it
in a :class:`~racefree.history.History` once it has taken effect, under an op
the checker knows (``read``, ``write``, ``extend``, ``pop``, ``apply``...),
on one key per unit of the framework's shared state, by the framework's run.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from typing import Any

from racefree.agent import _current as _explicit_agent
from racefree.agent import current_agent

__all__ = ["PerObject", "RunNames", "jsonable"]


class PerObject:
    """Data kept for an object (a run context, a session copy) for as long as it lives.

    Keyed by identity, because framework objects are often unhashable
    (pydantic models, dataclasses); dropped when the object is garbage
    collected, so an id reused by a new object never finds the old data.
    Objects that take no weak reference are kept alive instead.
    """

    def __init__(self) -> None:
        self._data: dict[int, Any] = {}
        self._keep: list[Any] = []

    def get(self, obj: Any, make: Callable[[], Any]) -> Any:
        """The data for ``obj``, made by ``make()`` the first time."""
        key = id(obj)
        if key not in self._data:
            self._data[key] = make()
            try:
                weakref.finalize(obj, self._data.pop, key, None)
            except TypeError:
                self._keep.append(obj)
        return self._data[key]


class RunNames:
    """Names a framework's runs ``"run 1"``, ``"run 2"``... in the order they first touch state.

    An explicit ``with racefree.agent("...")`` always wins. A run is known by
    an object the framework passes along for the whole run (a run context, a
    session copy); without one, the current agent (task or thread name) acts.
    """

    def __init__(self, prefix: str = "run") -> None:
        self._prefix = prefix
        self._names = PerObject()
        self._count = 0

    def name(self, run: Any = None) -> str:
        """The acting run's name."""
        explicit = _explicit_agent.get()
        if explicit is not None:
            return explicit
        if run is None:
            return current_agent()
        name: str = self._names.get(run, self._next)
        return name

    def _next(self) -> str:
        self._count += 1
        return f"{self._prefix} {self._count}"


def jsonable(value: Any) -> Any:
    """A JSON copy of ``value`` (pydantic models dumped, anything else as its text)."""

    def default(obj: Any) -> Any:
        dump = getattr(obj, "model_dump", None)
        if callable(dump):
            return dump(mode="json", exclude_none=True)
        return repr(obj)

    return json.loads(json.dumps(value, default=default))
