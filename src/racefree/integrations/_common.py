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
from collections import OrderedDict
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
    Objects that take no weak reference (LangGraph's per-run runtime) are
    kept alive instead, the newest :attr:`KEPT` of them: the oldest is let
    go with its data, so a long-lived recorder does not keep every run.
    """

    KEPT = 1024

    def __init__(self) -> None:
        self._data: dict[int, Any] = {}
        self._keep: OrderedDict[int, Any] = OrderedDict()

    def get(self, obj: Any, make: Callable[[], Any]) -> Any:
        """The data for ``obj``, made by ``make()`` the first time."""
        key = id(obj)
        if key not in self._data:
            self._data[key] = make()
            try:
                weakref.finalize(obj, self._data.pop, key, None)
            except TypeError:
                self._keep[key] = obj
                if len(self._keep) > self.KEPT:
                    old, _ = self._keep.popitem(last=False)
                    self._data.pop(old, None)
        return self._data[key]


class RunNames:
    """Names a framework's runs in the order they first touch state.

    A run is known by an object the framework passes along for the whole run
    (a run context, a session copy); without one, the current agent (task or
    thread name) acts, and an explicit ``with racefree.agent("...")`` always
    wins. A run is named once, when it first touches state, and keeps that
    name (events are never renamed): ``run 1``, ``run 2``..., or with the
    framework's name for what runs (an agent's name) ``Concierge (run 1)``,
    ``Concierge (run 2)``; a name the user gave the run itself (LangGraph's
    ``run_name``) is used as it is.
    """

    def __init__(self, prefix: str = "run") -> None:
        self._prefix = prefix
        self._names = PerObject()
        self._count = 0

    def name(self, run: Any = None, label: str | None = None, *, numbered: bool = True) -> str:
        """The acting run's name; ``label`` names it the first time (numbered unless told)."""
        explicit = _explicit_agent.get()
        if explicit is not None:
            return explicit
        if run is None:
            return current_agent()
        name: str = self._names.get(run, lambda: self._next(label, numbered))
        return name

    def _next(self, label: str | None, numbered: bool) -> str:
        if label and not numbered:
            return label
        self._count += 1
        number = f"{self._prefix} {self._count}"
        return f"{label} ({number})" if label else number


def jsonable(value: Any) -> Any:
    """A JSON copy of ``value`` (pydantic models dumped, anything else as its text)."""

    def default(obj: Any) -> Any:
        dump = getattr(obj, "model_dump", None)
        if callable(dump):
            return dump(mode="json", exclude_none=True)
        return repr(obj)

    return json.loads(json.dumps(value, default=default))
