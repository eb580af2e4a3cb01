"""Finding a key in a final state, and rebuilding states from a history.

Keys are looked up in a final state as they are (a store snapshot has flat
keys), then as dotted paths into nested dicts and lists
(``"metadata.completed"``, through the fields of dataclasses, pydantic
models and other objects too), then as dotted paths without their first part
(``track(session, name="session")`` records ``"session.metadata.completed"``
while the final state you pass is the session itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MISSING", "resolve"]

MISSING: Any = object()


def _walk(root: Any, parts: list[str]) -> Any:
    node = root
    for part in parts:
        if isinstance(node, Mapping):
            if part not in node:
                return MISSING
            node = node[part]
        elif isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                return MISSING
        else:
            # A dataclass, a pydantic model or a plain object, as track() reads them: its
            # fields are its __dict__ (looked up there, so no property or __getattr__ runs).
            fields = getattr(node, "__dict__", None)
            if type(fields) is not dict or part not in fields:
                return MISSING
            node = fields[part]
    return node


def resolve(state: Any, key: str) -> Any:
    """The value of ``key`` in ``state``, or ``MISSING``."""
    if isinstance(state, Mapping) and key in state:
        return state[key]
    parts = key.split(".")
    found = _walk(state, parts)
    if found is MISSING and len(parts) > 1:
        found = _walk(state, parts[1:])
    return found
