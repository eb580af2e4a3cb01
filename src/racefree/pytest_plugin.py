"""The racefree pytest plugin: explore a test under many schedules.

Registered as a ``pytest11`` entry point, so installing racefree enables it.
Mark a test and its body becomes the explored workflow: every agent it
starts (threads, thread pools, asyncio tasks) is scheduled by the explorer,
and a failed assertion, an exception or a checker error in any run fails the
test with the report and the exact command that replays the failing run::

    @pytest.mark.racefree(schedules=500, strategy="pct", seed=0)
    def test_agents_share_the_session():
        session = run_my_agents()
        assert len(session["history"]) == 3

Options: ``--racefree-replay SCHEDULE`` runs the selected marked tests on one
schedule (what the failure report tells you to paste);
``--racefree-schedules N`` overrides every marker's ``schedules``;
``--racefree-workers N`` and ``--racefree-shard I/N`` split each exploration
over processes or CI jobs, as ``workers=`` and ``shard=`` in the marker do
(a test that runs in workers takes no fixtures: each worker imports the
test's module and calls the test itself; with ``--racefree-workers`` a test
that takes arguments or is a method runs in this process instead). Fixtures are created once per
test, not once per schedule; a fixture's value that is plain data (built-in
containers, a dataclass, a pydantic model) is given to every schedule as a
fresh deep copy of what the fixture made, so no run starts from what an
earlier one left; other values (``tmp_path``, ``monkeypatch``, a connection,
a tracked object) are shared by all the schedules.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import inspect
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from racefree.errors import UsageError
from racefree.explore import Schedule, explore

__all__ = ["pytest_addoption", "pytest_configure", "pytest_pyfunc_call"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("racefree", "racefree race explorer")
    group.addoption(
        "--racefree-replay",
        metavar="SCHEDULE",
        default=None,
        help="run tests marked racefree on this one schedule (from a failure report)",
    )
    group.addoption(
        "--racefree-schedules",
        metavar="N",
        type=int,
        default=None,
        help="how many schedules each test marked racefree explores (overrides the marker)",
    )
    group.addoption(
        "--racefree-workers",
        metavar="N",
        type=int,
        default=None,
        help="split each racefree exploration over N processes (overrides the marker)",
    )
    group.addoption(
        "--racefree-shard",
        metavar="I/N",
        default=None,
        help="run share I of N of each racefree exploration (one of N CI jobs)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "racefree(schedules=1000, strategy='auto', seed=0, depth=3, latency='any', "
        "invariants=(), check=True, workers=1, shard=None): run the test under the race "
        "explorer; a failing schedule fails the test and prints the command that replays it.",
    )


_PLAIN = (dict, list, set, frozenset, tuple, collections.deque)


def _fresh_copier(value: Any) -> Callable[[], Any] | None:
    """How to give each run its own copy of a fixture's value, or None to share it.

    Plain data (containers of exactly the built-in types, dataclass instances,
    pydantic models) is state a test means to start from: a run that appends to
    it must not hand its appends to the next schedule. Anything else (a
    ``tmp_path``, ``monkeypatch``, a connection, a tracked object) is shared."""
    if type(value) in _PLAIN or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        try:
            pristine = copy.deepcopy(value)
        except Exception:  # something inside cannot be copied (a lock): share it
            return None
        return lambda: copy.deepcopy(pristine)
    model_copy = getattr(value, "model_copy", None)
    if callable(model_copy) and hasattr(type(value), "model_fields"):  # pydantic v2
        pristine = model_copy(deep=True)
        return lambda: pristine.model_copy(deep=True)
    return None


def _workflow(function: Any, funcargs: dict[str, Any]) -> Any:
    copiers = {name: _fresh_copier(value) for name, value in funcargs.items()}

    def arguments() -> dict[str, Any]:
        return {
            name: value if copiers[name] is None else copiers[name]()  # type: ignore[misc]
            for name, value in funcargs.items()
        }

    if inspect.iscoroutinefunction(function):

        async def run_async() -> Any:
            return await function(**arguments())

        workflow: Any = run_async
    else:

        def run() -> Any:
            return function(**arguments())

        workflow = run
    functools.update_wrapper(workflow, function)
    return workflow


def _test_id(item: pytest.Function) -> str:
    """The test's id as pytest takes it from the folder pytest was started in.

    A node id is relative to the rootdir; started elsewhere, pytest resolves its
    arguments against the current folder, so the file part is made relative to it.
    """
    file, sep, rest = item.nodeid.partition("::")
    start = item.config.invocation_params.dir
    try:
        file = os.path.relpath(item.config.rootpath / file, start)
    except ValueError:  # another drive (Windows): only the absolute path finds it
        file = str(item.config.rootpath / file)
    return f"{Path(file).as_posix()}{sep}{rest}"


def _target_of(item: pytest.Function, funcargs: dict[str, Any]) -> str:
    """What a worker process imports to run the test itself: its module and name."""
    function = item.obj
    if funcargs:
        raise UsageError(
            f"{item.nodeid} takes arguments (fixtures or parameters: {', '.join(funcargs)}), "
            "and workers run the test "
            "in other processes, which import its module and call the test with no "
            "arguments: make the state inside the test body, or drop workers= and shard=."
        )
    if "." in getattr(function, "__qualname__", "."):
        raise UsageError(
            f"{item.nodeid} is not a function at the top level of its module, and workers run "
            "the test in other processes, which import it by name and call it with no "
            "arguments: define it at module level, or drop workers= and shard=."
        )
    return f"{function.__module__}:{function.__qualname__}"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("racefree")
    if marker is None:
        return None
    options = dict(marker.kwargs)
    config = pyfuncitem.config
    schedules = config.getoption("racefree_schedules")
    if schedules is not None:
        options["schedules"] = schedules
    from_command_line = set()
    for option in ("workers", "shard"):
        given = config.getoption(f"racefree_{option}")
        if given is not None:
            options[option] = given
            from_command_line.add(option)
    replay = config.getoption("racefree_replay")
    names = pyfuncitem._fixtureinfo.argnames
    funcargs = {name: pyfuncitem.funcargs[name] for name in names}
    test = _test_id(pyfuncitem)

    def command(path: Path | None, schedule: Schedule) -> str:
        quoted = shlex.quote(test) if "'" in test else f"'{test}'"  # always quoted: [ids]
        return f"pytest {quoted} --racefree-replay {schedule.encode()}"

    # The test body is no module-level function a replay file could name: the pytest
    # line above is the replay, so no file is written.
    options.setdefault("save_dir", None)
    if replay is not None:
        options.pop("schedules", None)
        options.pop("workers", None)
        options.pop("shard", None)
        options["replay"] = replay
    refused = ""
    try:
        if options.get("workers", 1) != 1 or options.get("shard") is not None:
            try:
                options["target"] = _target_of(pyfuncitem, funcargs)
            except UsageError:
                if options.get("shard") is not None or "workers" not in from_command_line:
                    raise
                # --racefree-workers is for every marked test: one that other processes
                # cannot run by name (fixtures, a parameter, a method) runs in this one.
                options["workers"] = 1
        result = explore(_workflow(pyfuncitem.obj, funcargs), command=command, **options)
    except UsageError as exc:  # a sentence that says what to do, not a traceback
        refused = str(exc)
        for option in from_command_line:
            refused = refused.replace(f"{option}=", f"--racefree-{option}")
    if refused:
        pytest.fail(f"racefree: {refused}", pytrace=False)
    if not result.ok:
        # The report is the whole story (the failing check, the checker's findings, the
        # timeline, the command to paste): no traceback through racefree's own code.
        pytest.fail(result.report(), pytrace=False)
    return True
