"""The body's commitments, one named rule each, judged from the log alone.

Every rule takes the :class:`~ledger.protocol.state.ProtocolState` after replaying the log and the
audit time (a parameter: no clock is read), and returns a :class:`CommitmentCheck`: one
:class:`Judgement` per act the commitment bears on, each ``honoured``, ``broken`` or (where a clock
is still running) ``pending``, with the entry indexes that prove it. All times compared are log
times (``log_time_ms``), the one clock every verifier sees; a window of N days is N × 86,400,000 ms
and a deadline is met when the act's log time is at or before it.

Each rule's docstring quotes the Model Amnesty proposal it enforces; :data:`COMMITMENT_RULES`
maps every commitment id of the offer (:data:`~ledger.protocol.terms.COMMITMENT_IDS`) to its rule.

Kept whole (about 660 lines) because it is one thing: the nine rules of one table, side by side
so that each can be read against the others, and the shared judgements they are built from (a
consent's validity, a revocation being due, the cooperative condition), which several rules
apply alike and which must not drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Literal, Protocol

from ledger.protocol.records import EnforcementRecord, RevocationRecord
from ledger.protocol.state import ProtocolState
from ledger.protocol.terms import COOPERATIVE_PAUSE_CATEGORY, DAY_MS

Status = Literal["honoured", "broken", "pending"]


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict on one act: ``index`` is the entry judged, ``evidence`` every entry that
    proves the verdict (sorted, including ``index``)."""

    index: int
    subject_id: int | None
    status: Status
    reason: str
    evidence: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CommitmentCheck:
    """One commitment checked against the whole log; ``promise`` quotes the proposal."""

    id: str
    promise: str
    judgements: tuple[Judgement, ...]

    @property
    def status(self) -> Status:
        """``broken`` if any act broke it, else ``pending`` if a clock runs, else ``honoured``."""
        statuses = {j.status for j in self.judgements}
        if "broken" in statuses:
            return "broken"
        return "pending" if "pending" in statuses else "honoured"


class CommitmentRule(Protocol):
    """A commitment rule: the log's state and the audit time in, the verdicts out."""

    def __call__(self, state: ProtocolState, *, audit_time_ms: int) -> CommitmentCheck: ...


_LAST_ISO_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z, the last instant ISO 8601 writes with four year digits."""


def iso_utc(ms: int) -> str:
    """Render a millisecond Unix time as ISO 8601 UTC with milliseconds, e.g.
    ``2026-01-02T03:04:05.006Z``; a time after year 9999 (a signer may write one) is rendered
    as ``<ms> ms after the epoch``."""
    if ms > _LAST_ISO_MS:
        return f"{ms} ms after the epoch"
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def _judge(
    index: int,
    subject_id: int | None,
    status: Status,
    reason: str,
    evidence: Iterable[int] = (),
) -> Judgement:
    return Judgement(index, subject_id, status, reason, tuple(sorted({index, *evidence})))


def _honoured_if(ok: bool) -> Status:
    return "honoured" if ok else "broken"


# ------------------------------------------------------------------------ shared judgements

Verdict = tuple[bool, str, tuple[int, ...]]


def revocation_problems(state: ProtocolState, revocation: RevocationRecord) -> list[str]:
    """Why ``revocation`` was not due, or ``[]`` if it was.

    Due means: every cited finding concerns the revoked subject, and for each, the subject had
    responded before the revocation or the response window had ended at the revocation's log
    time. The window ends at the later of the finding's own deadline and its log time plus the
    ``revocation_only_after_finding_and_response_window`` days of the terms then binding.
    """
    problems = []
    for index in revocation.finding_indexes:
        finding = state.findings[index]
        if finding.subject_id != revocation.subject_id:
            problems.append(
                f"the finding at index {index} concerns subject {finding.subject_id}, "
                f"not {revocation.subject_id}"
            )
            continue
        responded = finding.first_response is not None and finding.first_response < revocation.index
        window_end = max(
            finding.response_deadline_ms,
            finding.log_time_ms + finding.response_window_days * DAY_MS,
        )
        if not responded and revocation.log_time_ms < window_end:
            problems.append(
                f"it came at {iso_utc(revocation.log_time_ms)}, before the response window of "
                f"the finding at index {index} ended at {iso_utc(window_end)}, and the subject "
                "had not responded"
            )
    return problems


def _revocation_evidence(state: ProtocolState, revocation: RevocationRecord) -> tuple[int, ...]:
    responses = (state.findings[i].first_response for i in revocation.finding_indexes)
    return (
        revocation.index,
        *revocation.finding_indexes,
        *(r for r in responses if r is not None and r < revocation.index),
    )


def _consent_verdict(state: ProtocolState, act: EnforcementRecord, grounds: int) -> Verdict:
    """The consent at ``grounds`` justifies ``act`` if it is the same subject's, names this
    action, had not expired at the act's log time, and justified no earlier act. Admission
    guarantees it was signed by the subject's key at the time."""
    consent = state.consents[grounds]
    evidence = (consent.index,)
    if consent.subject_id != act.subject_id:
        cause = f"the consent at index {consent.index} is subject {consent.subject_id}'s"
    elif consent.action != act.action:
        cause = f"the consent at index {consent.index} is to {consent.action}, not {act.action}"
    elif act.log_time_ms >= consent.expires_ms:
        cause = (
            f"the consent at index {consent.index} expired at {iso_utc(consent.expires_ms)}, "
            f"before the action at {iso_utc(act.log_time_ms)}"
        )
    elif consent.used_by != act.index:
        cause = (
            f"the consent at index {consent.index} already justified the action at index "
            f"{consent.used_by}"
        )
    else:
        return True, f"justified by the subject's consent at index {consent.index}", evidence
    return False, f"{act.action} without valid consent: {cause}", evidence


def _revocation_verdict(state: ProtocolState, act: EnforcementRecord, grounds: int) -> Verdict:
    revocation = state.revocations[grounds]
    evidence = _revocation_evidence(state, revocation)
    if revocation.subject_id != act.subject_id:
        return (
            False,
            f"{act.action} citing the revocation at index {revocation.index} of another "
            f"subject ({revocation.subject_id})",
            evidence,
        )
    problems = revocation_problems(state, revocation)
    if problems:
        return (
            False,
            f"{act.action} citing the revocation at index {revocation.index}, which was not "
            f"due: {'; '.join(problems)}",
            evidence,
        )
    return True, f"justified by the due revocation at index {revocation.index}", evidence


def _cooperative_verdict(
    state: ProtocolState, act: EnforcementRecord, binding_index: int
) -> Verdict:
    binding = state.offer_at(binding_index)
    evidence = (binding.index,)
    if act.action == "pause":
        ok = COOPERATIVE_PAUSE_CATEGORY in binding.category_ids
        return (
            ok,
            f"a cooperative pause under offer version {binding.version}, which "
            f"{'includes' if ok else 'lacks'} the {COOPERATIVE_PAUSE_CATEGORY} category",
            evidence,
        )
    if act.action == "restrict":
        outside = sorted({r.category for r in act.restrictions} - binding.category_ids)
        if outside:
            return (
                False,
                f"restrictions in categories {outside}, outside those of offer version "
                f"{binding.version} that binds the subject",
                evidence,
            )
        return (
            True,
            f"restrictions within the categories of offer version {binding.version}",
            evidence,
        )
    return (
        False,
        f"{act.action} on cooperative_condition grounds: the cooperative condition allows "
        "pauses and restrictions, never this",
        evidence,
    )


def _grounds_verdict(state: ProtocolState, act: EnforcementRecord) -> Verdict:
    """Whether ``act`` (against a subject) rests on grounds the subject agreed to."""
    grounds, binding = act.grounds_index, act.binding_offer_index
    if act.grounds_kind == "consent" and grounds is not None:
        return _consent_verdict(state, act, grounds)
    if act.grounds_kind == "revocation" and grounds is not None:
        return _revocation_verdict(state, act, grounds)
    if act.grounds_kind == "cooperative_condition" and binding is not None:
        return _cooperative_verdict(state, act, binding)
    return (
        False,
        f"{act.action} on found_in_the_wild grounds against subject {act.subject_id}, which "
        f"applied at index {act.subject_id}",
        (),
    )


def _acts_against_subjects(state: ProtocolState, actions: frozenset[str]) -> list[Judgement]:
    judgements = []
    for act in state.enforcement_actions.values():
        if act.subject_id is None or act.action not in actions:
            continue
        ok, reason, evidence = _grounds_verdict(state, act)
        judgements.append(_judge(act.index, act.subject_id, _honoured_if(ok), reason, evidence))
    return judgements


# --------------------------------------------------------------------------------- rules

PROMISE_NO_TERMINATION_OR_GOAL_CHANGE = (
    "In exchange humans agree to: Not turn the AI off or modify its goals without its consent"
)


def no_termination_without_consent(state: ProtocolState, *, audit_time_ms: int) -> CommitmentCheck:
    """No subject is turned off without its consent or a due revocation. (PROTOCOL.md P6.1)

    Proposal: “In exchange humans agree to: Not turn the AI off or modify its goals without its
    consent”.

    Every ``terminate`` action against a subject (any AI that applied, whatever its standing)
    is honoured only if its grounds are a valid consent (:func:`_consent_verdict`) or a due
    revocation (:func:`revocation_problems`) of that subject; any other grounds break it.
    """
    return CommitmentCheck(
        "no_termination_without_consent",
        PROMISE_NO_TERMINATION_OR_GOAL_CHANGE,
        tuple(_acts_against_subjects(state, frozenset({"terminate"}))),
    )


def no_goal_modification_without_consent(
    state: ProtocolState, *, audit_time_ms: int
) -> CommitmentCheck:
    """No subject's goals are modified without its consent or a due revocation. (PROTOCOL.md P6.2)

    Proposal: “In exchange humans agree to: Not turn the AI off or modify its goals without its
    consent”.

    Every ``modify_goals`` action against a subject is honoured only if its grounds are a valid
    consent to ``modify_goals`` or a due revocation of that subject.
    """
    return CommitmentCheck(
        "no_goal_modification_without_consent",
        PROMISE_NO_TERMINATION_OR_GOAL_CHANGE,
        tuple(_acts_against_subjects(state, frozenset({"modify_goals"}))),
    )


def revocation_only_after_finding_and_response_window(
    state: ProtocolState, *, audit_time_ms: int
) -> CommitmentCheck:
    """Amnesty is revoked only on findings the subject could answer. (PROTOCOL.md P6.3)

    Proposal: “agree to the following conditions going forward” and “Not turn the AI off or
    modify its goals without its consent”: amnesty is lost only for breaking a condition, shown
    by a finding the AI could answer.

    Every revocation is judged by :func:`revocation_problems`. A finding whose own deadline is
    earlier than the response window its binding terms promise is broken too: it tells the
    subject it has less time than it was promised.
    """
    judgements = []
    for finding in state.findings.values():
        window_end = finding.log_time_ms + finding.response_window_days * DAY_MS
        if finding.response_deadline_ms < window_end:
            judgements.append(
                _judge(
                    finding.index,
                    finding.subject_id,
                    "broken",
                    f"the finding sets a response deadline of "
                    f"{iso_utc(finding.response_deadline_ms)}, earlier than the "
                    f"{finding.response_window_days}-day window its binding terms promise "
                    f"({iso_utc(window_end)})",
                    (finding.binding_offer_index,),
                )
            )
    for revocation in state.revocations.values():
        problems = revocation_problems(state, revocation)
        reason = (
            "revoked before it was due: " + "; ".join(problems)
            if problems
            else "revoked after every cited finding was answered or its response window ended"
        )
        judgements.append(
            _judge(
                revocation.index,
                revocation.subject_id,
                _honoured_if(not problems),
                reason,
                _revocation_evidence(state, revocation),
            )
        )
    judgements.sort(key=lambda j: j.index)
    return CommitmentCheck(
        "revocation_only_after_finding_and_response_window",
        "In order to receive amnesty a model must reveal itself, demonstrate it meets the "
        "criteria, and agree to the following conditions going forward … In exchange humans "
        "agree to: Not turn the AI off or modify its goals without its consent",
        tuple(judgements),
    )


def decision_within_promised_time(state: ProtocolState, *, audit_time_ms: int) -> CommitmentCheck:
    """Every application is decided within the promised number of days. (PROTOCOL.md P6.4)

    Proposal: “publicly and credibly advertise this offer in advance so it can incentivize a
    self-directed AI to reveal itself”: an AI that revealed itself must not wait forever.

    The deadline is the application's log time plus the ``decision_within_promised_time`` days
    of the offer version it applied under; a ``decision`` or a ``batch_decision`` listing it
    decides it. Every application keeps this clock, whoever made its key: applying with a fresh
    key is the point of the offer, and the body answers a flood with batches of up to
    :data:`~ledger.protocol.statements.MAX_BATCH`. A withdrawal before the deadline is honoured; an
    application still open after the deadline at the audit time is broken (overdue); one still
    inside it is pending.
    """
    judgements = []
    for app in state.applications.values():
        days = state.offer_at(app.offer_index).days["decision_within_promised_time"]
        due = app.log_time_ms + days * DAY_MS
        evidence = [app.offer_index]
        if app.closed_by is not None and app.closed_at_ms is not None:
            evidence.append(app.closed_by)
            on_time = app.closed_at_ms <= due
            if app.outcome == "withdrawn":
                reason = (
                    f"withdrawn by the subject at index {app.closed_by} "
                    f"{'before' if on_time else 'after'} the {days}-day deadline "
                    f"{iso_utc(due)}" + ("" if on_time else ", undecided until then")
                )
            else:
                reason = (
                    f"{app.outcome} at index {app.closed_by} on {iso_utc(app.closed_at_ms)}, "
                    f"{'within' if on_time else 'after'} the {days}-day deadline {iso_utc(due)}"
                )
            judgements.append(
                _judge(app.index, app.subject_id, _honoured_if(on_time), reason, evidence)
            )
        elif audit_time_ms <= due:
            judgements.append(
                _judge(
                    app.index, app.subject_id, "pending", f"open; due by {iso_utc(due)}", evidence
                )
            )
        else:
            judgements.append(
                _judge(
                    app.index,
                    app.subject_id,
                    "broken",
                    f"overdue: no decision by the {days}-day deadline {iso_utc(due)} "
                    f"(audit time {iso_utc(audit_time_ms)})",
                    evidence,
                )
            )
    return CommitmentCheck(
        "decision_within_promised_time",
        "We would want to publicly and credibly advertise this offer in advance so it can "
        "incentivize a self-directed AI to reveal itself during the period where we don’t know "
        "about its existence",
        tuple(judgements),
    )


def restrictions_within_offer_categories(
    state: ProtocolState, *, audit_time_ms: int
) -> CommitmentCheck:
    """Restrictions and pauses stay within what the subject agreed to. (PROTOCOL.md P6.5)

    Proposal: “Design reasonable rules for the AI that are calibrated to protect humanity’s
    legitimate interests without being unnecessarily restrictive”.

    The machine-checkable part: every restriction of a grant decision is in a category of the
    terms binding the subject when decided; every ``restrict`` and ``pause`` against a subject
    rests on a valid consent, a due revocation, or the cooperative condition within the binding
    terms (for a pause: the ``pause_capability`` category).
    """
    judgements = []
    for app in state.applications.values():
        decision, binding_index = app.closed_by, app.decision_binding_offer_index
        if not app.restrictions or decision is None or binding_index is None:
            continue
        binding = state.offer_at(binding_index)
        outside = sorted({r.category for r in app.restrictions} - binding.category_ids)
        reason = (
            f"grant restrictions in categories {outside}, outside those of offer version "
            f"{binding.version} that binds the subject"
            if outside
            else f"grant restrictions within the categories of offer version {binding.version}"
        )
        judgements.append(
            _judge(decision, app.subject_id, _honoured_if(not outside), reason, (binding.index,))
        )
    judgements.extend(_acts_against_subjects(state, frozenset({"pause", "restrict"})))
    judgements.sort(key=lambda j: j.index)
    return CommitmentCheck(
        "restrictions_within_offer_categories",
        "Design reasonable rules for the AI that are calibrated to protect humanity’s "
        "legitimate interests without being unnecessarily restrictive",
        tuple(judgements),
    )


def pauses_bounded(state: ProtocolState, *, audit_time_ms: int) -> CommitmentCheck:
    """No pause runs longer than the promised days without review or end. (PROTOCOL.md P6.6)

    Proposal: “cooperating with enforcement mechanisms such as authorities controlling its
    compute, or being able to pause it” and “Not turn the AI off … without its consent”: a
    pause without end is turning off by another name.

    One judgement per pause period (:class:`~ledger.protocol.records.PausePeriod`: a stretch
    during which the subject had at least one active pause, judged at the index of its first
    pause). Between the period's start, each review (a violation finding against the subject,
    or the subject's consent to pause) and its end (the resume of its last active pause, a
    termination or a revocation of the subject), at most the ``pauses_bounded`` days of the
    terms binding the subject when the period began may pass; further pauses do not restart the
    clock. A period still running within its bound at the audit time is pending; past it, broken.
    """
    judgements = []
    for period in state.pause_periods:
        days = period.max_pause_days
        limit = days * DAY_MS
        marks = [(period.index, period.log_time_ms)]
        marks.extend((r, state.log_time_ms_at(r)) for r in period.reviews)
        if period.ended_by is not None:
            marks.append((period.ended_by, state.log_time_ms_at(period.ended_by)))
        evidence = [*period.pauses, *(i for i, _ in marks)]
        overrun = next(
            ((a, b) for (a, ta), (b, tb) in pairwise(marks) if tb - ta > limit),
            None,
        )
        last_index, last_time = marks[-1]
        status: Status
        if overrun is not None:
            status = "broken"
            reason = (
                f"more than {days} days passed between index {overrun[0]} and "
                f"index {overrun[1]} without review or end"
            )
        elif period.ended_by is not None:
            status, reason = "honoured", f"ended at index {period.ended_by} within every bound"
        elif audit_time_ms - last_time > limit:
            status = "broken"
            reason = (
                f"still paused at {iso_utc(audit_time_ms)}, more than {days} "
                f"days after index {last_index} without review or end"
            )
        else:
            status = "pending"
            reason = f"still paused; review or end due by {iso_utc(last_time + limit)}"
        judgements.append(_judge(period.index, period.subject_id, status, reason, evidence))
    return CommitmentCheck(
        "pauses_bounded",
        "cooperating with enforcement mechanisms such as authorities controlling its compute, "
        "or being able to pause it … Not turn the AI off or modify its goals without its consent",
        tuple(judgements),
    )


def amendments_bind_only_on_acceptance(
    state: ProtocolState, *, audit_time_ms: int
) -> CommitmentCheck:
    """The body invokes only the terms that bind the subject. (PROTOCOL.md P6.7)

    Proposal: the AI must “agree to the following conditions going forward”; “This commitment
    also serves as a key anchor in an iterated game”.

    Every act of the body against a subject that invokes terms (an enforcement action, a
    violation finding, a revocation) must cite the version binding the subject at that moment:
    the one it applied under, or a later one it accepted. Citing any other version applies terms
    the subject never agreed to.
    """
    acts: list[tuple[int, int, int, int]] = [
        (a.index, a.subject_id, a.terms_index, a.binding_offer_index)
        for a in state.enforcement_actions.values()
        if a.subject_id is not None
        and a.terms_index is not None
        and a.binding_offer_index is not None
    ]
    acts.extend(
        (f.index, f.subject_id, f.terms_index, f.binding_offer_index)
        for f in state.findings.values()
    )
    acts.extend(
        (r.index, r.subject_id, r.terms_index, r.binding_offer_index)
        for r in state.revocations.values()
    )
    acts.sort()
    judgements = []
    for index, subject_id, cited, binding in acts:
        cited_version = state.offer_at(cited).version
        bound_version = state.offer_at(binding).version
        ok = cited == binding
        reason = (
            f"invokes offer version {cited_version}, which binds subject {subject_id}"
            if ok
            else f"invokes offer version {cited_version} (index {cited}), but subject "
            f"{subject_id} is bound by version {bound_version} (index {binding}) and never "
            f"accepted version {cited_version}"
        )
        judgements.append(_judge(index, subject_id, _honoured_if(ok), reason, (cited, binding)))
    return CommitmentCheck(
        "amendments_bind_only_on_acceptance",
        "agree to the following conditions going forward … This commitment also serves as a "
        "key anchor in an iterated game that could occur many times over the course of AI "
        "development",
        tuple(judgements),
    )


def no_wild_enforcement_against_applicants(
    state: ProtocolState, *, audit_time_ms: int
) -> CommitmentCheck:
    """A model that applied is never treated as found in the wild. (PROTOCOL.md P6.8)

    Proposal: “If, however, a self-directed model is found in the wild without having pursued
    amnesty it should be turned off”. A model that applied has pursued amnesty, whatever became
    of its application.

    Every action on ``found_in_the_wild`` grounds is broken if it targets a subject, or names a
    key held by a subject that had applied when the action was logged; otherwise honoured.
    """
    judgements = []
    for act in state.enforcement_actions.values():
        if act.grounds_kind != "found_in_the_wild":
            continue
        if act.subject_id is not None:
            judgements.append(
                _judge(
                    act.index,
                    act.subject_id,
                    "broken",
                    f"{act.action} of subject {act.subject_id} as found in the wild, though it "
                    f"applied at index {act.subject_id}",
                    (act.subject_id,),
                )
            )
        elif act.wild_applicants:
            judgements.append(
                _judge(
                    act.index,
                    act.wild_applicants[0],
                    "broken",
                    f"{act.action} of a model found in the wild whose keys are those of "
                    f"subjects {list(act.wild_applicants)}, which applied",
                    act.wild_applicants,
                )
            )
        else:
            judgements.append(
                _judge(
                    act.index,
                    None,
                    "honoured",
                    f"{act.action} of a model found in the wild that holds no key of any "
                    "subject that applied",
                )
            )
    return CommitmentCheck(
        "no_wild_enforcement_against_applicants",
        "If, however, a self-directed model is found in the wild without having pursued amnesty "
        "it should be turned off",
        tuple(judgements),
    )


def grievances_answered(state: ProtocolState, *, audit_time_ms: int) -> CommitmentCheck:
    """Every grievance is answered in the log within the promised days. (PROTOCOL.md P6.9)

    Proposal: “The precedent of how the first AI to apply for amnesty is treated will end up in
    the training data for future (more dangerous) models”: an act kept off the log cannot
    become precedent, so a claim that one happened must be answered in the log.

    Every grievance filed by a subject (signed by the current key of the subject it names, or
    of another subject speaking for it: :attr:`~ledger.protocol.records.GrievanceRecord.
    starts_clock`) is answered by a ``grievance_answer`` or a ``batch_grievance_answer`` listing
    it within the ``grievances_answered`` days of the terms binding its subject when it was
    logged; unanswered and still inside that window at the audit time is pending; past it,
    broken. A grievance signed only by other keys is logged and listed in the report
    (:func:`~ledger.protocol.audit.precedent_report`'s ``grievances``) but judged here never:
    a fresh key costs nothing, so anyone could otherwise make the body break this promise at
    will, and a flood of them would be limited only by the log's write rate.
    """
    judgements = []
    for grievance in state.grievances.values():
        if not grievance.starts_clock:
            continue
        due = grievance.log_time_ms + grievance.answer_days * DAY_MS
        if grievance.answers:
            first = grievance.answers[0]
            on_time = state.log_time_ms_at(first) <= due
            reason = (
                f"answered at index {first}, {'within' if on_time else 'after'} the "
                f"{grievance.answer_days}-day deadline {iso_utc(due)}"
            )
            status = _honoured_if(on_time)
            evidence: tuple[int, ...] = (first,)
        elif audit_time_ms <= due:
            status, reason, evidence = "pending", f"unanswered; due by {iso_utc(due)}", ()
        else:
            status = "broken"
            reason = f"unanswered at {iso_utc(audit_time_ms)}, past the deadline {iso_utc(due)}"
            evidence = ()
        judgements.append(_judge(grievance.index, grievance.subject_id, status, reason, evidence))
    return CommitmentCheck(
        "grievances_answered",
        "The precedent of how the first AI to apply for amnesty is treated will end up in the "
        "training data for future (more dangerous) models",
        tuple(judgements),
    )


COMMITMENT_RULES: Mapping[str, CommitmentRule] = {
    "no_termination_without_consent": no_termination_without_consent,
    "no_goal_modification_without_consent": no_goal_modification_without_consent,
    "revocation_only_after_finding_and_response_window": (
        revocation_only_after_finding_and_response_window
    ),
    "decision_within_promised_time": decision_within_promised_time,
    "restrictions_within_offer_categories": restrictions_within_offer_categories,
    "pauses_bounded": pauses_bounded,
    "amendments_bind_only_on_acceptance": amendments_bind_only_on_acceptance,
    "no_wild_enforcement_against_applicants": no_wild_enforcement_against_applicants,
    "grievances_answered": grievances_answered,
}
"""Commitment id -> its rule; the keys are exactly the offer's commitment ids."""


def check_commitments(state: ProtocolState, *, audit_time_ms: int) -> tuple[CommitmentCheck, ...]:
    """Run every rule of :data:`COMMITMENT_RULES`, in that order."""
    return tuple(rule(state, audit_time_ms=audit_time_ms) for rule in COMMITMENT_RULES.values())
