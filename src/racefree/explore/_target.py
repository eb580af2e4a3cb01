"""Naming a function so that another process can load it again, and loading it.

A replay file names its workflow and invariants by *target*: ``package.module:qualname``
for a function in an importable module, or ``path/to/script.py:qualname`` for one
defined in a script run as ``python script.py`` (the path relative to the folder the
exploration ran in). :func:`locate` gives an object's target, or raises
:class:`Unreloadable` with the reason (a lambda, a nested function, a name that now
holds another object); :func:`load` turns a target back into the object.

A script is loaded the way ``python script.py`` runs it, except for its name: its
folder first on ``sys.path``, ``sys.argv`` as it was, ``__file__`` set, and
``__name__`` set to ``__racefree_script__`` so that an ``if __name__ == "__main__":``
block does not run. An ``explore()`` call at the script's top level stops the
loading there (the functions it explores are defined by then): loading a script to
replay one of its runs must not start a new exploration.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
import types
from pathlib import Path
from typing import Any

from racefree.errors import UsageError

__all__ = [
    "SCRIPT_MODULE",
    "Unreloadable",
    "is_script",
    "load",
    "locate",
    "same_place",
    "stop_if_loading",
]

SCRIPT_MODULE = "__racefree_script__"

# module name -> (target prefix, argv) of every script loaded by this process
_scripts: dict[str, tuple[str, list[str]]] = {}
_loading: list[str] = []


class Unreloadable(Exception):
    """An object that no other process can find by name; the message says why, as a
    predicate ("is a lambda") to follow the object's name."""


class _StopLoading(BaseException):
    """Raised by ``explore()`` at a script's top level while the script is being loaded.

    A BaseException so that the script's own ``except Exception`` does not catch it.
    """


def stop_if_loading() -> None:
    """Called first by ``explore()``: end the loading of a script at its exploration."""
    if _loading:
        raise _StopLoading


def is_script(prefix: str) -> bool:
    """Whether the part before ':' of a target is a script path rather than a module."""
    return prefix.endswith(".py") or "/" in prefix or os.sep in prefix


def same_place(target: str, cwd: str | None = None) -> str:
    """``target`` with a script path made absolute (against ``cwd``, default the current
    folder), so that targets recorded in another folder compare equal."""
    prefix, _, qualname = target.rpartition(":")
    if not is_script(prefix):
        return target
    return f"{(Path(cwd or Path.cwd()) / prefix).resolve().as_posix()}:{qualname}"


def _script_prefix(file: str) -> str:
    path = Path(file).resolve()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:  # outside the current folder: only the absolute path finds it
        return path.as_posix()


def _is_main_block(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    sides = [node.test.left, *node.test.comparators]
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in sides) and any(
        isinstance(n, ast.Constant) and n.value == "__main__" for n in sides
    )


def _bound(nodes: list[ast.stmt]) -> set[str]:
    """Names the statements bind at module level (not inside functions or classes)."""
    names: set[str] = set()
    for node in nodes:
        for child in ast.walk(node) if not isinstance(node, ast.ClassDef) else [node]:
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(child.name)
            elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif isinstance(child, ast.alias):
                names.add((child.asname or child.name).split(".")[0])
    return names


def _only_under_main_block(file: str, name: str) -> bool:
    """Whether a script binds ``name`` only inside ``if __name__ == "__main__":``, which a
    replay does not run (so the function would not be found there)."""
    try:
        tree = ast.parse(Path(file).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return False  # cannot tell: the replay will say so if the name is missing
    main = [n for n in tree.body if _is_main_block(n)]
    rest = [n for n in tree.body if not _is_main_block(n)]
    return name in _bound(main) and name not in _bound(rest)


def locate(obj: Any) -> tuple[str, list[str]]:
    """``(target, argv)`` that :func:`load` turns back into ``obj`` in another process.

    ``argv`` is what followed the script on its command line (scripts only; else
    empty). Raises :class:`Unreloadable` saying why when there is no such name.
    """
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        raise Unreloadable("is not a def (a functools.partial, or a callable object)")
    if "<lambda>" in qualname:
        raise Unreloadable("is a lambda")
    if "<locals>" in qualname:
        outer = qualname.rsplit(".<locals>", 1)[0].rsplit("<locals>.", 1)[-1]
        raise Unreloadable(f"is defined inside {outer}()")
    owner = getattr(obj, "__self__", None)
    if inspect.ismethod(obj) and not isinstance(owner, type):
        raise Unreloadable(f"is a method bound to one {type(owner).__name__} object")
    module = sys.modules.get(module_name)
    argv: list[str] = []
    if module_name in _scripts:
        prefix, argv = _scripts[module_name]
    elif module_name == "__main__":
        spec = getattr(module, "__spec__", None)
        file = getattr(module, "__file__", None)
        if spec is not None and spec.name not in ("", "__main__"):  # python -m pkg.module
            prefix = spec.name  # importing it runs the module without its main block
        elif isinstance(file, str):
            if _only_under_main_block(file, qualname.split(".")[0]):
                raise Unreloadable(
                    'is defined under if __name__ == "__main__":, a block a replay does not run'
                )
            prefix = _script_prefix(file)
            started = sys.argv[0] if sys.argv else ""
            if started and Path(started).resolve() == Path(file).resolve():
                argv = list(sys.argv[1:])
        else:
            raise Unreloadable("is defined in an interactive session")
    else:
        prefix = module_name
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is None or (found is not obj and found != obj):  # bound methods are equal
        raise Unreloadable(
            f"is not what {module_name}.{qualname} holds (the name was rebound, or the "
            "function is wrapped)"
        )
    return f"{prefix}:{qualname}", argv


def load(
    target: str,
    argv: list[str] | None = None,
    *,
    role: str = "workflow",
    source: str | None = None,
    cwd: str | None = None,
) -> Any:
    """The object a target names; a target that cannot be loaded raises ``UsageError``.

    ``role`` ("workflow", "invariant") and ``source`` (the replay file naming the
    target, if any) make the message say what was being loaded and what to do;
    ``cwd`` is the folder the exploration ran in, for a script path relative to it.
    """
    prefix, _, qualname = target.rpartition(":")
    if not prefix or not qualname:
        raise UsageError(
            f"{target!r} does not name a {role}: write package.module:function or "
            "path/to/script.py:function, for example racefree.explore.lessons:unsafe."
        )
    what = f"the {role} that {source} names" if source else f"the {role}"
    if is_script(prefix):
        module = _load_script(prefix, argv or [], what, cwd)
    else:
        module = _import(prefix, what)
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            fix = "check the name after ':'"
            if source:
                fix = "re-run the exploration to record a fresh replay file if it was renamed"
            if is_script(prefix):
                renamed = f", or {fix}" if source else ""
                raise UsageError(
                    f"{prefix} defines no {qualname!r} before its first explore() call, "
                    f'outside its if __name__ == "__main__": block, {what}: define it at '
                    f"the script's top level, above any explore() call there{renamed}."
                )
            raise UsageError(f"{prefix} has no {qualname!r}, {what}: {fix}.")
    return found


def _import(name: str, what: str) -> types.ModuleType:
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # modules of the current project, as pytest does
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UsageError(
            f"Cannot import {name!r}, the module of {what} ({exc}): run from the folder "
            "that contains it, or install its package."
        ) from None


def _load_script(prefix: str, argv: list[str], what: str, cwd: str | None) -> types.ModuleType:
    path = Path(prefix)
    if not path.is_file():
        where = f"from {cwd}, where the exploration ran" if cwd else "from the folder it is in"
        raise UsageError(
            f"No script at {prefix} in {Path.cwd()}, the script of {what}: run racefree "
            f"{where} (the path is relative to it)."
        )
    source = path.read_bytes()
    module = types.ModuleType(SCRIPT_MODULE)
    module.__file__ = str(path.resolve())
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # what python script.py puts first
    saved_argv = sys.argv
    sys.modules[SCRIPT_MODULE] = module  # dataclasses and pickle look the module up
    _scripts[SCRIPT_MODULE] = (prefix, list(argv))
    sys.argv = [prefix, *argv]
    _loading.append(prefix)
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except _StopLoading:
        pass  # its explore() call: everything it explores is defined by now
    except SystemExit as exc:
        raise UsageError(
            f"{prefix} exited (status {exc.code}) while racefree loaded it to find {what}: "
            "give it the arguments it was started with, or put its work under "
            'if __name__ == "__main__":.'
        ) from None
    except Exception as exc:
        raise UsageError(
            f"{prefix} raised {type(exc).__name__} ({exc}) while racefree loaded it to find "
            f"{what}: fix the script, or put its work under "
            'if __name__ == "__main__":.'
        ) from None
    finally:
        _loading.pop()
        sys.argv = saved_argv
    return module
