"""What is due: every clock of the log still running at a time T, nearest deadline first.

The issuing body is the party most likely to break its word by accident — a decision a week
late, a grievance nobody answered, a pause nobody reviewed. The precedent audit
(:mod:`ledger.protocol.commitments`) says *afterwards* that a commitment was broken; this module
says *beforehand* what is owed and by when, computed from the same records with the same
arithmetic, so that a clock listed here as overdue is exactly a judgement the audit reports as
broken at the same time, and one listed as open and not overdue is one it reports as pending.

The clocks (:data:`CLOCK_KINDS`):

- ``decision`` — an open application (not decided, not withdrawn) is owed a ``decision`` or a
  ``batch_decision`` by the body within the ``decision_within_promised_time`` days of the offer
  version it applied under, counted from the application's log time;
- ``grievance_answer`` — a grievance filed by a subject
  (:attr:`~ledger.protocol.records.GrievanceRecord.starts_clock`) and not yet answered is owed a
  ``grievance_answer`` or a ``batch_grievance_answer`` within the ``grievances_answered`` days of
  the terms binding its subject when it was logged; a grievance signed by no subject's current
  key starts no clock and is not listed;
- ``pause_review`` — a pause period still running is owed a review (a violation finding against
  the subject, or the subject's consent to pause) or its end (a resume, a termination or a
  revocation) within the ``pauses_bounded`` days of its terms, counted from its start or its
  latest review;
- ``response_window`` — a violation finding the subject has not answered and no revocation has
  cited yet: the subject may respond until the window ends, and the body may revoke on it only
  after (``revocation_only_after_finding_and_response_window``). Nothing is broken when it
  ends, so it is listed only while it runs and is never overdue.

Contract: pure — the state and the time are parameters, no clock is read, the state is not
changed. Times are log times in milliseconds; a window of N days is N × 86,400,000 ms and a
deadline is met by an act whose log time is at or before it (as the audit judges). O(open
applications' subjects + grievances + pause periods + findings) per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger.errors import MalformedError, RefusedError
from ledger.protocol.audit import CheckpointSummary, replayed_checkpoint
from ledger.protocol.commitments import iso_utc
from ledger.protocol.quoting import quotation, quote
from ledger.protocol.state import ProtocolState
from ledger.protocol.terms import DAY_MS, MAX_SAFE_INTEGER

DUE_FORMAT = "amnesty-ledger.due/v1"

ClockKind = Literal["decision", "grievance_answer", "pause_review", "response_window"]
Party = Literal["body", "subject"]

CLOCK_KINDS: Mapping[ClockKind, tuple[str, Party, str]] = {
    "decision": ("decision_within_promised_time", "body", "a decision on the application"),
    "grievance_answer": ("grievances_answered", "body", "an answer to the grievance"),
    "pause_review": ("pauses_bounded", "body", "a review or the end of the pause"),
    "response_window": (
        "revocation_only_after_finding_and_response_window",
        "subject",
        "the subject's response to the finding (if it wishes); the body may revoke on it "
        "only after the window ends",
    ),
}
"""Each clock kind: the commitment it guards, the party that owes the act, what is owed."""


@dataclass(frozen=True, slots=True)
class OpenClock:
    """One running clock at the time asked about.

    ``since_index`` is the entry that started it (or, for a pause, the latest review that
    restarted it); ``about_index`` the entry the act must answer (the application, grievance,
    first pause of the period, finding). ``time_left_ms`` is ``deadline_ms`` minus the time
    asked about: negative when overdue. ``overdue`` is true only for an act the body owes and
    has not done by its deadline — the audit judges it broken.
    """

    kind: ClockKind
    commitment: str
    owed_by: Party
    owed: str
    subject_id: int
    about_index: int
    since_index: int
    started_ms: int
    days: int
    deadline_ms: int
    time_left_ms: int
    overdue: bool


def open_clocks(state: ProtocolState, at_ms: int) -> tuple[OpenClock, ...]:
    """Every clock of ``state`` running at ``at_ms``, sorted by deadline (then by the entry it
    is about). ``at_ms`` should not precede the last entry's log time (the callers refuse it:
    a clock cannot be judged before the acts the log already holds)."""
    clocks: list[OpenClock] = []

    def add(
        kind: ClockKind,
        subject_id: int,
        about: int,
        since: int,
        started_ms: int,
        days: int,
        deadline_ms: int,
    ) -> None:
        commitment, owed_by, owed = CLOCK_KINDS[kind]
        clocks.append(
            OpenClock(
                kind=kind,
                commitment=commitment,
                owed_by=owed_by,
                owed=owed,
                subject_id=subject_id,
                about_index=about,
                since_index=since,
                started_ms=started_ms,
                days=days,
                deadline_ms=deadline_ms,
                time_left_ms=deadline_ms - at_ms,
                overdue=owed_by == "body" and at_ms > deadline_ms,
            )
        )

    # An application is open exactly when it is its subject's open application.
    for subject in state.subjects.values():
        if subject.open_application is None:
            continue
        app = state.applications[subject.open_application]
        days = state.offer_at(app.offer_index).days["decision_within_promised_time"]
        deadline = app.log_time_ms + days * DAY_MS
        add("decision", app.subject_id, app.index, app.index, app.log_time_ms, days, deadline)
    for grievance in state.grievances.values():
        if not grievance.starts_clock or grievance.answers:
            continue
        days = grievance.answer_days
        deadline = grievance.log_time_ms + days * DAY_MS
        add(
            "grievance_answer",
            grievance.subject_id,
            grievance.index,
            grievance.index,
            grievance.log_time_ms,
            days,
            deadline,
        )
    for period in state.pause_periods:
        if period.ended_by is not None:
            continue
        since = period.reviews[-1] if period.reviews else period.index
        started = state.log_time_ms_at(since)
        days = period.max_pause_days
        add(
            "pause_review",
            period.subject_id,
            period.index,
            since,
            started,
            days,
            started + days * DAY_MS,
        )
    cited = {i for r in state.revocations.values() for i in r.finding_indexes}
    for finding in state.findings.values():
        if finding.first_response is not None or finding.index in cited:
            continue
        days = finding.response_window_days
        window_end = max(finding.response_deadline_ms, finding.log_time_ms + days * DAY_MS)
        if at_ms >= window_end:
            continue  # the window has ended: the body may now revoke; nothing is owed
        add(
            "response_window",
            finding.subject_id,
            finding.index,
            finding.index,
            finding.log_time_ms,
            days,
            window_end,
        )
    clocks.sort(key=lambda c: (c.deadline_ms, c.about_index, c.kind))
    return tuple(clocks)


# -------------------------------------------------------------------------------- the report


class _Due(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Time = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
Index = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]


class DueClock(_Due):
    """One running clock (see :class:`OpenClock`); ``subject_name`` is log text (the name the
    subject gave in its first application), to be quoted on any text output."""

    kind: ClockKind
    commitment: str
    owed_by: Party
    owed: str
    subject_id: Index
    subject_name: str
    about_index: Index
    about_type: str
    since_index: Index
    started_ms: Time
    days: int
    deadline_ms: int
    deadline: str = Field(description="the deadline as ISO 8601 UTC")
    time_left_ms: int = Field(description="deadline minus the time asked about; < 0: overdue")
    overdue: bool


class DueReport(_Due):
    """Every clock running at ``at_ms`` at the named checkpoint, nearest deadline first.
    ``nearest_deadline_ms`` is the first clock's deadline (null when none runs)."""

    format: Literal["amnesty-ledger.due/v1"]
    checkpoint: CheckpointSummary
    at_ms: Time
    open: int
    overdue: int
    nearest_deadline_ms: int | None
    clocks: list[DueClock]


def due_report(
    state: ProtocolState, *, checkpoint: Mapping[str, Any], at_ms: int
) -> dict[str, Any]:
    """The :class:`DueReport` (as JSON-ready data) of ``state`` at ``at_ms``; ``checkpoint``
    names the tree head ``state`` was replayed to (origin, size, root_hash_b64).

    Raises :class:`MalformedError` for a malformed checkpoint, and :class:`RefusedError` when
    its size is not the number of entries replayed or ``at_ms`` precedes the last entry's log
    time (a clock is never judged before an act the log already holds; the audit refuses the
    same)."""
    summary = replayed_checkpoint(state, checkpoint, "what is due")
    last = state.log_time_ms_at(state.size - 1) if state.size else 0
    if at_ms < last:
        raise RefusedError(
            f"couldn't compute what is due at {at_ms} ms: it is before the last entry's log "
            f"time {last} ms"
        )
    clocks = open_clocks(state, at_ms)
    items = [
        DueClock(
            kind=c.kind,
            commitment=c.commitment,
            owed_by=c.owed_by,
            owed=c.owed,
            subject_id=c.subject_id,
            subject_name=state.subjects[c.subject_id].name,
            about_index=c.about_index,
            about_type=state.type_at(c.about_index),
            since_index=c.since_index,
            started_ms=c.started_ms,
            days=c.days,
            deadline_ms=c.deadline_ms,
            deadline=iso_utc(c.deadline_ms),
            time_left_ms=c.time_left_ms,
            overdue=c.overdue,
        )
        for c in clocks
    ]
    report = DueReport(
        format=DUE_FORMAT,
        checkpoint=summary,
        at_ms=at_ms,
        open=len(items),
        overdue=sum(1 for c in items if c.overdue),
        nearest_deadline_ms=items[0].deadline_ms if items else None,
        clocks=items,
    )
    return report.model_dump(mode="json")


def body_deadlines_ms(state: ProtocolState) -> tuple[int, ...]:
    """The deadlines of every clock the body owes, earliest first: what a monitoring gauge
    watches. They do not depend on the time asked about (only a new entry opens or closes one
    the body owes), so they may be cached per tree size and compared with the clock later."""
    return tuple(c.deadline_ms for c in open_clocks(state, 0) if c.owed_by == "body")


def span_text(ms: int) -> str:
    """A duration for people, to the minute: ``3 d 4 h 5 min``; ``0 min`` under a minute."""
    minutes = abs(ms) // 60_000
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if mins or not parts:
        parts.append(f"{mins} min")
    return " ".join(parts)


def render_due_text(report: Mapping[str, Any]) -> str:
    """Render a report from :func:`due_report` as plain text, one clock a line pair.

    Raises :class:`MalformedError` if ``report`` is not a valid :class:`DueReport`. Every line
    is the renderer's own; the only log text — a subject's name — is shown by
    :func:`~ledger.protocol.quoting.quotation`, naming the application it is quoted from.
    """
    try:
        r = DueReport.model_validate(dict(report))
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise MalformedError(f"couldn't render the due report: {problems}") from None
    lines = [
        f"WHAT IS DUE at {iso_utc(r.at_ms)} ({r.at_ms} ms), log {quote(r.checkpoint.origin)} "
        f"size {r.checkpoint.size} root {r.checkpoint.root_hash_b64}",
    ]
    if not r.clocks:
        lines.append("Nothing is due: no clock is running.")
        return "\n".join(lines) + "\n"
    lines.append(
        f"{r.open} clock(s) running, {r.overdue} OVERDUE."
        if r.overdue
        else f"{r.open} clock(s) running, none overdue."
    )
    for c in r.clocks:
        if c.overdue:
            left = f"OVERDUE by {span_text(c.time_left_ms)}"
        elif c.time_left_ms < 0:
            left = f"ended {span_text(c.time_left_ms)} ago"
        else:
            left = f"{span_text(c.time_left_ms)} left"
        lines.append("")
        lines.append(
            f"- {c.deadline} ({left}): the {c.owed_by} owes {c.owed} "
            f"(the {c.about_type} at entry {c.about_index}, subject {c.subject_id}); "
            f"{c.days}-day clock since entry {c.since_index}, commitment {c.commitment}"
        )
        lines.append(
            "  "
            + quotation(
                "subject's name",
                f"the application signed by the subject (entry {c.subject_id})",
                c.subject_name,
            )
        )
    return "\n".join(lines) + "\n"
