"""Findings and the report: what the checker hands back, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from racefree.check.explain import Explanation, render_report
from racefree.history import Event

__all__ = ["Finding", "Lost", "Report", "Severity"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Lost:
    """A value that some agent wrote or appended and that did not survive.

    ``restored`` is true when the value came back later (another agent wrote
    from a copy that still had it), so the final state has it although an
    intermediate state did not.
    """

    agent: str
    seq: int
    value: Any
    restored: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "agent": self.agent,
            "seq": self.seq,
            "value": self.value,
            "restored": self.restored,
        }


@dataclass(frozen=True)
class Finding:
    """One anomaly: its kind, how bad it is, who and what it involves, and why.

    ``events`` is the smallest witness (in ``seq`` order); ``lost`` lists the
    values that were lost, where the kind loses values.
    """

    kind: str
    severity: Severity
    agents: tuple[str, ...]
    keys: tuple[str, ...]
    events: tuple[Event, ...]
    explanation: Explanation
    lost: tuple[Lost, ...] = ()

    @property
    def name(self) -> str:
        """The anomaly's name for people."""
        return self.explanation.name

    @property
    def first_seq(self) -> int:
        """The ``seq`` of the first witness event (-1 for a finding about the final state)."""
        return self.events[0].seq if self.events else -1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "agents": list(self.agents),
            "keys": list(self.keys),
            "events": [event.to_dict() for event in self.events],
            "lost": [lost.to_dict() for lost in self.lost],
            **self.explanation.to_dict(),
        }


@dataclass(frozen=True)
class Report:
    """Everything the checker found in one history.

    ``ok`` is true when there are no errors (warnings allowed). ``notes`` say
    what the checker could not check in this history (for example states it
    could not rebuild).
    """

    findings: tuple[Finding, ...]
    events_checked: int
    notes: tuple[str, ...] = field(default=())

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings of severity ``error``."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings of severity ``warning``."""
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        """True when nothing of severity ``error`` was found."""
        return not self.errors

    def of_kind(self, kind: str) -> tuple[Finding, ...]:
        """The findings of one kind ("lost-update", "race-window", ...)."""
        return tuple(f for f in self.findings if f.kind == kind)

    def summary(self) -> str:
        """One line: how many events, errors and warnings."""
        errors, warnings = len(self.errors), len(self.warnings)
        if self.events_checked == 0:
            return "Checked nothing: the history has no events."
        if not self.findings:
            return f"Checked {self.events_checked} events: no race found."
        return f"Checked {self.events_checked} events: {errors} error(s), {warnings} warning(s)."

    def text(self, *, limit: int | None = None) -> str:
        """The report as text, as ``racefree check`` prints it."""
        return "\n".join(render_report(self, limit=limit))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as ``racefree check --json`` prints it."""
        return {
            "ok": self.ok,
            "events": self.events_checked,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [finding.to_dict() for finding in self.findings],
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        return self.text()
