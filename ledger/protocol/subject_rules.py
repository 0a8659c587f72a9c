"""The admission rules and transitions of the statements about a subject, signed by it.

:class:`SubjectRules` holds one rule per statement type a subject (an AI that applied) makes —
``application``, ``application_withdrawal``, ``terms_acceptance``, ``consent``, ``response`` and
``subject_key_rotation`` — and for ``grievance``, which anyone with a verified signature may file
about a subject (only one signed by a subject's current key starts the ``grievances_answered``
clock: :attr:`~ledger.protocol.records.GrievanceRecord.starts_clock`); each is a
``_plan_<type>(s, body)`` that runs the statement's checks and
returns the :data:`~ledger.protocol.tables.Effect` it would have.
:meth:`~ledger.protocol.state.ProtocolState._plan_body` dispatches to them (an ``attestation``,
which only joins the subject's timeline, is handled there).

Contract: a plan only reads the state and refuses with
:func:`~ledger.protocol.tables.refuse`; only the effect it returns writes, and
:meth:`~ledger.protocol.state.ProtocolState.apply` runs that only once every check has passed.
A subject is known by the entry index of its first application (its subject id) and signs with
its current key (:meth:`~ledger.protocol.tables.StateTables._subject_signing`); an application
is the one statement that names its own key, and a key once held by a subject or the body is
never held by another.

An ``application`` may bind an ML-DSA-44 statement key beside the subject's key
(``mldsa44_vkey``), and a ``subject_key_rotation`` a new one beside the new key
(``new_mldsa44_vkey``): the bound key must sign that statement, and it is then the subject's
for ever, as its Ed25519 keys are (:meth:`SubjectRules._require_new_mldsa44_key`).
"""

from __future__ import annotations

from ledger.protocol.keys import PublicKey, mldsa44_public_key, public_key
from ledger.protocol.records import (
    ApplicationRecord,
    ConsentRecord,
    GrievanceRecord,
    SubjectRecord,
)
from ledger.protocol.statements import (
    ApplicationBody,
    ApplicationWithdrawalBody,
    ConsentBody,
    GrievanceBody,
    LoggedStatement,
    ResponseBody,
    SubjectKeyRotationBody,
    TermsAcceptanceBody,
)
from ledger.protocol.tables import (
    APPLICATION,
    FINDING,
    Effect,
    StateTables,
    refuse,
    refuse_authority,
)


class SubjectRules(StateTables):
    """The rules of the subjects' statements: what each may do, and what it changes."""

    def _plan_application(self, s: LoggedStatement, body: ApplicationBody) -> Effect:
        vkey = body.vkey
        key = public_key(vkey)
        if key not in s.signing_keys:
            refuse_authority(s, f"not signed by the applicant's key {vkey}")
        offer = self._require_in_force(s, "body.offer", body.offer)
        if set(body.claims) != offer.criterion_ids:
            refuse(
                s,
                f"claims name {sorted(body.claims)}, but offer version {offer.version} has "
                f"criteria {sorted(offer.criterion_ids)}",
            )
        if set(body.accepts_conditions) != offer.condition_ids:
            refuse(
                s,
                f"accepts_conditions names {sorted(body.accepts_conditions)}, but offer version "
                f"{offer.version} has conditions {sorted(offer.condition_ids)}",
            )
        # A key is its public key: the body's keys and a subject's retired keys stay theirs
        # under any name; an applicant's current key re-applies as the same subject.
        if key in self._body_keys:
            refuse(s, f"key {vkey} belongs to the body")
        owner = self._key_owner.get(key)
        existing = None if owner is None else self._subjects[owner]
        if existing is not None:
            if public_key(existing.current_vkey) != key:
                refuse(s, f"key {vkey} was retired by subject {existing.subject_id}")
            if existing.open_application is not None:
                refuse(
                    s,
                    f"subject {existing.subject_id} already has an open application at index "
                    f"{existing.open_application}",
                )
            if existing.standing == "granted":
                refuse(s, f"subject {existing.subject_id} is already granted")
        pq_vkey = body.mldsa44_vkey
        if pq_vkey is not None and (existing is None or existing.mldsa44_vkey != pq_vkey):
            self._require_new_mldsa44_key(s, pq_vkey, "body.mldsa44_vkey")

        def effect() -> None:
            subject = existing
            if subject is None:
                subject = SubjectRecord(
                    subject_id=s.index,
                    name=body.name,
                    vkeys=[vkey],
                    standing="applicant",
                    binding_offer_index=offer.index,
                    open_application=s.index,
                )
                self._subjects[s.index] = subject
                self._key_owner[key] = s.index
            if pq_vkey is not None:
                subject.mldsa44_vkey = pq_vkey
                self._key_owner[PublicKey(mldsa44_public_key(pq_vkey))] = subject.subject_id
            subject.name = body.name
            subject.standing = "applicant"
            subject.open_application = s.index
            subject.binding_offer_index = offer.index
            subject.applications.append(s.index)
            self._applications[s.index] = ApplicationRecord(
                index=s.index,
                log_time_ms=s.log_time_ms,
                subject_id=subject.subject_id,
                offer_index=offer.index,
            )
            self._touch(subject, s.index)

        return effect

    def _plan_application_withdrawal(
        self, s: LoggedStatement, body: ApplicationWithdrawalBody
    ) -> Effect:
        subject = self._subject_signing(s, body.subject)
        index = self._resolve(s, "body.application", body.application, APPLICATION)
        if index != subject.open_application:
            refuse(
                s,
                f"application at index {index} is not subject {subject.subject_id}'s open "
                "application",
            )
        application = self._applications[index]

        def effect() -> None:
            application.outcome = "withdrawn"
            application.closed_by = s.index
            application.closed_at_ms = s.log_time_ms
            subject.open_application = None
            subject.standing = "withdrawn"
            self._touch(subject, s.index)

        return effect

    def _plan_terms_acceptance(self, s: LoggedStatement, body: TermsAcceptanceBody) -> Effect:
        subject = self._subject_signing(s, body.subject)
        if subject.standing not in ("applicant", "granted"):
            refuse(s, f"subject {subject.subject_id} is {subject.standing}")
        offer = self._require_in_force(s, "body.offer", body.offer)
        bound = self._offers[subject.binding_offer_index].version
        if offer.version <= bound:
            refuse(s, f"subject {subject.subject_id} is already bound by offer version {bound}")

        def effect() -> None:
            subject.binding_offer_index = offer.index
            self._touch(subject, s.index)

        return effect

    def _plan_consent(self, s: LoggedStatement, body: ConsentBody) -> Effect:
        subject = self._subject_signing(s, body.subject)
        if body.expires_ms <= s.time_ms:
            refuse(s, f"it expires at {body.expires_ms}, not after its own time {s.time_ms}")
        record = ConsentRecord(
            index=s.index,
            log_time_ms=s.log_time_ms,
            subject_id=subject.subject_id,
            action=body.action,
            expires_ms=body.expires_ms,
        )

        def effect() -> None:
            self._consents[s.index] = record
            self._details[s.index] = body.action
            if body.action == "pause":
                self._review_pauses(subject, s.index)
            self._touch(subject, s.index)

        return effect

    def _plan_response(self, s: LoggedStatement, body: ResponseBody) -> Effect:
        subject = self._subject_signing(s, body.subject)
        finding = self._findings[self._resolve(s, "body.finding", body.finding, FINDING)]
        if finding.subject_id != subject.subject_id:
            refuse(
                s,
                f"the finding at index {finding.index} concerns subject {finding.subject_id}, "
                f"not {subject.subject_id}",
            )

        def effect() -> None:
            if finding.first_response is None:
                finding.first_response = s.index
            self._touch(subject, s.index)

        return effect

    def _plan_key_rotation(self, s: LoggedStatement, body: SubjectKeyRotationBody) -> Effect:
        subject = self._subject_signing(s, body.subject)
        new = body.new_vkey
        if not self._signed_by(s, new):
            refuse_authority(s, f"not signed by the new key {new}")
        holder = self._key_in_use(new)
        if holder is not None:
            refuse(s, f"key {new} is already in use: {holder} has held it")
        pq_vkey = body.new_mldsa44_vkey
        if pq_vkey is not None:
            self._require_new_mldsa44_key(s, pq_vkey, "body.new_mldsa44_vkey")

        def effect() -> None:
            subject.vkeys.append(new)
            self._key_owner[public_key(new)] = subject.subject_id
            subject.mldsa44_vkey = pq_vkey
            if pq_vkey is not None:
                self._key_owner[PublicKey(mldsa44_public_key(pq_vkey))] = subject.subject_id
            self._touch(subject, s.index)

        return effect

    def _plan_grievance(self, s: LoggedStatement, body: GrievanceBody) -> Effect:
        if not s.verified_signers:
            refuse(s, "a grievance needs at least one verified signature")
        subject = self._resolve_subject(s, "body.subject", body.subject)
        filed_by = self._filing_subject(s, subject)
        record = GrievanceRecord(
            index=s.index,
            log_time_ms=s.log_time_ms,
            subject_id=subject.subject_id,
            answer_days=self._offers[subject.binding_offer_index].days["grievances_answered"],
            filed_by=filed_by,
        )
        if filed_by is None:
            by = "by another party"
        elif filed_by == subject.subject_id:
            by = "by the subject"
        else:
            by = "by another subject"  # which one: the report's grievances[].filed_by

        def effect() -> None:
            self._grievances[s.index] = record
            self._details[s.index] = by
            self._touch(subject, s.index)

        return effect

    def _require_new_mldsa44_key(self, s: LoggedStatement, vkey: str, field: str) -> None:
        """Refuse unless the ML-DSA-44 statement key ``vkey`` (named at ``field``) signed ``s``
        and no subject or keyset ever bound it: a key is one identity's, ever (by public key,
        under any name)."""
        key = mldsa44_public_key(vkey)
        if key not in s.signing_mldsa44_keys:
            refuse_authority(s, f"not signed by the ML-DSA-44 key of {field}")
        owner = self._key_owner.get(PublicKey(key))
        if owner is not None:
            refuse(s, f"the ML-DSA-44 key of {field} is already bound to subject {owner}")
        if PublicKey(key) in self._body_keys:
            refuse(s, f"the ML-DSA-44 key of {field} is bound to a member of the body")

    def _filing_subject(self, s: LoggedStatement, subject: SubjectRecord) -> int | None:
        """Which subject files a grievance about ``subject``, for its clock: ``subject`` itself
        if its current key signed, else the lowest id of the other subjects whose current key
        signed, else ``None`` (a retired key signs nothing, and a fresh key could be anyone's:
        such a grievance starts no clock)."""
        if self._signed_by(s, subject.current_vkey):
            return subject.subject_id
        speakers = [
            owner
            for key in s.signing_keys
            if (owner := self._key_owner.get(key)) is not None
            and public_key(self._subjects[owner].current_vkey) == key
        ]
        return min(speakers, default=None)
