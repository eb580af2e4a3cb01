"""Findings and the report: what the checker hands back, as plain data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from racefree.check.explain import Explanation, render_report
from racefree.history import Event

__all__ = ["DEFAULT_MAX_FINDINGS", "Finding", "Findings", "Lost", "Report", "Severity"]

DEFAULT_MAX_FINDINGS = 100
"""How many findings of each kind a check keeps; past it they are only counted."""

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


class Findings(list["Finding"]):
    """The findings of one check, keeping at most ``limit`` of each kind.

    A finding past the limit is counted in :attr:`omitted` (by kind and
    severity) and dropped at once, so the memory a check holds grows with
    what it reports, not with how much is wrong in the history. Every finder
    appends to the one instance the checker gives it.
    """

    def __init__(self, limit: int | None = None) -> None:
        super().__init__()
        self.limit = limit
        self._kept: Counter[str] = Counter()
        self.omitted: Counter[tuple[str, Severity]] = Counter()

    def append(self, finding: Finding) -> None:
        """Keep ``finding``, or only count it when its kind is at the limit."""
        if self.limit is not None and self._kept[finding.kind] >= self.limit:
            self.omitted[(finding.kind, finding.severity)] += 1
            return
        self._kept[finding.kind] += 1
        super().append(finding)

    def extend(self, findings: Iterable[Finding]) -> None:
        """:meth:`append` each of ``findings``."""
        for finding in findings:
            self.append(finding)


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
    #: Findings past the limit per kind, only counted: ``(kind, severity, count)``.
    omitted: tuple[tuple[str, Severity, int], ...] = field(default=())
    #: How many findings of each kind were kept (``None``: no limit).
    limit: int | None = None

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings of severity ``error``."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings of severity ``warning``."""
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def error_count(self) -> int:
        """How many errors were found, kept or only counted past the limit."""
        return len(self.errors) + sum(n for _, sev, n in self.omitted if sev == "error")

    @property
    def warning_count(self) -> int:
        """How many warnings were found, kept or only counted past the limit."""
        return len(self.warnings) + sum(n for _, sev, n in self.omitted if sev == "warning")

    @property
    def ok(self) -> bool:
        """True when nothing of severity ``error`` was found."""
        return self.error_count == 0

    def of_kind(self, kind: str) -> tuple[Finding, ...]:
        """The findings of one kind ("lost-update", "race-window", ...)."""
        return tuple(f for f in self.findings if f.kind == kind)

    def summary(self) -> str:
        """One line: how many events, errors and warnings."""
        errors, warnings = self.error_count, self.warning_count
        if self.events_checked == 0:
            return "Checked nothing: the history has no events."
        if not self.findings and not self.omitted:
            return f"Checked {self.events_checked} events: no race found."
        line = f"Checked {self.events_checked} events: {errors} error(s), {warnings} warning(s)."
        if self.omitted:
            more = ", ".join(f"{n:,} more {kind}" for kind, _, n in self.omitted)
            line += (
                f" Past {self.limit} findings of a kind the rest were only counted ({more}); "
                "fix those shown and check again, or raise --max-findings."
            )
        return line

    def text(self, *, limit: int | None = None) -> str:
        """The report as text, as ``racefree check`` prints it."""
        return "\n".join(render_report(self, limit=limit))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as ``racefree check --json`` prints it."""
        return {
            "ok": self.ok,
            "events": self.events_checked,
            "errors": self.error_count,
            "warnings": self.warning_count,
            "findings": [finding.to_dict() for finding in self.findings],
            "omitted": {kind: n for kind, _, n in self.omitted},
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        return self.text()
