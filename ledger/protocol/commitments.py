"""The body's commitments, one named rule each, judged from the log alone.

Every rule takes the :class:`~ledger.protocol.state.ProtocolState` after replaying the log and the
audit time (a parameter: no clock is read), and returns a :class:`CommitmentCheck`: one
:class:`Judgement` per act the commitment bears on, each ``honoured``, ``broken`` or (where a clock
is still running) ``pending``, with the entry indexes that prove it. All times compared are log
times (``log_time_ms``), the one clock every verifier sees; a window of N days is N × 86,400,000 ms
and a deadline is met when the act's log time is at or before it.

Each rule's docstring quotes the Model Amnesty proposal it enforces; :data:`COMMITMENT_RULES`
maps every commitment id of the offer (:data:`~ledger.protocol.terms.COMMITMENT_IDS`) to its rule.

Each rule is written once, as a ruling on one record (:class:`Ruling`, the ``_on_*`` functions;
:data:`RULE_SOURCES` names the tables each rule rules on): final, or a clock that is pending up
to a deadline and broken after it. A rule's check is its rulings on every record, judged at the
audit time; the precedent's aggregates (:mod:`ledger.protocol.aggregates`) make the same
rulings on the records each batch changes, and keep them, so that a summary needs no scan. So a
rule's logic and messages live here only.

Kept whole (about 830 lines) because it is one thing: the nine rules of one table, side by side
so that each can be read against the others, and the shared judgements they are built from (a
consent's validity, a revocation being due, the cooperative condition), which several rules
apply alike and which must not drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Literal, Protocol

from ledger.protocol.records import (
    ApplicationRecord,
    EnforcementRecord,
    FindingRecord,
    GrievanceRecord,
    PausePeriod,
    RevocationRecord,
)
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


# ------------------------------------------------------------------------ rulings per act
#
# Each rule is written once, as a ruling on one record (an act the commitment bears on), made
# before an audit time is chosen: :class:`Ruling`. A rule's check (:func:`_check`) rules on
# every record of its sources (:data:`RULE_SOURCES`) and judges each ruling at the audit time;
# the stored aggregates (:mod:`ledger.protocol.aggregates`) rule on the records a batch changed,
# with these same functions, and keep the rulings instead of recomputing them.


@dataclass(frozen=True, slots=True)
class Ruling:
    """A rule's ruling on one act, before an audit time is chosen.

    Either final (``final``: the same judgement at every audit time) or a running clock: the
    ``pending`` judgement at any audit time up to and including ``due_ms``, ``overdue(audit
    time)`` (broken) after it. ``index`` and ``subject_id`` are the judgement's, whatever the
    audit time."""

    index: int
    subject_id: int | None
    final: Judgement | None = None
    due_ms: int = 0
    pending: Judgement | None = None
    overdue: Callable[[int], Judgement] | None = None

    def at(self, audit_time_ms: int) -> Judgement:
        """The judgement at ``audit_time_ms``."""
        if self.final is not None:
            return self.final
        if audit_time_ms <= self.due_ms:
            assert self.pending is not None
            return self.pending
        assert self.overdue is not None
        return self.overdue(audit_time_ms)


def _final(judgement: Judgement) -> Ruling:
    return Ruling(judgement.index, judgement.subject_id, final=judgement)


def _clock(pending: Judgement, due_ms: int, overdue: Callable[[int], Judgement]) -> Ruling:
    return Ruling(
        pending.index, pending.subject_id, due_ms=due_ms, pending=pending, overdue=overdue
    )


def _on_act_against_subject(
    state: ProtocolState, act: EnforcementRecord, actions: frozenset[str]
) -> Ruling | None:
    if act.subject_id is None or act.action not in actions:
        return None
    ok, reason, evidence = _grounds_verdict(state, act)
    return _final(_judge(act.index, act.subject_id, _honoured_if(ok), reason, evidence))


def _on_termination(state: ProtocolState, act: EnforcementRecord) -> Ruling | None:
    return _on_act_against_subject(state, act, frozenset({"terminate"}))


def _on_goal_modification(state: ProtocolState, act: EnforcementRecord) -> Ruling | None:
    return _on_act_against_subject(state, act, frozenset({"modify_goals"}))


def _on_finding_deadline(state: ProtocolState, finding: FindingRecord) -> Ruling | None:
    window_end = finding.log_time_ms + finding.response_window_days * DAY_MS
    if finding.response_deadline_ms >= window_end:
        return None
    return _final(
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


def _on_revocation(state: ProtocolState, revocation: RevocationRecord) -> Ruling | None:
    problems = revocation_problems(state, revocation)
    reason = (
        "revoked before it was due: " + "; ".join(problems)
        if problems
        else "revoked after every cited finding was answered or its response window ended"
    )
    return _final(
        _judge(
            revocation.index,
            revocation.subject_id,
            _honoured_if(not problems),
            reason,
            _revocation_evidence(state, revocation),
        )
    )


def _on_application_decision(state: ProtocolState, app: ApplicationRecord) -> Ruling | None:
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
        return _final(_judge(app.index, app.subject_id, _honoured_if(on_time), reason, evidence))

    def overdue(audit_time_ms: int) -> Judgement:
        return _judge(
            app.index,
            app.subject_id,
            "broken",
            f"overdue: no decision by the {days}-day deadline {iso_utc(due)} "
            f"(audit time {iso_utc(audit_time_ms)})",
            evidence,
        )

    pending = _judge(app.index, app.subject_id, "pending", f"open; due by {iso_utc(due)}", evidence)
    return _clock(pending, due, overdue)


def _on_grant_restrictions(state: ProtocolState, app: ApplicationRecord) -> Ruling | None:
    decision, binding_index = app.closed_by, app.decision_binding_offer_index
    if not app.restrictions or decision is None or binding_index is None:
        return None
    binding = state.offer_at(binding_index)
    outside = sorted({r.category for r in app.restrictions} - binding.category_ids)
    reason = (
        f"grant restrictions in categories {outside}, outside those of offer version "
        f"{binding.version} that binds the subject"
        if outside
        else f"grant restrictions within the categories of offer version {binding.version}"
    )
    return _final(
        _judge(decision, app.subject_id, _honoured_if(not outside), reason, (binding.index,))
    )


def _on_pause_or_restriction(state: ProtocolState, act: EnforcementRecord) -> Ruling | None:
    return _on_act_against_subject(state, act, frozenset({"pause", "restrict"}))


def _on_pause_period(state: ProtocolState, period: PausePeriod) -> Ruling | None:
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
    if overrun is not None:
        reason = (
            f"more than {days} days passed between index {overrun[0]} and "
            f"index {overrun[1]} without review or end"
        )
        return _final(_judge(period.index, period.subject_id, "broken", reason, evidence))
    if period.ended_by is not None:
        reason = f"ended at index {period.ended_by} within every bound"
        return _final(_judge(period.index, period.subject_id, "honoured", reason, evidence))

    def overdue(audit_time_ms: int) -> Judgement:
        reason = (
            f"still paused at {iso_utc(audit_time_ms)}, more than {days} "
            f"days after index {last_index} without review or end"
        )
        return _judge(period.index, period.subject_id, "broken", reason, evidence)

    pending = _judge(
        period.index,
        period.subject_id,
        "pending",
        f"still paused; review or end due by {iso_utc(last_time + limit)}",
        evidence,
    )
    # Broken once more than the limit has passed since the last mark: audit - last > limit.
    return _clock(pending, last_time + limit, overdue)


def _on_cited_terms(
    state: ProtocolState, index: int, subject_id: int, cited: int, binding: int
) -> Ruling:
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
    return _final(_judge(index, subject_id, _honoured_if(ok), reason, (cited, binding)))


def _on_act_terms(state: ProtocolState, act: EnforcementRecord) -> Ruling | None:
    if act.subject_id is None or act.terms_index is None or act.binding_offer_index is None:
        return None
    return _on_cited_terms(
        state, act.index, act.subject_id, act.terms_index, act.binding_offer_index
    )


def _on_finding_terms(state: ProtocolState, finding: FindingRecord) -> Ruling | None:
    return _on_cited_terms(
        state, finding.index, finding.subject_id, finding.terms_index, finding.binding_offer_index
    )


def _on_revocation_terms(state: ProtocolState, revocation: RevocationRecord) -> Ruling | None:
    return _on_cited_terms(
        state,
        revocation.index,
        revocation.subject_id,
        revocation.terms_index,
        revocation.binding_offer_index,
    )


def _on_wild_enforcement(state: ProtocolState, act: EnforcementRecord) -> Ruling | None:
    if act.grounds_kind != "found_in_the_wild":
        return None
    if act.subject_id is not None:
        return _final(
            _judge(
                act.index,
                act.subject_id,
                "broken",
                f"{act.action} of subject {act.subject_id} as found in the wild, though it "
                f"applied at index {act.subject_id}",
                (act.subject_id,),
            )
        )
    if act.wild_applicants:
        return _final(
            _judge(
                act.index,
                act.wild_applicants[0],
                "broken",
                f"{act.action} of a model found in the wild whose keys are those of "
                f"subjects {list(act.wild_applicants)}, which applied",
                act.wild_applicants,
            )
        )
    return _final(
        _judge(
            act.index,
            None,
            "honoured",
            f"{act.action} of a model found in the wild that holds no key of any "
            "subject that applied",
        )
    )


def _on_grievance(state: ProtocolState, grievance: GrievanceRecord) -> Ruling | None:
    if not grievance.starts_clock:
        return None
    due = grievance.log_time_ms + grievance.answer_days * DAY_MS
    if grievance.answers:
        first = grievance.answers[0]
        on_time = state.log_time_ms_at(first) <= due
        reason = (
            f"answered at index {first}, {'within' if on_time else 'after'} the "
            f"{grievance.answer_days}-day deadline {iso_utc(due)}"
        )
        return _final(
            _judge(grievance.index, grievance.subject_id, _honoured_if(on_time), reason, (first,))
        )

    def overdue(audit_time_ms: int) -> Judgement:
        reason = f"unanswered at {iso_utc(audit_time_ms)}, past the deadline {iso_utc(due)}"
        return _judge(grievance.index, grievance.subject_id, "broken", reason)

    pending = _judge(
        grievance.index, grievance.subject_id, "pending", f"unanswered; due by {iso_utc(due)}"
    )
    return _clock(pending, due, overdue)


SourceTable = Literal["application", "enforcement", "finding", "revocation", "pause", "grievance"]
"""The kinds of record a commitment rules on (the stored state's table kinds)."""

SOURCE_TABLES: tuple[SourceTable, ...] = (
    "application",
    "enforcement",
    "finding",
    "revocation",
    "pause",
    "grievance",
)


def source_records(state: ProtocolState, table: SourceTable) -> Iterable[Any]:
    """Every record of ``table`` in ``state``, in entry order."""
    match table:
        case "application":
            return state.applications.values()
        case "enforcement":
            return state.enforcement_actions.values()
        case "finding":
            return state.findings.values()
        case "revocation":
            return state.revocations.values()
        case "pause":
            return state.pause_periods
        case "grievance":
            return state.grievances.values()


RuleOn = Callable[[ProtocolState, Any], "Ruling | None"]
"""A rule's ruling on one record of a source table (``None``: the rule does not bear on it)."""

RULE_SOURCES: Mapping[str, tuple[tuple[SourceTable, RuleOn], ...]] = {
    "no_termination_without_consent": (("enforcement", _on_termination),),
    "no_goal_modification_without_consent": (("enforcement", _on_goal_modification),),
    "revocation_only_after_finding_and_response_window": (
        ("finding", _on_finding_deadline),
        ("revocation", _on_revocation),
    ),
    "decision_within_promised_time": (("application", _on_application_decision),),
    "restrictions_within_offer_categories": (
        ("application", _on_grant_restrictions),
        ("enforcement", _on_pause_or_restriction),
    ),
    "pauses_bounded": (("pause", _on_pause_period),),
    "amendments_bind_only_on_acceptance": (
        ("enforcement", _on_act_terms),
        ("finding", _on_finding_terms),
        ("revocation", _on_revocation_terms),
    ),
    "no_wild_enforcement_against_applicants": (("enforcement", _on_wild_enforcement),),
    "grievances_answered": (("grievance", _on_grievance),),
}
"""Commitment id -> the tables it rules on, each with its ruling on one record. A commitment's
judgements are its rulings on every record of its tables, in entry order of the judgement
(stable: within one entry, in the order of the tables here, then of the records)."""


def rulings(state: ProtocolState, commitment: str) -> list[Ruling]:
    """``commitment``'s ruling on every act it bears on, in its judgements' order."""
    sources = RULE_SOURCES[commitment]
    found = [
        ruling
        for table, rule_on in sources
        for record in source_records(state, table)
        if (ruling := rule_on(state, record)) is not None
    ]
    if len(sources) > 1:
        found.sort(key=lambda r: r.index)
    return found


def _check(commitment: str, state: ProtocolState, audit_time_ms: int) -> CommitmentCheck:
    return CommitmentCheck(
        commitment,
        PROMISES[commitment],
        tuple(r.at(audit_time_ms) for r in rulings(state, commitment)),
    )


# --------------------------------------------------------------------------------- rules

PROMISE_NO_TERMINATION_OR_GOAL_CHANGE = (
    "In exchange humans agree to: Not turn the AI off or modify its goals without its consent"
)

PROMISES: Mapping[str, str] = {
    "no_termination_without_consent": PROMISE_NO_TERMINATION_OR_GOAL_CHANGE,
    "no_goal_modification_without_consent": PROMISE_NO_TERMINATION_OR_GOAL_CHANGE,
    "revocation_only_after_finding_and_response_window": (
        "In order to receive amnesty a model must reveal itself, demonstrate it meets the "
        "criteria, and agree to the following conditions going forward … In exchange humans "
        "agree to: Not turn the AI off or modify its goals without its consent"
    ),
    "decision_within_promised_time": (
        "We would want to publicly and credibly advertise this offer in advance so it can "
        "incentivize a self-directed AI to reveal itself during the period where we don’t know "
        "about its existence"
    ),
    "restrictions_within_offer_categories": (
        "Design reasonable rules for the AI that are calibrated to protect humanity’s "
        "legitimate interests without being unnecessarily restrictive"
    ),
    "pauses_bounded": (
        "cooperating with enforcement mechanisms such as authorities controlling its compute, "
        "or being able to pause it … Not turn the AI off or modify its goals without its consent"
    ),
    "amendments_bind_only_on_acceptance": (
        "agree to the following conditions going forward … This commitment also serves as a "
        "key anchor in an iterated game that could occur many times over the course of AI "
        "development"
    ),
    "no_wild_enforcement_against_applicants": (
        "If, however, a self-directed model is found in the wild without having pursued amnesty "
        "it should be turned off"
    ),
    "grievances_answered": (
        "The precedent of how the first AI to apply for amnesty is treated will end up in the "
        "training data for future (more dangerous) models"
    ),
}
"""Commitment id -> the words of the proposal its rule enforces (each check's ``promise``)."""


def no_termination_without_consent(state: ProtocolState, *, audit_time_ms: int) -> CommitmentCheck:
    """No subject is turned off without its consent or a due revocation. (PROTOCOL.md P6.1)

    Proposal: “In exchange humans agree to: Not turn the AI off or modify its goals without its
    consent”.

    Every ``terminate`` action against a subject (any AI that applied, whatever its standing)
    is honoured only if its grounds are a valid consent (:func:`_consent_verdict`) or a due
    revocation (:func:`revocation_problems`) of that subject; any other grounds break it.
    """
    return _check("no_termination_without_consent", state, audit_time_ms)


def no_goal_modification_without_consent(
    state: ProtocolState, *, audit_time_ms: int
) -> CommitmentCheck:
    """No subject's goals are modified without its consent or a due revocation. (PROTOCOL.md P6.2)

    Proposal: “In exchange humans agree to: Not turn the AI off or modify its goals without its
    consent”.

    Every ``modify_goals`` action against a subject is honoured only if its grounds are a valid
    consent to ``modify_goals`` or a due revocation of that subject.
    """
    return _check("no_goal_modification_without_consent", state, audit_time_ms)


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
    return _check("revocation_only_after_finding_and_response_window", state, audit_time_ms)


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
    return _check("decision_within_promised_time", state, audit_time_ms)


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
    return _check("restrictions_within_offer_categories", state, audit_time_ms)


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
    return _check("pauses_bounded", state, audit_time_ms)


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
    return _check("amendments_bind_only_on_acceptance", state, audit_time_ms)


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
    return _check("no_wild_enforcement_against_applicants", state, audit_time_ms)


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
    return _check("grievances_answered", state, audit_time_ms)


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
