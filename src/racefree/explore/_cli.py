"""What ``racefree explore`` / ``replay`` / ``stress`` need beyond the API: loading a
workflow by name and a progress bar (rich on a terminal, nothing otherwise)."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from racefree.errors import UsageError

__all__ = ["load_workflow", "progress"]


def load_workflow(spec: str) -> Callable[[], Any]:
    """``package.module:function`` -> the function (a no-argument workflow)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(
            f"{spec!r} does not name a workflow: write package.module:function, for example "
            "racefree.explore.lessons:unsafe."
        )
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # workflows in the current project, as pytest does
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"Cannot import {module_name!r} ({exc}). Run from the directory that contains it, "
            "or install the package."
        ) from None
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise UsageError(f"{module_name} has no {attribute!r}; check the name after ':'.")
    if not callable(target):
        raise UsageError(f"{spec} is not a function; a workflow is a function with no arguments.")
    try:
        inspect.signature(target).bind()
    except TypeError:
        raise UsageError(
            f"{spec} takes arguments; a workflow is a function with no arguments. Wrap it: "
            "def workflow(): return your_function(...)."
        ) from None
    except ValueError:  # no signature to inspect (some builtins): let the run tell
        pass
    return target  # type: ignore[no-any-return]


@contextlib.contextmanager
def progress(label: str, total: int, enabled: bool) -> Iterator[Callable[[int, int, int], None]]:
    """A callback ``(done, total, failures)`` that draws a progress bar on a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total, failures: None
        return
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    except ImportError:  # pragma: no cover - rich is a dependency
        yield lambda done, total, failures: None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failures]} failing"),
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=total, failures=0)

        def update(done: int, total: int, failures: int) -> None:
            if done % 25 == 0 or done == total or failures:
                bar.update(task, completed=done, failures=failures)

        yield update
