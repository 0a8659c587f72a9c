"""Monitoring: follow a log incrementally and report the statements that matter.

A monitor keeps a :class:`~ledger.verifier.trust.TrustState` and, at each :func:`poll_log`, verifies
only the new entries (:func:`~ledger.verifier.verify.verify_ledger`, with split-view detection), then
reports:

- every new statement of interest (:data:`REPORTED_TYPES`): keyset rotations, offer versions
  and withdrawals, decisions (single or batch), enforcement actions, violation findings and
  revocations, each with its essentials read from the replayed protocol state;
- every commitment judgement that is newly ``broken`` at the audit time (an act that broke a
  promise, or a clock that ran out), each reported once: the keys already reported are kept in
  the trust state's ``tools["monitor"]``.

The core only computes :class:`Event` values; printing and webhooks are the CLI's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ledger.protocol.commitments import check_commitments, iso_utc
from ledger.protocol.due import open_clocks, span_text
from ledger.protocol.records import ApplicationRecord
from ledger.protocol.state import ProtocolState
from ledger.tlog.checkpoint import LogKey
from ledger.verifier.sources import LogSource
from ledger.verifier.trust import TrustState
from ledger.verifier.verify import Progress, VerifiedLog, verify_ledger

REPORTED_TYPES: Final = frozenset(
    {
        "keyset",
        "offer",
        "offer_amendment",
        "offer_withdrawal",
        "decision",
        "batch_decision",
        "enforcement_action",
        "violation_finding",
        "revocation",
    }
)
"""Statement types a monitor reports as they are logged."""

_TOOL = "monitor"


@dataclass(frozen=True, slots=True)
class Event:
    """Something a monitor reports: a new statement of interest or a newly broken commitment.

    ``kind`` is the statement type, or ``broken_commitment``; ``index`` the entry it is about.
    """

    kind: str
    index: int
    log_time_ms: int
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready object."""
        return {
            "kind": self.kind,
            "index": self.index,
            "log_time_ms": self.log_time_ms,
            "summary": self.summary,
            "details": self.details,
        }


@dataclass
class Poll:
    """One monitoring round: what was verified, the state to keep, what to report."""

    verified: VerifiedLog
    trust: TrustState
    events: list[Event]


def poll_log(
    source: LogSource,
    log_key: LogKey,
    trusted: TrustState | None,
    *,
    audit_time_ms: int,
    warn_ms: int | None = None,
    workers: int | None = None,
    fetch_threads: int = 1,
    progress: Progress | None = None,
) -> Poll:
    """Verify what is new in the log since ``trusted`` and say what a watcher should know.

    Steps: (1) :func:`~ledger.verifier.verify.verify_ledger` from ``trusted`` (raises
    :class:`~ledger.verifier.failures.SplitViewError` or
    :class:`~ledger.verifier.failures.VerificationFailure`);
    (2) an :class:`Event` per new statement of a :data:`REPORTED_TYPES` type, in log order;
    (3) an event per commitment judgement broken at ``audit_time_ms`` and not reported before.
    (4) with ``warn_ms``, an event per clock the body owes whose deadline is less than
    ``warn_ms`` away (and not yet past: that is a broken commitment, step 3), not warned of
    before (:func:`deadline_events`).
    The returned trust state remembers what was reported; save it to go on.
    """
    start = 0 if trusted is None else trusted.size
    tools = {} if trusted is None else dict(trusted.tools)
    verified = verify_ledger(
        source,
        log_key,
        trusted=trusted,
        workers=workers,
        fetch_threads=fetch_threads,
        progress=progress,
    )
    state = verified.protocol
    assert state is not None
    events = statement_events(state, start, verified.checkpoint.size)
    reported = set(tools.get(_TOOL, {}).get("reported_broken", []))
    broken = broken_commitment_events(
        state, max(audit_time_ms, verified.last_log_time_ms), reported
    )
    events.extend(broken)
    reported.update(event.details["key"] for event in broken)
    tools[_TOOL] = {"reported_broken": sorted(reported)}
    if warn_ms is not None:
        warned = set(tools.get(_TOOL + "-deadlines", {}).get("warned", []))
        near = deadline_events(
            state, max(audit_time_ms, verified.last_log_time_ms), warn_ms, warned
        )
        events.extend(near)
        warned.update(event.details["key"] for event in near)
        tools[_TOOL + "-deadlines"] = {"warned": sorted(warned)}
    return Poll(verified, verified.trust_state(log_key, tools), events)


def statement_events(state: ProtocolState, start: int, end: int) -> list[Event]:
    """Events for the statements of interest among entries ``[start, end)`` of ``state``."""
    wanted = [i for i in range(start, end) if state.type_at(i) in REPORTED_TYPES]
    if not wanted:
        return []
    decided: dict[int, list[ApplicationRecord]] = {}
    for app in state.applications.values():
        if app.closed_by is not None and start <= app.closed_by < end:
            decided.setdefault(app.closed_by, []).append(app)
    withdrawn = {o.withdrawn_by: o for o in state.offer_versions if o.withdrawn_by is not None}
    keysets = {k.index: k for k in state.keysets}
    events = []
    for index in wanted:
        kind = state.type_at(index)
        time = state.log_time_ms_at(index)
        details: dict[str, Any] = {}
        if kind in ("offer", "offer_amendment"):
            offer = state.offer_at(index)
            details = {"version": offer.version, "title": offer.terms.title}
            summary = f"offer version {offer.version} published ({kind})"
        elif kind == "offer_withdrawal":
            gone = withdrawn.get(index)
            details = {"version": None if gone is None else gone.version}
            summary = f"offer version {details['version']} withdrawn"
        elif kind == "keyset":
            keyset = keysets[index]
            details = {"threshold": keyset.threshold, "members": sorted(keyset.members)}
            summary = (
                f"keyset: {keyset.threshold} of {len(keyset.members)} members speak for the body"
            )
        elif kind in ("decision", "batch_decision"):
            apps = decided.get(index, [])
            if not apps:
                summary = kind.replace("_", " ")
            elif kind == "decision":
                app = apps[0]
                details = {
                    "application": app.index,
                    "subject_id": app.subject_id,
                    "outcome": app.outcome,
                    "restrictions": [r.model_dump(mode="json") for r in app.restrictions],
                }
                summary = f"application {app.index} of subject {app.subject_id}: {app.outcome}"
            else:
                # One outcome, findings and restrictions for every application it lists.
                details = {
                    "applications": [a.index for a in apps],
                    "subject_ids": [a.subject_id for a in apps],
                    "outcome": apps[0].outcome,
                    "restrictions": [r.model_dump(mode="json") for r in apps[0].restrictions],
                }
                summary = f"{len(apps)} applications decided by one batch: {apps[0].outcome}"
        elif kind == "enforcement_action":
            action = state.enforcement_actions[index]
            details = {
                "action": action.action,
                "subject_id": action.subject_id,
                "grounds": action.grounds_kind,
                "grounds_index": action.grounds_index,
            }
            target = (
                f"subject {action.subject_id}" if action.subject_id is not None else "a wild model"
            )
            summary = f"enforcement: {action.action} of {target} (grounds: {action.grounds_kind})"
        elif kind == "violation_finding":
            finding = state.findings[index]
            details = {
                "subject_id": finding.subject_id,
                "response_deadline_ms": finding.response_deadline_ms,
            }
            summary = f"violation finding against subject {finding.subject_id}"
        else:
            revocation = state.revocations[index]
            details = {
                "subject_id": revocation.subject_id,
                "findings": list(revocation.finding_indexes),
            }
            summary = f"amnesty of subject {revocation.subject_id} revoked"
        events.append(Event(kind, index, time, summary, details))
    return events


def deadline_events(
    state: ProtocolState, at_ms: int, warn_ms: int, warned: set[str]
) -> list[Event]:
    """``deadline_near`` events for the clocks the body owes (:mod:`ledger.protocol.due`)
    whose deadline is at most ``warn_ms`` after ``at_ms`` and not yet past, and whose key —
    ``<kind>@<entry it is about>@<entry that started the clock>`` (a pause review restarts
    it) — is not in ``warned``."""
    events = []
    for clock in open_clocks(state, at_ms):
        key = f"{clock.kind}@{clock.about_index}@{clock.since_index}"
        if clock.owed_by != "body" or clock.overdue or clock.time_left_ms > warn_ms:
            continue
        if key in warned:
            continue
        events.append(
            Event(
                "deadline_near",
                clock.about_index,
                state.log_time_ms_at(clock.about_index),
                f"the body owes {clock.owed} (entry {clock.about_index}, subject "
                f"{clock.subject_id}) by {iso_utc(clock.deadline_ms)}, "
                f"{span_text(clock.time_left_ms)} from now; commitment {clock.commitment}",
                {
                    "key": key,
                    "commitment": clock.commitment,
                    "subject_id": clock.subject_id,
                    "deadline_ms": clock.deadline_ms,
                    "time_left_ms": clock.time_left_ms,
                },
            )
        )
    return events


def broken_commitment_events(
    state: ProtocolState, audit_time_ms: int, reported: set[str]
) -> list[Event]:
    """Events for judgements broken at ``audit_time_ms`` whose keys are not in ``reported``.

    A judgement's key is ``<commitment id>@<entry index>``.
    """
    events = []
    for check in check_commitments(state, audit_time_ms=audit_time_ms):
        for judgement in check.judgements:
            key = f"{check.id}@{judgement.index}"
            if judgement.status != "broken" or key in reported:
                continue
            index = judgement.index
            time = state.log_time_ms_at(index) if index < state.size else audit_time_ms
            events.append(
                Event(
                    "broken_commitment",
                    index,
                    time,
                    f"commitment {check.id} broken at entry {index}: {judgement.reason}",
                    {
                        "key": key,
                        "commitment": check.id,
                        "subject_id": judgement.subject_id,
                        "evidence": list(judgement.evidence),
                    },
                )
            )
    return events
