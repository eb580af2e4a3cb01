"""Double claims: two agents both acted as the owner of one claim (check-then-act).

A claim of key k by agent A is one of:

- a store ``claim`` that took ownership (it has ``version_written``);
- an ``acquire`` of k (a lock);
- a write of k with meta ``{"claim": true}``;
- an overwrite of k whose value is A's own name, after A's last read of k
  found it free (no value, or an empty string): the hand-written
  check-then-act ``if board[k] is None: board[k] = me``.

A ``release`` of k, or any other write of k (``set(k, None)``, ``"done"``),
ends the holding. A claim by B while A holds k makes both owners at once: a
double claim. One finding per holding, naming every agent that claimed it.
"""

from __future__ import annotations

from racefree.check._events import READS, is_write
from racefree.check.explain import Explanation, Step
from racefree.check.findings import Finding
from racefree.history import Event

__all__ = ["find_double_claims"]


def _is_claim(event: Event, last_read: Event | None) -> bool:
    if event.op in ("claim", "acquire"):
        return True  # a store claim that only read (already held) never gets here
    if event.meta.get("claim") is True:
        return True
    return (
        event.op in ("write", "set")
        and isinstance(event.value, str)
        and event.value == event.agent
        and last_read is not None
        and last_read.value in (None, "")
    )


def find_double_claims(
    events: list[Event], *, findings: list[Finding] | None = None
) -> list[Finding]:
    """One finding per holding of a key that more than one agent claimed."""
    holders: dict[str, list[Event]] = {}  # key -> claims of the current holding
    last_read: dict[tuple[str, str], Event] = {}
    checks: dict[str, list[Event]] = {}  # key -> reads that found it free, per holding
    findings = [] if findings is None else findings

    for event in events:
        key = event.key
        if key is None:
            continue
        op = event.op
        if op in READS:
            last_read[(event.agent, key)] = event
            continue
        if op == "release":
            _close(key, holders, checks, findings)
            continue
        if op != "acquire" and not is_write(event):
            continue
        if _is_claim(event, last_read.get((event.agent, key))):
            claims = holders.setdefault(key, [])
            read = last_read.get((event.agent, key))
            if read is not None and (not claims or read.seq < claims[0].seq):
                checks.setdefault(key, []).append(read)
            if all(claim.agent != event.agent for claim in claims):
                claims.append(event)
        else:
            _close(key, holders, checks, findings)
    for key in list(holders):
        _close(key, holders, checks, findings)
    findings.sort(key=lambda f: f.first_seq)
    return findings


def _close(
    key: str,
    holders: dict[str, list[Event]],
    checks: dict[str, list[Event]],
    findings: list[Finding],
) -> None:
    claims = holders.pop(key, [])
    reads = checks.pop(key, [])
    agents = tuple(dict.fromkeys(e.agent for e in claims))
    if len(agents) < 2:
        return
    steps = [Step(f"{r.agent} checked {key}: it was free.", r.seq) for r in reads]
    first = claims[0]
    steps.append(Step(f"{first.agent} claimed {key}.", first.seq))
    for number, claim in enumerate(claims[1:], start=1):
        earlier = [c.agent for c in claims[:number]]
        holders_text = (
            earlier[0] if len(earlier) == 1 else ", ".join(earlier[:-1]) + " and " + earlier[-1]
        )
        steps.append(
            Step(f"{claim.agent} claimed {key} too, while {holders_text} held it.", claim.seq)
        )
    everyone = ", ".join(agents[:-1]) + " and " + agents[-1]
    conclusion = (
        f"{everyone} all acted as owner of {key}, so the work ran {len(agents)} times. "
        f"Check and claim in one atomic step: store.claim({key!r}, owner) returns True "
        "for exactly one agent."
    )
    witness = tuple(sorted([*reads, *claims], key=lambda e: e.seq))
    findings.append(
        Finding(
            kind="double-claim",
            severity="error",
            agents=agents,
            keys=(key,),
            events=witness,
            explanation=Explanation("double-claim", tuple(steps), conclusion),
        )
    )
