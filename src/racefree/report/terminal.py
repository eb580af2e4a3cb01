"""Terminal output for lessons and the demo: plain text that rich colours when it can.

Standard library only at import time. When ``rich`` is installed, output to a
terminal gets colour and boxed tables; piped output, ``NO_COLOR`` and a
missing ``rich`` all give the same plain text.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from racefree.history import Event
from racefree.scenarios.result import ScenarioResult

__all__ = ["Printer", "lanes", "summary_rows"]

SUMMARY_HEADERS = (
    "scenario",
    "wall time",
    "counting",
    "expected",
    "actual",
    "lost updates",
    "consistent",
)


_RANK = {"W": 3, "R": 2, "C": 1}


def _mark(event: Event) -> str:
    if event.op == "call":
        return "C"
    if event.op == "wait":
        return "."
    if event.op in ("acquire", "release"):
        return "-"  # a guard taken or let go: the lane goes on, nothing of the state touched
    if event.version_written is not None or event.op in ("write", "append"):
        return "W"
    return "R" if event.op in ("read", "get") else "*"


def lanes(result: ScenarioResult, width: int = 48) -> list[str]:
    """One line per agent: when it read (R), called the model (C) and wrote (W).

    Dots mark time spent waiting (for a rate-limit slot, say). Shows at a
    glance whether the agents' read-to-write windows overlapped: any overlap is
    a chance for a lost update.
    """
    events = result.history.events
    if not events:
        return []
    end = max(e.time for e in events) or 1.0
    label = max(len(name) for name in result.agents)
    lines = []
    for name in result.agents:
        row = [" "] * (width + 1)
        marks = [(round(e.time / end * width), _mark(e)) for e in events if e.agent == name]
        for (start, mark), (stop, _) in itertools.pairwise(marks):
            for column in range(start, stop):
                row[column] = "." if mark == "." else "-"
        for column, mark in marks:
            if _RANK.get(mark, 0) >= _RANK.get(row[column], 0):  # W, then R, show through
                row[column] = mark
        fate = ""
        if result.lost_agents or result.lost_updates:
            fate = "  lost" if name in result.lost_agents else "  kept"
        lines.append(f"{name:<{label}} |{''.join(row)}|{fate}".rstrip())
    lines.append(f"{'':<{label}}  0 s{'':{width - 8}}{end:6.2f} s")
    return lines


_MEANINGS = (
    ("R", "R = reads the shared history"),
    ("C", "C = calls the model"),
    ("W", "W = writes it"),
    (".", ". = waits"),
)


def _legend(drawn: list[str]) -> str:
    """Explain the marks that ``lanes`` actually drew, and only those."""
    rows = "".join(line.split("|")[1] for line in drawn[:-1] if "|" in line)
    return ", ".join(text for mark, text in _MEANINGS if mark in rows)


def summary_rows(results: Sequence[ScenarioResult]) -> list[tuple[str, ...]]:
    """The demo's summary table as rows of text, one per result."""
    rows: list[tuple[str, ...]] = []
    for result in results:
        rows.append(
            (
                result.title or result.scenario,
                f"{result.wall_seconds:.2f} s",
                result.measure.replace("_", " "),
                f"{result.expected[result.measure]:,}",
                f"{result.actual[result.measure]:,}",
                str(result.lost_updates),
                "yes" if result.consistent else "NO",
            )
        )
    return rows


class Printer:
    """Writes headings, lines and tables; through rich when it is installed and on a terminal."""

    def __init__(self, file: TextIO | None = None) -> None:
        self._file = file if file is not None else sys.stdout
        self._console: Any = None
        if not (hasattr(self._file, "isatty") and self._file.isatty()):
            return  # piped or redirected: plain text that any reader or tool can take
        try:
            from rich.console import Console
        except ImportError:
            return
        self._console = Console(file=self._file, highlight=False, soft_wrap=True)

    def line(self, text: str = "", style: str | None = None) -> None:
        """One line of text; ``style`` (e.g. "red", "bold green") colours it where possible."""
        if self._console is not None:
            from rich.text import Text

            self._console.print(Text(text, style=style or ""))
        else:
            print(text, file=self._file)

    def heading(self, text: str) -> None:
        """A section heading."""
        self.line()
        self.line(text, "bold")
        self.line("=" * len(text), "bold")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[str]], *, bad_column: int = -1
    ) -> None:
        """A plain-text table; rows whose ``bad_column`` cell is "NO" are shown in red."""
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        lines = [headers, ["-" * w for w in widths], *rows]
        for number, cells in enumerate(lines):
            text = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            bad = number >= 2 and 0 <= bad_column < len(cells) and cells[bad_column] == "NO"
            self.line(text, "red" if bad else ("bold" if number == 0 else None))

    def counts(self, result: ScenarioResult) -> None:
        """Expected against actual for every measured quantity."""
        rows = []
        for key, want in result.expected.items():
            got = result.actual.get(key)
            rows.append(
                (key.replace("_", " "), f"{want:,}", f"{got:,}", "ok" if got == want else "NO")
            )
        self.table(("quantity", "expected", "actual", "match"), rows, bad_column=3)


def show_flow(printer: Printer, result: ScenarioResult) -> None:
    """A lesson flow run: lanes, the story, expected against actual, the verdict."""
    printer.line()
    drawn = lanes(result)
    printer.line(f"Timeline ({_legend(drawn)}):", "bold")
    for text in drawn:
        printer.line("  " + text)
    printer.line()
    printer.line("Step by step:", "bold")
    for text in result.story:
        printer.line("  " + text)
    printer.line()
    if result.latencies:
        calls = ", ".join(f"{name} {s:.2f} s" for name, s in result.latencies.items())
        printer.line(f"Model calls: {calls}.")
    printer.counts(result)
    printer.line()
    if result.consistent:
        printer.line(
            f"Consistent: all {len(result.agents)} agents' work is in the shared state.",
            "bold green",
        )
    else:
        printer.line(
            f"Inconsistent: the work of {', '.join(result.lost_agents)} is missing "
            f"({result.lost_updates} lost update(s)).",
            "bold red",
        )


def _brief(state: dict[str, Any], width: int = 110) -> str:
    """A state as one line of JSON, cut to ``width`` characters."""
    text = json.dumps(state, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 3] + "..."


def show_forced(printer: Printer, result: ScenarioResult) -> None:
    """One forced interleaving: title, before/after, the story, the verdict."""
    printer.heading(result.title)
    if result.initial_state:
        printer.line(f"  before: {_brief(result.initial_state)}")
    for text in result.story:
        printer.line("  " + text)
    if result.initial_state:
        printer.line(f"  after:  {_brief(result.final_state)}")
    want, got = result.expected[result.measure], result.actual[result.measure]
    measure = result.measure.replace("_", " ")
    style = "bold green" if result.consistent else "bold red"
    printer.line(
        f"  -> expected {want:,} {measure}, got {got:,}; lost updates: {result.lost_updates}",
        style,
    )


def _verdict(result: ScenarioResult) -> str:
    if result.consistent:
        return "nothing lost"
    return f"{result.lost_updates} update(s) LOST ({', '.join(result.lost_agents)})"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def show_demo(printer: Printer, run: Any) -> None:
    """The whole demo: one short section per scenario, then the summary table."""
    names = run.sequential.agents
    printer.line(
        f"racefree demo: lesson 01 with {len(names)} agents ({', '.join(names)}), "
        f"model calls 1-3 s x {run.time_scale}, seed {run.seed}",
        "bold",
    )
    printer.heading("1. One at a time (broken_sequential.py)")
    for text in lanes(run.sequential):
        printer.line("  " + text)
    printer.line(f"  {run.sequential.timing()} {_sentence(_verdict(run.sequential))}")
    printer.heading(f"2. In parallel, unsafe (broken_parallel.py), {len(run.parallel)} runs")
    for text in lanes(run.parallel[0]):
        printer.line("  " + text)
    for result, kept in zip(run.parallel, run.outcomes, strict=True):
        lost = f"lost {', '.join(result.lost_agents)}" if result.lost_agents else "lost nothing"
        printer.line(
            f"  seed {result.seed}: kept {', '.join(kept)}; {lost}  ({result.wall_seconds:.2f} s)",
            "red" if result.lost_updates else None,
        )
    losing = sum(1 for result in run.parallel if result.lost_agents)
    printer.line(
        f"  {run.distinct_parallel_outcomes} different outcome(s) in {len(run.parallel)} runs, "
        f"{losing} of them losing work: whoever writes last wins, and the others' work is gone."
        if losing
        else f"  None of the {len(run.parallel)} runs lost work: at this time scale the agents "
        "finished before the others read. Try a larger --time-scale."
    )
    printer.heading("3. In parallel, locked (simple_fix.py)")
    for text in lanes(run.fixed):
        printer.line("  " + text)
    printer.line(f"  {run.fixed.timing()} {_sentence(_verdict(run.fixed))}")
    printer.heading("4. Forced interleavings (race_condition_demo.py)")
    for result in run.forced:
        printer.line(f"  {result.title}: {result.story[-1]}")
    printer.heading("Summary")
    printer.table(SUMMARY_HEADERS, summary_rows(run.results), bad_column=6)
    printer.line("Why, and how to spot it in your own code: examples/01-race-conditions/README.md")
