"""HTML reports: the same timelines, stories and tables as the terminal, in one file.

A report is one self-contained HTML document (inline CSS and SVG, no script,
nothing fetched), so it can be attached to a bug report or opened from a CI
artifact. Standard library only. Everything taken from a run (agent names,
keys, values) is escaped.

Two reports: :func:`demo_html` for ``racefree demo --html`` and
:func:`check_html` for ``racefree check --html``. Both draw agent lanes with
:func:`svg_lanes`, the SVG form of :func:`racefree.report.terminal.lanes`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from racefree.history import Event, History
from racefree.report.terminal import SUMMARY_HEADERS, summary_rows
from racefree.scenarios.result import ScenarioResult

if TYPE_CHECKING:
    from racefree.check.findings import Report
    from racefree.scenarios.demo import DemoRun

__all__ = ["check_html", "demo_html", "svg_lanes"]

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem;
       padding: 0 1rem; color: #1b1f24; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0; }
th, td { padding: .25rem .7rem; border-bottom: 1px solid #d0d7de; text-align: left; }
tr.bad td { color: #b42318; font-weight: 600; }
ol.story { padding-left: 1.4rem; } ol.story li { margin: .15rem 0; }
.verdict.ok { color: #1a7f37; font-weight: 600; } .verdict.bad { color: #b42318; font-weight: 600; }
.finding { border-left: 4px solid #b42318; padding: .2rem 1rem; margin: 1rem 0; }
.finding.warning { border-color: #bf8700; }
svg.lanes { display: block; margin: .6rem 0; max-width: 100%; height: auto; }
svg.lanes text { font: 13px system-ui, sans-serif; fill: #1b1f24; }
svg.lanes .lane { stroke: #8c959f; stroke-width: 2; }
svg.lanes .lane.lost { stroke: #b42318; }
svg.lanes text.lost { fill: #b42318; font-weight: 600; }
.legend { color: #57606a; font-size: .9rem; }
"""

_DRAW_ORDER = {"wait": 0, "call": 1, "read": 2, "write": 3}
_MARK_FILL = {"read": "#0969da", "call": "#8c959f", "write": "#1a7f37", "wait": "#d0d7de"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _kind(event: Event) -> str:
    if event.op in ("call", "llm", "tool", "sleep", "await"):
        return "call"
    if event.op == "wait":
        return "wait"
    if event.version_written is not None or event.op in ("write", "set", "append", "apply"):
        return "write"
    return "read"


def svg_lanes(
    agents: Sequence[str],
    events: Iterable[Event],
    *,
    lost: Iterable[str] = (),
    width: int = 760,
) -> str:
    """An SVG timeline: one lane per agent, a mark per read, model call and write.

    Each lane runs from the agent's first event to its last; lanes of agents
    in ``lost`` are red and labelled "lost". Times are the events' own.
    """
    mine: dict[str, list[Event]] = {name: [] for name in agents}
    for event in events:
        if event.agent in mine:
            mine[event.agent].append(event)
    everything = [e for lane in mine.values() for e in lane]
    if not everything:
        return ""
    lost_set = set(lost)
    label = 12 + 8 * max(len(name) for name in agents)
    right = 60
    span = max(e.time for e in everything) or 1.0

    def x(t: float) -> float:
        return label + (width - label - right) * (t / span)

    row = 28
    height = row * len(agents) + 30
    parts = [
        f'<svg class="lanes" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="timeline of {len(agents)} agents">'
    ]
    for index, name in enumerate(agents):
        y = 18 + index * row
        is_lost = name in lost_set
        css = ' class="lost"' if is_lost else ""
        parts.append(f'<text x="4" y="{y + 4}"{css}>{_e(name)}</text>')
        lane = mine[name]
        if not lane:
            continue
        start, stop = x(lane[0].time), x(lane[-1].time)
        parts.append(
            f'<line class="lane{" lost" if is_lost else ""}" x1="{start:.1f}" y1="{y}" '
            f'x2="{max(stop, start + 1):.1f}" y2="{y}"><title>{_e(name)}</title></line>'
        )
        # Calls and waits first, so that a read or write at the same instant stays visible.
        for event in sorted(lane, key=lambda e: _DRAW_ORDER[_kind(e)]):
            kind = _kind(event)
            where = f"{event.op} {event.key or ''}".strip()
            parts.append(
                f'<circle class="mark {kind}" cx="{x(event.time):.1f}" cy="{y}" r="5" '
                f'fill="{_MARK_FILL[kind]}"><title>{_e(name)}: {_e(where)} at '
                f"{event.time:.3f} s</title></circle>"
            )
        if is_lost:
            parts.append(f'<text class="lost" x="{width - right + 8}" y="{y + 4}">lost</text>')
    parts.append(
        f'<text x="{label}" y="{height - 4}">0 s</text>'
        f'<text x="{width - right}" y="{height - 4}" text-anchor="end">{span:.2f} s</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


_LEGEND = (
    '<p class="legend">Marks: <span style="color:#0969da">&#9679;</span> read, '
    '<span style="color:#8c959f">&#9679;</span> model call, '
    '<span style="color:#1a7f37">&#9679;</span> write; hover a mark for its time.</p>'
)


def _page(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{_e(title)}</h1>",
            *body,
            "</body></html>",
        ]
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], bad_column: int = -1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        bad = 0 <= bad_column < len(row) and row[bad_column] == "NO"
        cells = "".join(f"<td>{_e(cell)}</td>" for cell in row)
        lines.append(f'<tr class="{"bad" if bad else "ok"}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _verdict(result: ScenarioResult) -> str:
    if result.consistent:
        return '<p class="verdict ok">Consistent: every agent\'s work is in the shared state.</p>'
    who = ", ".join(result.lost_agents) or "some agents"
    return (
        f'<p class="verdict bad">Inconsistent: {result.lost_updates} lost update(s); '
        f"the work of {_e(who)} is missing.</p>"
    )


def _result_section(heading: str, result: ScenarioResult) -> list[str]:
    counts = [
        (key.replace("_", " "), f"{want:,}", f"{result.actual.get(key, 0):,}")
        for key, want in result.expected.items()
    ]
    parts = [f'<section class="result" data-scenario="{_e(result.scenario)}">']
    parts.append(f"<h2>{_e(heading)}</h2>")
    drawn = svg_lanes(result.agents, result.history.events, lost=result.lost_agents)
    if drawn:
        parts += [drawn, _LEGEND]
    if result.story:
        parts.append('<ol class="story">')
        parts += [f"<li>{_e(line)}</li>" for line in result.story]
        parts.append("</ol>")
    parts.append(_table(("quantity", "expected", "actual"), counts))
    parts.append(_verdict(result))
    parts.append("</section>")
    return parts


def demo_html(run: DemoRun) -> str:
    """The whole ``racefree demo`` as one HTML page: every run, then the summary table."""
    names = run.sequential.agents
    body = [
        f"<p>Lesson 01 with {len(names)} agents ({_e(', '.join(names))}), model calls "
        f"1-3 s x {run.time_scale}, seed {run.seed}. Real threads; nothing is simulated "
        "but the model's latency.</p>",
        "<h2>Summary</h2>",
        _table(SUMMARY_HEADERS, summary_rows(run.results), bad_column=6),
    ]
    body += _result_section("1. One at a time (broken_sequential.py)", run.sequential)
    for number, result in enumerate(run.parallel, start=1):
        body += _result_section(
            f"2.{number} In parallel, unsafe (broken_parallel.py), seed {result.seed}", result
        )
    body += _result_section("3. In parallel, locked (simple_fix.py)", run.fixed)
    for result in run.forced:
        body += _result_section(f"4. Forced: {result.title}", result)
    return _page("racefree demo", body)


def _finding_section(number: int, finding: Any) -> list[str]:
    explanation = finding.explanation
    parts = [
        f'<section class="finding {_e(finding.severity)}" data-kind="{_e(finding.kind)}">',
        f"<h2>{number}. {_e(finding.severity.upper())}: {_e(explanation.name)} on "
        f"{_e(', '.join(finding.keys))}</h2>",
        f"<p><em>{_e(explanation.gloss)}</em></p>",
        f"<p>Agents: {_e(', '.join(finding.agents))}</p>",
        '<ol class="story">',
    ]
    for step in explanation.steps:
        where = f"[seq {step.seq}] " if step.seq is not None else ""
        parts.append(f"<li>{_e(where)}{_e(step.text)}</li>")
    parts += ["</ol>", f"<p>{_e(explanation.conclusion)}</p>", "</section>"]
    return parts


def check_html(
    history: History,
    report: Report,
    *,
    source: str = "",
    preface: Sequence[str] = (),
    command: str = "racefree check",
    failed: str | None = None,
) -> str:
    """A checked history as one HTML page: the timeline of every agent, then each finding.

    ``preface`` paragraphs come first (the explorer puts the command that
    replays the run there); ``failed`` is a failure found by other means (an
    invariant), shown as the verdict even when the checker found nothing.
    """
    events = history.events
    agents = history.agents()
    lost = {entry.agent for f in report.errors for entry in f.lost if not entry.restored}
    title = f"{command} {source}".strip()
    if failed is not None:
        verdict = (
            f'<p class="verdict bad">Failed: {_e(failed)}</p>'
            f'<p class="checker">The checker: {_e(report.summary())}</p>'
        )
    elif not report.findings:
        verdict = '<p class="verdict ok">No race found.</p>'
    else:
        tone = "bad" if report.errors else "ok"
        verdict = f'<p class="verdict {tone}">{_e(report.summary())}</p>'

    body = [f'<p class="preface">{_e(line)}</p>' for line in preface]
    body += [verdict, "<h2>Timeline</h2>", svg_lanes(agents, events, lost=lost), _LEGEND]
    for number, finding in enumerate(report.findings, start=1):
        body += _finding_section(number, finding)
    return _page(title, body)
