"""The course's scripts, found, loaded and measured: the one copy of the lesson agents.

The agents live in the lesson scripts (``examples/NN-topic/*.py``), where a
reader sees them. ``racefree demo``, the explorer's lesson workflows and the
tests run those very functions: :func:`load` imports a script by its path,
from the clone's ``examples/`` folder or, in an installed wheel, from
``racefree/_course`` (the wheel ships the course there; ``pyproject.toml``).

A *flow* script defines ``new_session()`` (the shared state) and
``run(names, session, llm)`` (starts the agents and waits for them; it may be
``async``, may take ``say`` to print progress, and a script whose state lives
in a store defines ``run(names, llm, history)`` and returns the final
session instead). :func:`flow` runs it with the session wrapped by
``racefree.track`` and the model recording its calls, so every read, write
and call becomes an event while the agents' code stays plain Python; then it
measures the run into a :class:`ScenarioResult`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from racefree.errors import UsageError
from racefree.history import Event, History
from racefree.scenarios.llm import SimulatedLLM
from racefree.scenarios.result import ScenarioResult

__all__ = [
    "HISTORY",
    "course_dir",
    "flow",
    "flow_script",
    "load",
    "new_seed",
    "overlap",
    "play_script",
    "run_script",
    "watched",
]

HISTORY = "conversation_history"

_HERE = Path(__file__).resolve()


def course_dir() -> Path:
    """The folder holding ``01-race-conditions/`` ...: in the wheel, else in the clone."""
    for folder in (_HERE.parents[1] / "_course", _HERE.parents[3] / "examples"):
        if (folder / "01-race-conditions").is_dir():
            return folder
    raise UsageError(
        "The lesson scripts are missing: neither racefree/_course (an installed wheel) nor "
        "examples/ next to src/ (a clone) holds them. Reinstall racefree, or run from a clone."
    )


_loaded: dict[tuple[str, str], ModuleType] = {}


def load(lesson: str, script: str, *, importable: bool = False) -> ModuleType:
    """Import ``<course>/<lesson>/<script>.py`` by path (once), as a learner's script.

    The script's own ``_lesson.py`` is what its ``import _lesson`` gets, as
    when it runs from its folder; the module runs without ``__main__``, so
    only its definitions happen. ``importable`` is for scripts whose agents
    run in spawned processes (lesson 05): the module is named after its file
    and its folder stays on ``sys.path``, which a spawned child inherits, so
    the child can import the agent function it is handed.
    """
    cached = _loaded.get((lesson, script))
    if cached is not None:
        return cached
    folder = course_dir() / lesson
    if importable:
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
        module = importlib.import_module(script)
        _loaded[(lesson, script)] = module
        return module
    path = folder / f"{script}.py"
    if not path.is_file():
        raise UsageError(f"There is no lesson script {lesson}/{script}.py in {folder.parent}.")
    previous = sys.modules.get("_lesson")
    try:
        sys.modules["_lesson"] = _import(folder / "_lesson.py", "_lesson")
        name = f"racefree_course_{lesson.split('-')[0]}_{script}"
        module = _import(path, name)
    finally:
        if previous is None:
            sys.modules.pop("_lesson", None)
        else:
            sys.modules["_lesson"] = previous
    _loaded[(lesson, script)] = module
    return module


def _import(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has both
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def new_seed(seed: int | None) -> int:
    """``seed``, or a fresh random one to report so that the run can be repeated."""
    return seed if seed is not None else random.SystemRandom().randrange(10**6)


# --- Running a flow ---------------------------------------------------------------


def flow(
    run: Callable[..., Any],
    new_session: Callable[[], dict[str, Any]] | None,
    names: list[str],
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    title: str = "",
    say: Callable[[str], None] | None = None,
    model: Callable[[int, float, History], SimulatedLLM] | None = None,
    **options: Any,
) -> ScenarioResult:
    """Run a flow script's ``run`` on a tracked session and measure what it did.

    ``model(seed, time_scale, history)`` makes the simulated model (default
    :class:`SimulatedLLM`); tests pass one that waits for the others.
    """
    played = _play(run, new_session, names, seed, time_scale, say, model, options)
    final, found, llm, history, wall = played
    result = measure(Path(inspect.getfile(run)).stem, title, names, llm, final, history, wall)
    result.extra.update({key: value for key, value in options.items() if key != "say"})
    result.extra.update(found)
    return result


_PARAMETERS: dict[Callable[..., Any], frozenset[str]] = {}


def _parameters(run: Callable[..., Any]) -> frozenset[str]:
    names = _PARAMETERS.get(run)
    if names is None:
        names = _PARAMETERS[run] = frozenset(inspect.signature(run).parameters)
    return names


def _play(
    run: Callable[..., Any],
    new_session: Callable[[], dict[str, Any]] | None,
    names: list[str],
    seed: int | None,
    time_scale: float,
    say: Callable[[str], None] | None,
    model: Callable[[int, float, History], SimulatedLLM] | None,
    options: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], SimulatedLLM, History, float]:
    """Run the flow: (final session, what the script counted, model, history, wall time)."""
    from racefree.track import track

    history = History()
    make = model or (lambda s, scale, h: SimulatedLLM(s, scale, history=h))
    llm = make(new_seed(seed), time_scale, history)
    parameters = _parameters(run)
    if "say" in parameters:
        options = {**options, "say": say or (lambda text: None)}
    raw: dict[str, Any] = new_session() if new_session is not None else {}
    call: Callable[[], Any]
    if "history" in parameters:
        call = lambda: run(names, llm, history, **options)  # noqa: E731
    else:
        session = track(raw, history=history)
        call = lambda: run(names, session, llm, **options)  # noqa: E731
    # An agent thread that fails would otherwise only print, and the run would
    # be measured as if the agent had lost its work: surface the error instead.
    failures: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda failed: failures.append(failed.exc_value or RuntimeError())
    try:
        start = time.perf_counter()
        outcome = asyncio.run(call()) if inspect.iscoroutinefunction(run) else call()
        wall = time.perf_counter() - start
    finally:
        threading.excepthook = previous_hook
    if failures:
        raise failures[0]
    found: dict[str, Any] = {}
    if isinstance(outcome, tuple):  # (final session, what the script counted)
        outcome, found = outcome
    final = outcome if isinstance(outcome, dict) else raw
    return final, found, llm, history, wall


def run_script(lesson: str, script: str, names: list[str], **kwargs: Any) -> ScenarioResult:
    """Load a flow script and :func:`flow` it: what ``racefree demo`` runs."""
    module = load(lesson, script)
    return flow(module.run, getattr(module, "new_session", None), names, **kwargs)


def play_script(
    lesson: str, script: str, names: list[str], *, seed: int | None = None, **options: Any
) -> dict[str, Any]:
    """Run a flow script as :func:`run_script` does and return its final session, unmeasured.

    What the explorer's lesson workflows run, thousands of times: measuring a run
    (expected against actual, the story) would cost more than the run itself."""
    module = load(lesson, script)
    run = module.run
    played = _play(run, getattr(module, "new_session", None), names, seed, 1.0, None, None, options)
    return played[0]


def measure(
    scenario: str,
    title: str,
    names: list[str],
    llm: SimulatedLLM,
    session: dict[str, Any],
    history: History,
    wall: float,
) -> ScenarioResult:
    """Expected against actual, who lost work, the story, how many calls ran at once."""
    # A store keeps the counters as keys of their own; a dict session nests them.
    metadata = session.get("metadata") or {
        "total_tokens": session.get("total_tokens") or 0,
        "completed": session.get("completed") or 0,
    }
    expected = {
        "history_entries": len(names),
        "results": len(names),
        "completed": len(names),
        "total_tokens": sum(llm.plan(name).tokens for name in names),
    }
    actual = {
        "history_entries": len(session.get(HISTORY, [])),
        "results": len(session.get("agent_results", {})),
        "completed": metadata.get("completed", 0),
        "total_tokens": metadata.get("total_tokens", 0),
    }
    kept = {entry["agent"] for entry in session.get(HISTORY, [])}
    lost = [name for name in names if name not in kept]
    events = [e for e in history.events if e.agent in names]
    return ScenarioResult(
        scenario=scenario,
        title=title or scenario,
        agents=names,
        seed=llm.seed,
        time_scale=llm.time_scale,
        wall_seconds=wall,
        expected=expected,
        actual=actual,
        measure="history_entries",
        lost_updates=len(lost),
        lost_agents=lost,
        consistent=actual == expected,
        latencies={name: llm.plan(name).latency for name in names},
        final_state=session,
        story=story(events, lost),
        history=history,
        extra={"calls_at_once": overlap(events)},
    )


def overlap(events: list[Event]) -> int:
    """The most model calls in flight at once, from the recorded events.

    A call lasts from its ``call`` event to the calling agent's next event
    (the step it takes with the reply); ``seq`` order is the order of effects,
    so this counts what the run did, whatever the machine's speed.
    """
    busy: set[str] = set()
    most = 0
    for event in events:
        if event.op == "call":
            busy.add(event.agent)
            most = max(most, len(busy))
        else:
            busy.discard(event.agent)
    return most


_HISTORY_KEYS = (HISTORY, "session")


def story(events: list[Event], lost: list[str]) -> list[str]:
    """The reads and writes of the history, in order, in plain words; then what was lost."""
    lines: list[str] = []
    seen: dict[str, int] = {}  # agent -> the version of the history it last read
    previous: tuple[str, str, int | None] | None = None
    for event in events:
        if event.key not in _HISTORY_KEYS and event.op != "apply":
            continue
        text = _step(event, seen)
        if text is None or (event.agent, event.op, event.version_read) == previous:
            continue  # one copy may read the list twice (its length, then its items)
        previous = (event.agent, event.op, event.version_read)
        lines.append(f"t={event.time:6.3f}s  {event.agent} {text}")
    writes = [e for e in events if e.op in ("write", "set") and e.key in _HISTORY_KEYS]
    if lost and writes:
        last = writes[-1]
        lines.append(
            f"Lost: {', '.join(lost)}. {last.agent} wrote last, from its copy of "
            f"v{seen.get(last.agent, 0)}: whatever was not in that copy is gone."
        )
    elif lost:
        lines.append(f"Lost: {', '.join(lost)}.")
    elif lines:
        lines.append("Nothing lost: every write started from the version the one before it made.")
    return lines


def _step(event: Event, seen: dict[str, int]) -> str | None:
    op, read, written = event.op, event.version_read, event.version_written
    if op in ("read", "get") and event.version_written is None:
        seen[event.agent] = read or 0
        return f"reads the history at v{read}"
    if op in ("write", "set"):
        copy = seen.get(event.agent, 0)
        if read is None or read == copy:
            return f"writes v{written} (its copy of v{copy} plus its entry)"
        return (
            f"writes v{written}: its copy of v{copy} plus its entry, over v{read} "
            f"(what changed since v{copy} is gone)"
        )
    if op == "append":
        return f"appends its entry in one step: v{read} -> v{written}"
    if op == "apply":
        return "hands the store its delta, merged in one atomic step"
    if op == "compare_and_set":
        return f"saves its copy of v{read}: the session is still at v{read}, now v{written}"
    if op == "conflict":
        return f"is refused saving its copy of v{read}: the session moved on; it redoes its update"
    return None


# --- Guards the checker can see ---------------------------------------------------


class Watched:
    """A lock or semaphore that records, into a tracked session's history, when it is used.

    ``async with`` / ``with`` it as the object it wraps. Before waiting for
    it, a ``wait`` event (the timeline's dots); once it is held, ``acquire``
    of ``key`` and, just before letting go, ``release`` of ``key``: so the
    checker knows the guard was held from the read to the write (see
    ``docs/history.md``, op ``acquire``). A semaphore lets several agents in
    at once, so it is not a guard: give ``key=None`` and only waits are
    recorded.
    """

    def __init__(self, inner: Any, session: Any, key: str | None) -> None:
        from racefree.track import history_of

        self._inner = inner
        self._history = history_of(session)
        self._key = key

    def _waiting(self) -> None:
        if self._inner.locked():  # only a real wait is drawn as one
            self._history.record("wait", self._key)

    def _held(self) -> None:
        if self._key is not None:
            self._history.record("acquire", self._key)

    def _letting_go(self) -> None:
        if self._key is not None:
            self._history.record("release", self._key)

    async def __aenter__(self) -> None:
        self._waiting()
        await self._inner.acquire()
        self._held()

    async def __aexit__(self, *exc_info: object) -> None:
        self._letting_go()
        self._inner.release()

    def __enter__(self) -> None:
        self._waiting()
        self._inner.acquire()
        self._held()

    def __exit__(self, *exc_info: object) -> None:
        self._letting_go()
        self._inner.release()


def watched(inner: Any, session: Any, key: str | None = "lock") -> Watched:
    """``inner`` (a lock, or a semaphore with ``key=None``) recording its use for the checker."""
    return Watched(inner, session, key)


# --- The script's command line -----------------------------------------------------


def flow_script(
    description: str | None,
    run: Callable[..., Any],
    new_session: Callable[[], dict[str, Any]] | None,
    *,
    intro: Callable[[Any], str],
    closing: Callable[[ScenarioResult], list[str]],
    min_agents: int = 1,
    extra: dict[str, tuple[int, str]] | None = None,
    json_extra: Callable[[ScenarioResult], dict[str, Any]] | None = None,
) -> ScenarioResult | None:
    """The body of a flow script: parse the options, run, print prose or JSON.

    ``intro(args)`` says what is about to run; ``closing(result)`` gives the
    lines printed after the timeline, story and counts. ``extra`` options
    (see ``parse_lesson_args``) are passed to ``run`` as keyword arguments;
    ``json_extra(result)`` adds keys to the ``--json`` object.
    """
    from racefree.report.terminal import Printer, show_flow
    from racefree.scenarios.script import parse_lesson_args, print_json

    args = parse_lesson_args(description, min_agents=min_agents, extra=extra, history=True)
    out = Printer()
    start = time.perf_counter()

    def say(text: str) -> None:
        out.line(f"  {time.perf_counter() - start:6.2f} s  {text}")

    if not args.json:
        out.line(intro(args))
        out.line("Running...")
    result = flow(
        run,
        new_session,
        args.names,
        seed=args.seed,
        time_scale=args.time_scale,
        say=None if args.json else say,
        **dict[str, Any](args.extra),
    )
    if args.history is not None:
        result.history.to_jsonl(args.history)
    if args.json:
        print_json({**result.to_json(), **(json_extra(result) if json_extra else {})})
        return result
    show_flow(out, result)
    for text in closing(result):
        out.line(text)
    if args.history is not None:
        out.line(
            f"History saved to {args.history}: explain it with `racefree check {args.history}`."
        )
    return result


def forced_script(
    description: str | None,
    cases: list[tuple[str, Callable[..., None], dict[str, Any]]],
    appends: Callable[[list[int], int], None],
) -> None:
    """The body of ``race_condition_demo.py``: run every forced case, then the appends."""
    from types import SimpleNamespace

    from racefree.report.terminal import Printer, show_forced
    from racefree.scenarios import lesson01
    from racefree.scenarios.script import parse_lesson_args, print_json

    # The order is forced, so latency changes nothing here but the run time:
    # the default scale is 0.1 (0.1 to 0.3 s per model call).
    args = parse_lesson_args(description, min_agents=2, default_time_scale=0.1)
    seed = args.seed if args.seed is not None else 0
    script = SimpleNamespace(CASES=cases, appends=appends)
    results = lesson01.run_race_condition_demo(
        args.names,
        seed=seed,
        time_scale=args.time_scale,
        module=script,  # type: ignore[arg-type]
    )
    if args.json:
        print_json(lesson01.combine("race_condition_demo", results))
        return
    out = Printer()
    for result in results:
        show_forced(out, result)
    out.line()
    out.line(
        "(a) to (c) have one shape: read, do something slow, then act on what was read. "
        "(d) is an update in two steps that belong together. A lock held from the first step "
        "to the last, or one atomic operation that does all of it, prevents all four "
        "(see simple_fix.py and lesson 03)."
    )
