"""The admission rules and transitions of the statements the issuing body signs.

:class:`BodyRules` holds one rule per statement type the body makes — ``keyset``, ``offer`` and
``offer_amendment`` (:meth:`~BodyRules._plan_publish`), ``offer_withdrawal``, ``decision``,
``enforcement_action``, ``violation_finding``, ``revocation``, ``grievance_answer``, and the
batches ``batch_decision`` and ``batch_grievance_answer`` (which decide or answer each listed
item exactly as the single statement would, all or nothing) — each a
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

from collections.abc import Mapping

from ledger.protocol.keys import MLDSA44Key, PublicKey, key_label, public_key, public_keys
from ledger.protocol.quoting import quote
from ledger.protocol.records import (
    ApplicationRecord,
    ConsentRecord,
    EnforcementRecord,
    FindingRecord,
    GrievanceRecord,
    KeysetRecord,
    LogKeyRecord,
    OfferVersion,
    PausePeriod,
    RevocationRecord,
    SubjectRecord,
)
from ledger.protocol.statements import (
    BatchDecisionBody,
    BatchGrievanceAnswerBody,
    ConsentGrounds,
    CriterionFinding,
    DecisionBody,
    EnforcementActionBody,
    GrievanceAnswerBody,
    KeysetBody,
    LoggedStatement,
    LogKeyBody,
    OfferWithdrawalBody,
    Ref,
    Restriction,
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
        member_keys = public_keys(members)
        clash = sorted(
            f"{m} (the key of subject {self._key_owner[public_key(m)]})"
            for m in members
            if public_key(m) in self._key_owner
        )
        if clash:
            refuse(
                s, f"members {clash} are subject keys; a key is its public key, whatever its name"
            )
        bindings = tuple(body.mldsa44_of().items())
        self._check_member_mldsa44_keys(s, bindings)
        record = KeysetRecord(
            s.index, members, member_keys, body.threshold, body.signatures, bindings
        )
        signed_new = len(record.members_signing(s.signing_keys, s.signing_mldsa44_keys))
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
            both = ""
            if body.signatures == "hybrid":
                both = " with both their keys (signatures: hybrid)"
            refuse(
                s,
                f"{signed_new} of {body.threshold} required distinct members of the new "
                f"keyset signed{both}",
            )

        def effect() -> None:
            self._keyset = record
            self._keysets.append(record)
            self._body_keys |= member_keys
            self._body_keys |= {PublicKey(pq) for _, pq in bindings}

        return effect

    def _check_member_mldsa44_keys(
        self, s: LoggedStatement, bindings: tuple[tuple[PublicKey, MLDSA44Key], ...]
    ) -> None:
        """Refuse a keyset that binds an ML-DSA-44 key some subject holds or held, or that an
        earlier keyset bound to another member: like an Ed25519 key, an ML-DSA-44 key is one
        identity's, ever (a member keeps its own across rotations)."""
        earlier = {pq: member for k in self._keysets for member, pq in k.mldsa44_keys}
        for member, pq in bindings:
            owner = self._key_owner.get(PublicKey(pq))
            if owner is not None:
                refuse(
                    s,
                    f"an ML-DSA-44 key in body.mldsa44_keys is bound to subject {owner}: a key "
                    "is one identity's, ever",
                )
            held_by = earlier.get(pq)
            if held_by is not None and held_by != member:
                refuse(
                    s,
                    f"an ML-DSA-44 key in body.mldsa44_keys was bound to member "
                    f"{key_label(held_by)} by an earlier keyset: a key is one identity's, ever",
                )

    def _plan_log_key(self, s: LoggedStatement, body: LogKeyBody) -> Effect:
        """A ``log_key``: the log's ML-DSA-44 key, named after the log's origin, added once.

        The body's threshold anchors the key in history, so verifiers pinned to the Ed25519
        key alone learn it from the log (not out of band). One key, added once: a log that
        anchored one refuses another here (rotation would need a rule that retires the old
        key at an index, and verifiers that keep both; PROTOCOL.md). A log *created* with an
        ML-DSA-44 key has no entry for it; its writing server refuses this statement
        (:mod:`ledger.server.log_key`), which only it can know."""
        self._require_body(s)
        name = body.vkey.split("+", 1)[0]
        if s.origin is None:
            refuse(s, "the log's origin is not known here, and the key must be named after it")
        if name != s.origin:
            refuse(
                s,
                f"body.vkey is named {quote(name)}, not after the log's origin "
                f"{quote(s.origin)}: a log's keys are named after its origin",
            )
        if self._log_key is not None:
            refuse(
                s,
                f"the log's ML-DSA-44 key was added at index {self._log_key.index} "
                f"({self._log_key.vkey.split('+', 2)[1]}): a log adds one ML-DSA-44 key, once",
            )
        record = LogKeyRecord(s.index, body.vkey)

        def effect() -> None:
            self._log_key = record

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
        application = self._decidable(s, "body.application", body.application, body.findings)
        return self._plan_decide(
            s, (application,), body.outcome, body.findings, tuple(body.restrictions)
        )

    def _plan_batch_decision(self, s: LoggedStatement, body: BatchDecisionBody) -> Effect:
        """A ``batch_decision``: every listed application decided as one ``decision`` with the
        batch's fields would decide it, or none (the first that may not be is named)."""
        self._require_body(s)
        applications = tuple(
            self._decidable(s, f"body.applications.{n}", ref, body.findings)
            for n, ref in enumerate(body.applications)
        )
        return self._plan_decide(
            s, applications, body.outcome, body.findings, tuple(body.restrictions)
        )

    def _decidable(
        self,
        s: LoggedStatement,
        field: str,
        ref: Ref,
        findings: Mapping[str, CriterionFinding],
    ) -> ApplicationRecord:
        """The application ``ref`` (at ``field``) names, if it is open and ``findings`` name
        exactly the criteria of the offer version it was made under; refuse otherwise."""
        index = self._resolve(s, field, ref, APPLICATION)
        application = self._applications[index]
        if application.outcome != "open":
            refuse(
                s,
                f"{field}: application at index {index} is not open: it was "
                f"{application.outcome} at index {application.closed_by}",
            )
        criteria = self._offers[application.offer_index].criterion_ids
        if set(findings) != criteria:
            refuse(
                s,
                f"{field}: findings name {sorted(findings)}, but the offer application {index} "
                f"was made under has criteria {sorted(criteria)}",
            )
        return application

    def _plan_decide(
        self,
        s: LoggedStatement,
        applications: tuple[ApplicationRecord, ...],
        outcome: str,
        findings: Mapping[str, CriterionFinding],
        restrictions: tuple[Restriction, ...],
    ) -> Effect:
        """The effect of deciding ``applications`` (checked by :meth:`_decidable`, of distinct
        subjects since a subject has one open application) at entry ``s``: each closes as
        granted or denied with these findings and restrictions, recording the terms binding
        its subject now; a grant's restrictions become active under ``s.index``."""
        granted = outcome == "grant"
        decided = tuple((a, self._subjects[a.subject_id]) for a in applications)

        def effect() -> None:
            for application, subject in decided:
                application.outcome = "granted" if granted else "denied"
                application.closed_by = s.index
                application.closed_at_ms = s.log_time_ms
                application.findings = dict(findings)
                application.restrictions = restrictions
                application.decision_binding_offer_index = subject.binding_offer_index
                subject.open_application = None
                subject.standing = application.outcome
                if restrictions:
                    subject.active_restrictions[s.index] = None
                self._touch(subject, s.index)
            # A batch's applications share its restrictions: the first stands for them all.
            self._decisions[s.index] = applications[0]
            self._details[s.index] = outcome

        return effect

    def _plan_enforcement(self, s: LoggedStatement, body: EnforcementActionBody) -> Effect:
        self._require_body(s)
        target = body.target
        subject: SubjectRecord | None = None
        wild_applicants: tuple[int, ...] = ()
        if isinstance(target, SubjectTarget):
            subject = self._resolve_subject(s, "body.target.subject", target.subject)
        else:
            # By public key: a wild target naming an applicant's key under another name or key
            # ID is still that applicant (no_wild_enforcement_against_applicants judges it).
            keys = public_keys(target.vkeys)
            owners = {self._key_owner[k] for k in keys if k in self._key_owner}
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
        return self._plan_answer(s, (grievance,), body.entries)

    def _plan_batch_grievance_answer(
        self, s: LoggedStatement, body: BatchGrievanceAnswerBody
    ) -> Effect:
        """A ``batch_grievance_answer``: every listed grievance answered as one
        ``grievance_answer`` with the batch's fields would answer it."""
        self._require_body(s)
        grievances = tuple(
            self._grievances[self._resolve(s, f"body.grievances.{n}", ref, GRIEVANCE)]
            for n, ref in enumerate(body.grievances)
        )
        return self._plan_answer(s, grievances, body.entries)

    def _plan_answer(
        self, s: LoggedStatement, grievances: tuple[GrievanceRecord, ...], entries: list[Ref]
    ) -> Effect:
        """The effect of answering ``grievances`` at entry ``s``, citing ``entries`` (which must
        resolve): each records the answer (its first answer counts for time), and the entry
        joins the timeline of each subject they name, once."""
        for n, ref in enumerate(entries):
            self._resolve(s, f"body.entries.{n}", ref, ANY)
        subjects = {g.subject_id: self._subjects[g.subject_id] for g in grievances}

        def effect() -> None:
            for grievance in grievances:
                grievance.answers.append(s.index)
            for subject in subjects.values():
                self._touch(subject, s.index)

        return effect
