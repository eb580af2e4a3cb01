"""Explanations as data, then as text.

Every finding carries an :class:`Explanation`: the standard name of the
anomaly where one exists, a one-line gloss, and a story told as
:class:`Step` s, each tied to the event it is about (the smallest witness),
ending with a conclusion that says what was lost and what to do. The text
forms (:func:`render_finding`, :func:`render_report`) are views of that data;
``--json`` is another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from racefree.check.findings import Finding, Report

__all__ = ["KINDS", "Explanation", "Kind", "Step", "render_finding", "render_report"]


@dataclass(frozen=True)
class Kind:
    """A kind of finding: its id, its name for people, and a one-line gloss."""

    id: str
    name: str
    gloss: str


KINDS: dict[str, Kind] = {
    kind.id: kind
    for kind in (
        Kind(
            "lost-update",
            "lost update",
            "an agent overwrote a key from a stale copy, erasing writes made since it read",
        ),
        Kind(
            "duplicate-write",
            "duplicate write (check-then-act)",
            "an agent wrote, from a stale copy, the very value another had written since",
        ),
        Kind(
            "lost-append",
            "lost append",
            "an append the store acknowledged is missing from the final list",
        ),
        Kind(
            "duplicate-append",
            "duplicated append",
            "one append shows up more than once in the final list",
        ),
        Kind(
            "interleaved-turn",
            "interleaved turn",
            "another agent's message landed inside a turn that must stay contiguous",
        ),
        Kind(
            "unpaired-tool-call",
            "unpaired tool call",
            "a tool call is not directly followed by its result",
        ),
        Kind(
            "causality",
            "causality violation",
            "an event came before the events it declares it depends on",
        ),
        Kind(
            "double-claim",
            "double claim (check-then-act)",
            "two agents both acted as the owner of one claim",
        ),
        Kind(
            "race-window",
            "race window (read-modify-write across a suspension)",
            "an agent read a key, let others run, then overwrote the key with no guard held",
        ),
        Kind(
            "invariant",
            "broken invariant",
            "a predicate that must always hold was false in some state",
        ),
    )
}


@dataclass(frozen=True)
class Step:
    """One sentence of a story, tied to the event it tells about (``seq``), if any."""

    text: str
    seq: int | None = None


@dataclass(frozen=True)
class Explanation:
    """What a finding means: name and gloss of its kind, the story, the conclusion."""

    kind: str
    steps: tuple[Step, ...]
    conclusion: str

    @property
    def name(self) -> str:
        """The anomaly's name for people ("lost update")."""
        return KINDS[self.kind].name

    @property
    def gloss(self) -> str:
        """One line saying what the anomaly is."""
        return KINDS[self.kind].gloss

    def story(self) -> str:
        """The steps and the conclusion as one paragraph."""
        return " ".join([*(step.text for step in self.steps), self.conclusion])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "gloss": self.gloss,
            "steps": [{"seq": s.seq, "text": s.text} for s in self.steps],
            "conclusion": self.conclusion,
            "story": self.story(),
        }


def _wrap(text: str, indent: str, width: int = 88) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(indent + line)
    return lines


def render_finding(finding: Finding, number: int | None = None) -> list[str]:
    """A finding as text lines: headline, gloss, the story step by step, the conclusion."""
    explanation = finding.explanation
    label = f"{number}. " if number is not None else ""
    keys = ", ".join(finding.keys)
    head = f"{label}{finding.severity.upper()}: {explanation.name}"
    if keys:
        head += f" on {keys}"
    if finding.agents:
        head += f" ({', '.join(finding.agents)})"
    lines = [head, f"   {explanation.gloss}."]
    for step in explanation.steps:
        where = f"[seq {step.seq}] " if step.seq is not None else ""
        lines.extend(_wrap(where + step.text, "     "))
    lines.extend(_wrap(explanation.conclusion, "   "))
    return lines


def render_report(report: Report, *, limit: int | None = None) -> list[str]:
    """The whole report as text: one block per finding, then a summary line."""
    lines: list[str] = []
    shown: Sequence[Finding] = report.findings if limit is None else report.findings[:limit]
    for number, finding in enumerate(shown, start=1):
        lines.extend(render_finding(finding, number))
        lines.append("")
    hidden = len(report.findings) - len(shown)
    if hidden:
        lines.append(f"... and {hidden} more finding(s); use --json to see them all.")
        lines.append("")
    for note in report.notes:
        lines.extend(_wrap(f"Note: {note}", ""))
    lines.append(report.summary())
    return lines
