"""FIND: the race checker. A recorded history in, findings with stories out.

One module per kind of finding (``lost_update``, ``appends``, ``order``,
``claims``, ``race_window``, ``invariants``), the data types in
``findings``, the explanations in ``explain``. Everything public is
re-exported from :mod:`racefree`; see ``docs/checker.md``.
"""

from __future__ import annotations

from racefree.check.checker import check
from racefree.check.explain import KINDS, Explanation, Kind, Step
from racefree.check.findings import Finding, Lost, Report, Severity

__all__ = [
    "KINDS",
    "Explanation",
    "Finding",
    "Kind",
    "Lost",
    "Report",
    "Severity",
    "Step",
    "check",
]
