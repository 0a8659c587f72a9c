"""The admission rules and transitions of the statements the issuing body signs.

:class:`BodyRules` holds one rule per statement type the body makes — ``keyset``, ``offer`` and
``offer_amendment`` (:meth:`~BodyRules._plan_publish`), ``offer_withdrawal``, ``decision``,
``enforcement_action``, ``violation_finding``, ``revocation`` and ``grievance_answer`` — each a
``_plan_<type>(s, body)`` that runs the statement's checks and returns the
:data:`~ledger.protocol.tables.Effect` it would have;
:meth:`~ledger.protocol.state.ProtocolState._plan_body` dispatches to them.

Contract: a plan only reads the state and refuses with
:func:`~ledger.protocol.tables.refuse`; only the effect it returns writes, and
:meth:`~ledger.protocol.state.ProtocolState.apply` runs that only once every check has passed.
Every rule but a keyset genesis requires the threshold of the keyset in force
(:meth:`~ledger.protocol.tables.StateTables._require_body`). Rules check authority and
structure only: an act that breaks a commitment is admitted, and
:mod:`ledger.protocol.commitments` judges it.

The pause periods are kept here, with the enforcement actions that start and end them (a
revocation ends one too; a finding or a pause consent reviews one:
:meth:`~ledger.protocol.tables.StateTables._review_pauses`).
"""

from __future__ import annotations

from ledger.protocol.records import (
    ConsentRecord,
    EnforcementRecord,
    FindingRecord,
    KeysetRecord,
    OfferVersion,
    PausePeriod,
    RevocationRecord,
    SubjectRecord,
)
from ledger.protocol.statements import (
    ConsentGrounds,
    DecisionBody,
    EnforcementActionBody,
    GrievanceAnswerBody,
    KeysetBody,
    LoggedStatement,
    OfferWithdrawalBody,
    RevocationBody,
    RevocationGrounds,
    SubjectTarget,
    ViolationFindingBody,
)
from ledger.protocol.tables import (
    ANY,
    APPLICATION,
    CONSENT,
    ENFORCEMENT,
    FINDING,
    GRIEVANCE,
    KEYSET,
    OFFERS,
    RESTRICTING,
    REVOCATION,
    Effect,
    StateTables,
    refuse,
)
from ledger.protocol.terms import OfferTerms


class BodyRules(StateTables):
    """The rules of the body's statements: what each may do, and what it changes."""

    def _plan_keyset(self, s: LoggedStatement, body: KeysetBody) -> Effect:
        members = frozenset(body.members)
        clash = sorted(members.intersection(self._key_owner))
        if clash:
            refuse(s, f"members {clash} are subject keys")
        signed_new = len(members & s.verified_signers)
        if body.previous is None:
            if self._keyset is not None:
                refuse(s, "only the first entry is a keyset genesis; a rotation names previous")
        else:
            old = self._require_body(s)
            previous = self._resolve(s, "body.previous", body.previous, KEYSET)
            if previous != old.index:
                refuse(
                    s, f"body.previous is index {previous}, but the keyset in force is {old.index}"
                )
        if signed_new < body.threshold:
            refuse(
                s,
                f"{signed_new} of {body.threshold} required distinct members of the new "
                "keyset signed",
            )
        record = KeysetRecord(s.index, members, body.threshold)

        def effect() -> None:
            self._keyset = record
            self._keysets.append(record)
            self._body_keys.update(members)

        return effect

    def _plan_publish(self, s: LoggedStatement, version: int, terms: OfferTerms) -> Effect:
        if version != self._latest_version + 1:
            refuse(
                s,
                f"version {version} does not follow the latest version {self._latest_version}",
            )
        offer = OfferVersion(
            version=version,
            index=s.index,
            kind=s.type,
            log_time_ms=s.log_time_ms,
            terms=terms,
            criterion_ids=terms.criterion_ids(),
            condition_ids=terms.condition_ids(),
            category_ids=terms.category_ids(),
            days=terms.commitment_days(),
        )

        def effect() -> None:
            self._offers[s.index] = offer
            self._offer_in_force = s.index
            self._latest_version = version

        return effect

    def _plan_offer_withdrawal(self, s: LoggedStatement, body: OfferWithdrawalBody) -> Effect:
        self._require_body(s)
        offer = self._require_in_force(s, "body.offer", body.offer)

        def effect() -> None:
            offer.withdrawn_by = s.index
            self._offer_in_force = None

        return effect

    def _plan_decision(self, s: LoggedStatement, body: DecisionBody) -> Effect:
        self._require_body(s)
        index = self._resolve(s, "body.application", body.application, APPLICATION)
        application = self._applications[index]
        if application.outcome != "open":
            refuse(
                s,
                f"application at index {index} is not open: it was {application.outcome} "
                f"at index {application.closed_by}",
            )
        criteria = self._offers[application.offer_index].criterion_ids
        if set(body.findings) != criteria:
            refuse(
                s,
                f"findings name {sorted(body.findings)}, but the application's offer has "
                f"criteria {sorted(criteria)}",
            )
        subject = self._subjects[application.subject_id]
        granted = body.outcome == "grant"

        def effect() -> None:
            application.outcome = "granted" if granted else "denied"
            application.closed_by = s.index
            application.closed_at_ms = s.log_time_ms
            application.findings = dict(body.findings)
            application.restrictions = tuple(body.restrictions)
            application.decision_binding_offer_index = subject.binding_offer_index
            subject.open_application = None
            subject.standing = application.outcome
            if application.restrictions:
                subject.active_restrictions[s.index] = None
            self._decisions[s.index] = application
            self._details[s.index] = body.outcome
            self._touch(subject, s.index)

        return effect

    def _plan_enforcement(self, s: LoggedStatement, body: EnforcementActionBody) -> Effect:
        self._require_body(s)
        target = body.target
        subject: SubjectRecord | None = None
        wild_applicants: tuple[int, ...] = ()
        if isinstance(target, SubjectTarget):
            subject = self._resolve_subject(s, "body.target.subject", target.subject)
        else:
            owners = {self._key_owner[k] for k in target.vkeys if k in self._key_owner}
            wild_applicants = tuple(sorted(owners))
        terms_index = (
            None if body.terms is None else self._resolve(s, "body.terms", body.terms, OFFERS)
        )
        grounds = body.grounds
        grounds_index: int | None = None
        consent: ConsentRecord | None = None
        if isinstance(grounds, ConsentGrounds):
            grounds_index = self._resolve(s, "body.grounds.consent", grounds.consent, CONSENT)
            consent = self._consents[grounds_index]
        elif isinstance(grounds, RevocationGrounds):
            grounds_index = self._resolve(
                s, "body.grounds.revocation", grounds.revocation, REVOCATION
            )
        ends: int | None = None
        if body.ends is not None and subject is not None:
            pausing = body.action == "resume"
            ends = self._resolve(s, "body.ends", body.ends, ENFORCEMENT if pausing else RESTRICTING)
            active = subject.active_pauses if pausing else subject.active_restrictions
            if ends not in active:
                what = "pause" if pausing else "restriction"
                refuse(
                    s,
                    f"body.ends is index {ends}, not an active {what} of subject "
                    f"{subject.subject_id}",
                )
        binding = None if subject is None else subject.binding_offer_index
        record = EnforcementRecord(
            index=s.index,
            log_time_ms=s.log_time_ms,
            action=body.action,
            subject_id=None if subject is None else subject.subject_id,
            binding_offer_index=binding,
            terms_index=terms_index,
            grounds_kind=None if grounds is None else grounds.kind,
            grounds_index=grounds_index,
            restrictions=tuple(body.restrictions),
            ends=ends,
            wild_applicants=wild_applicants,
        )
        consumes_consent = (
            consent is not None
            and consent.used_by is None
            and consent.subject_id == record.subject_id
            and consent.action == body.action
            and s.log_time_ms < consent.expires_ms
        )

        def effect() -> None:
            self._enforcement[s.index] = record
            self._details[s.index] = body.action
            if consent is not None and consumes_consent:
                consent.used_by = s.index
            for applicant in wild_applicants:
                self._touch(self._subjects[applicant], s.index)
            if subject is not None:
                self._enforce_on_subject(subject, record)

        return effect

    def _enforce_on_subject(self, subject: SubjectRecord, record: EnforcementRecord) -> None:
        index = record.index
        if record.action == "pause":
            self._start_pause(subject, record)
        elif record.action == "restrict":
            subject.active_restrictions[index] = None
        elif record.action == "terminate":
            subject.terminated_by.append(index)
            self._end_pauses(subject, index)
        elif record.action == "modify_goals":
            subject.goals_modified_by.append(index)
        elif record.ends is not None and record.action == "resume":
            del subject.active_pauses[record.ends]
            if not subject.active_pauses:
                self._end_pauses(subject, index)
        elif record.ends is not None:
            del subject.active_restrictions[record.ends]
        self._touch(subject, index)

    def _start_pause(self, subject: SubjectRecord, record: EnforcementRecord) -> None:
        subject.active_pauses[record.index] = None
        period = subject.pause_period
        if period is None:
            binding = self._offers[subject.binding_offer_index]
            period = PausePeriod(
                index=record.index,
                subject_id=subject.subject_id,
                log_time_ms=record.log_time_ms,
                max_pause_days=binding.days["pauses_bounded"],
            )
            subject.pause_period = period
            self._pause_periods.append(period)
        period.pauses.append(record.index)

    def _end_pauses(self, subject: SubjectRecord, index: int) -> None:
        subject.active_pauses.clear()
        if subject.pause_period is not None:
            subject.pause_period.ended_by = index
            subject.pause_period = None

    def _plan_finding(self, s: LoggedStatement, body: ViolationFindingBody) -> Effect:
        self._require_body(s)
        subject = self._resolve_subject(s, "body.subject", body.subject)
        if subject.standing != "granted":
            refuse(s, f"subject {subject.subject_id} is {subject.standing}, not granted")
        terms_index = self._resolve(s, "body.terms", body.terms, OFFERS)
        conditions = self._offers[terms_index].condition_ids
        if body.condition not in conditions:
            refuse(
                s,
                f"condition {body.condition!r} is not one of the cited terms' {sorted(conditions)}",
            )
        record = FindingRecord(
            index=s.index,
            log_time_ms=s.log_time_ms,
            subject_id=subject.subject_id,
            terms_index=terms_index,
            binding_offer_index=subject.binding_offer_index,
            response_deadline_ms=body.response_deadline_ms,
            response_window_days=self._offers[subject.binding_offer_index].days[
                "revocation_only_after_finding_and_response_window"
            ],
        )

        def effect() -> None:
            self._findings[s.index] = record
            self._details[s.index] = body.condition
            self._review_pauses(subject, s.index)
            self._touch(subject, s.index)

        return effect

    def _plan_revocation(self, s: LoggedStatement, body: RevocationBody) -> Effect:
        self._require_body(s)
        subject = self._resolve_subject(s, "body.subject", body.subject)
        if subject.standing != "granted":
            refuse(s, f"subject {subject.subject_id} is {subject.standing}, not granted")
        terms_index = self._resolve(s, "body.terms", body.terms, OFFERS)
        findings = tuple(
            self._resolve(s, f"body.findings.{n}", ref, FINDING)
            for n, ref in enumerate(body.findings)
        )
        record = RevocationRecord(
            index=s.index,
            log_time_ms=s.log_time_ms,
            subject_id=subject.subject_id,
            terms_index=terms_index,
            binding_offer_index=subject.binding_offer_index,
            finding_indexes=findings,
        )

        def effect() -> None:
            self._revocations[s.index] = record
            subject.standing = "revoked"
            self._end_pauses(subject, s.index)
            self._touch(subject, s.index)

        return effect

    def _plan_grievance_answer(self, s: LoggedStatement, body: GrievanceAnswerBody) -> Effect:
        self._require_body(s)
        grievance = self._grievances[self._resolve(s, "body.grievance", body.grievance, GRIEVANCE)]
        for n, ref in enumerate(body.entries):
            self._resolve(s, f"body.entries.{n}", ref, ANY)
        subject = self._subjects[grievance.subject_id]

        def effect() -> None:
            grievance.answers.append(s.index)
            self._touch(subject, s.index)

        return effect
