"""What ``racefree explore`` / ``replay`` / ``stress`` need beyond the API: loading a
workflow by name and a progress bar (rich on a terminal, nothing otherwise)."""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

from racefree.errors import UsageError
from racefree.explore._target import load

__all__ = ["load_invariant", "load_workflow", "progress"]


def load_workflow(
    spec: str, argv: list[str] | None = None, *, source: str | None = None, cwd: str | None = None
) -> Callable[[], Any]:
    """``package.module:function`` or ``path/to/script.py:function`` -> the function.

    A script is loaded as :mod:`racefree.explore._target` describes, with ``argv``
    after its name on ``sys.argv``. The function must take no arguments. ``source``
    and ``cwd``: the replay file naming it and the folder its exploration ran in.
    """
    target = load(spec, argv, source=source, cwd=cwd)
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


def load_invariant(
    spec: str, argv: list[str] | None = None, *, source: str | None = None, cwd: str | None = None
) -> Callable[[Any], Any]:
    """An invariant a replay file names by target (a function of the final state)."""
    target = load(spec, argv, role="invariant", source=source, cwd=cwd)
    if not callable(target):
        raise UsageError(
            f"{spec} is not a function; an invariant is a function of the final state."
        )
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
