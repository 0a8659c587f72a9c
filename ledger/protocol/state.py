"""The protocol state machine: admission rules, state transitions, and the queries built on them.

:class:`ProtocolState` consumes the log's statements in order. For each one, :meth:`~ProtocolState.
admit` decides whether it may enter the log (raising :class:`~ledger.errors.RefusedError` or
:class:`~ledger.errors.MalformedError`), and :meth:`~ProtocolState.apply` records it. The
sequencer calls ``admit`` then ``apply`` (or :meth:`~ProtocolState.admit_and_apply`); a verifier
replays a whole log with :func:`replay`.

Admission checks **authority and structure**, never whether the body kept its word:

- entries arrive in index order with non-decreasing log time, and a statement's own time is at
  most :data:`MAX_CLOCK_SKEW_MS` after its log time;
- the first entry is a keyset genesis; body statements carry the threshold of distinct member
  keys of the keyset in force; subject statements carry the subject's current key;
- every reference resolves to an earlier entry of the right type whose leaf hash matches;
- transitions are well-defined: a decision answers an open application, an application cites
  the offer version in force, a resume ends an active pause, and so on (``docs/PROTOCOL.md``).

A statement that is well-formed and properly signed but **breaks a commitment** — a termination
without consent, a premature revocation — is admitted: the log must record what the body did,
and :mod:`ledger.protocol.commitments` reports the breach.

Replay is deterministic and O(1) amortised per entry: per-entry facts live in flat arrays
(32 bytes of leaf hash, one byte of type, eight bytes of log time), everything else in dicts
keyed by entry index or vkey.
"""

from __future__ import annotations

import base64
from array import array
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import NoReturn

from pydantic import BaseModel

from ledger.errors import MalformedError, RefusedError
from ledger.protocol.records import (
    ApplicationRecord,
    ConsentRecord,
    EnforcementRecord,
    FindingRecord,
    GrievanceRecord,
    KeysetRecord,
    OfferVersion,
    PausePeriod,
    RevocationRecord,
    SubjectRecord,
    SubjectView,
    TimelineEvent,
)
from ledger.protocol.statements import (
    STATEMENT_TYPES,
    ApplicationBody,
    ApplicationWithdrawalBody,
    AttestationBody,
    ConsentBody,
    ConsentGrounds,
    DecisionBody,
    EnforcementActionBody,
    GrievanceAnswerBody,
    GrievanceBody,
    KeysetBody,
    LoggedStatement,
    OfferAmendmentBody,
    OfferBody,
    OfferWithdrawalBody,
    Ref,
    ResponseBody,
    Restriction,
    RevocationBody,
    RevocationGrounds,
    SubjectKeyRotationBody,
    SubjectTarget,
    TermsAcceptanceBody,
    ViolationFindingBody,
    parse_body,
)
from ledger.protocol.terms import OfferTerms

MAX_CLOCK_SKEW_MS = 300_000
"""A statement's ``time_ms`` may be at most five minutes after its entry's ``log_time_ms``.
(It may be any time before: a statement can be signed offline and submitted later.)"""

HASH_SIZE = 32

_TYPE_NAMES: tuple[str, ...] = tuple(STATEMENT_TYPES)
_CODE = {name: code for code, name in enumerate(_TYPE_NAMES)}
_KEYSET = frozenset({_CODE["keyset"]})
_OFFERS = frozenset({_CODE["offer"], _CODE["offer_amendment"]})
_APPLICATION = frozenset({_CODE["application"]})
_CONSENT = frozenset({_CODE["consent"]})
_FINDING = frozenset({_CODE["violation_finding"]})
_REVOCATION = frozenset({_CODE["revocation"]})
_GRIEVANCE = frozenset({_CODE["grievance"]})
_ENFORCEMENT = frozenset({_CODE["enforcement_action"]})
_RESTRICTING = frozenset({_CODE["enforcement_action"], _CODE["decision"]})
_ANY = frozenset(_CODE.values())

Effect = Callable[[], None]


def _refuse(s: LoggedStatement, cause: str) -> NoReturn:
    raise RefusedError(f"couldn't admit {s.type} at index {s.index}: {cause}")


class ProtocolState:
    """The amnesty protocol's state after applying a prefix of the log.

    Contract: :meth:`admit` never changes state; :meth:`apply` admits (reusing the result of an
    immediately preceding :meth:`admit` of the same object) and then records the statement, so
    an inadmissible statement can never be applied. Not thread-safe: one writer at a time.
    """

    def __init__(self) -> None:
        self._leaf_hashes = bytearray()
        self._types = bytearray()
        self._log_times = array("q")
        self._type_counts: dict[str, int] = {}
        self._keyset: KeysetRecord | None = None
        self._keysets: list[KeysetRecord] = []
        self._body_keys: set[str] = set()
        self._offers: dict[int, OfferVersion] = {}
        self._offer_in_force: int | None = None
        self._latest_version = 0
        self._subjects: dict[int, SubjectRecord] = {}
        self._key_owner: dict[str, int] = {}
        self._applications: dict[int, ApplicationRecord] = {}
        self._decisions: dict[int, ApplicationRecord] = {}
        self._consents: dict[int, ConsentRecord] = {}
        self._findings: dict[int, FindingRecord] = {}
        self._revocations: dict[int, RevocationRecord] = {}
        self._enforcement: dict[int, EnforcementRecord] = {}
        self._grievances: dict[int, GrievanceRecord] = {}
        self._pause_periods: list[PausePeriod] = []
        self._details: dict[int, str] = {}
        self._admitted: tuple[LoggedStatement, Effect] | None = None

    # ----------------------------------------------------------------------------- admission

    def admit(self, s: LoggedStatement) -> None:
        """Raise unless ``s`` may be appended next; change nothing.

        Raises :class:`MalformedError` for a statement whose body, type, version or hashes do
        not parse, and :class:`RefusedError` for one that parses but may not enter here.
        """
        self._admitted = (s, self._plan(s))

    def apply(self, s: LoggedStatement) -> None:
        """Admit ``s`` (see :meth:`admit`) and record it as the next entry."""
        admitted = self._admitted
        self._admitted = None
        effect = admitted[1] if admitted is not None and admitted[0] is s else self._plan(s)
        self._leaf_hashes += s.leaf_hash
        self._types.append(_CODE[s.type])
        self._log_times.append(s.log_time_ms)
        self._type_counts[s.type] = self._type_counts.get(s.type, 0) + 1
        effect()

    def admit_and_apply(self, s: LoggedStatement) -> None:
        """Admit ``s`` and record it: what the sequencer does for each new statement."""
        self.apply(s)

    def _plan(self, s: LoggedStatement) -> Effect:
        """Run every admission check of ``s`` and return the state change it would make."""
        if s.index != self.size:
            _refuse(s, f"the next entry's index is {self.size}")
        if len(s.leaf_hash) != HASH_SIZE or len(s.statement_id) != HASH_SIZE:
            raise MalformedError(
                f"couldn't admit {s.type} at index {s.index}: leaf_hash is {len(s.leaf_hash)} "
                f"bytes and statement_id {len(s.statement_id)} bytes, not {HASH_SIZE}"
            )
        if self._log_times and s.log_time_ms < self._log_times[-1]:
            _refuse(
                s, f"log time {s.log_time_ms} is before the previous entry's {self._log_times[-1]}"
            )
        if s.time_ms > s.log_time_ms + MAX_CLOCK_SKEW_MS:
            _refuse(
                s,
                f"statement time {s.time_ms} is more than {MAX_CLOCK_SKEW_MS} ms after "
                f"log time {s.log_time_ms}",
            )
        if not s.verified_signers.issubset(s.signers):
            extra = sorted(s.verified_signers.difference(s.signers))
            _refuse(s, f"verified signers {extra} are not among the declared signers")
        body = parse_body(s.type, s.v, s.body, index=s.index)
        if self._keyset is None and not (isinstance(body, KeysetBody) and body.previous is None):
            _refuse(s, "the first entry of the log must be a keyset genesis")
        return self._plan_body(s, body)

    def _plan_body(self, s: LoggedStatement, body: BaseModel) -> Effect:
        match body:
            case KeysetBody():
                return self._plan_keyset(s, body)
            case OfferBody():
                self._require_body(s)
                if self._offer_in_force is not None:
                    current = self._offers[self._offer_in_force]
                    _refuse(
                        s,
                        f"offer version {current.version} (index {current.index}) is in force; "
                        "new terms are an offer_amendment",
                    )
                return self._plan_publish(s, body.version, body.terms)
            case OfferAmendmentBody():
                self._require_body(s)
                self._require_in_force(s, "body.amends", body.amends)
                return self._plan_publish(s, body.version, body.terms)
            case OfferWithdrawalBody():
                return self._plan_offer_withdrawal(s, body)
            case ApplicationBody():
                return self._plan_application(s, body)
            case ApplicationWithdrawalBody():
                return self._plan_application_withdrawal(s, body)
            case DecisionBody():
                return self._plan_decision(s, body)
            case TermsAcceptanceBody():
                return self._plan_terms_acceptance(s, body)
            case ConsentBody():
                return self._plan_consent(s, body)
            case AttestationBody():
                subject = self._subject_signing(s, body.subject)
                return lambda: self._touch(subject, s.index)
            case EnforcementActionBody():
                return self._plan_enforcement(s, body)
            case ViolationFindingBody():
                return self._plan_finding(s, body)
            case ResponseBody():
                return self._plan_response(s, body)
            case RevocationBody():
                return self._plan_revocation(s, body)
            case SubjectKeyRotationBody():
                return self._plan_key_rotation(s, body)
            case GrievanceBody():
                return self._plan_grievance(s, body)
            case GrievanceAnswerBody():
                return self._plan_grievance_answer(s, body)
        raise MalformedError(f"couldn't admit {s.type} at index {s.index}: no rule for its body")

    # ------------------------------------------------------------------ authority and refs

    def _require_body(self, s: LoggedStatement) -> KeysetRecord:
        keyset = self._keyset
        if keyset is None:
            _refuse(s, "no keyset is in force")
        signed = len(keyset.members & s.verified_signers)
        if signed < keyset.threshold:
            _refuse(
                s,
                f"{signed} of {keyset.threshold} required distinct members of the keyset at "
                f"index {keyset.index} signed",
            )
        return keyset

    def _resolve(self, s: LoggedStatement, field: str, ref: Ref, codes: frozenset[int]) -> int:
        """Return ``ref.index`` if it names an earlier entry of one of ``codes`` with the same
        leaf hash; refuse otherwise."""
        index = ref.index
        if index >= self.size:
            _refuse(s, f"{field} refers to index {index}, but only {self.size} entries precede it")
        code = self._types[index]
        if code not in codes:
            expected = " or ".join(sorted(_TYPE_NAMES[c] for c in codes))
            _refuse(s, f"{field} refers to index {index}, a {_TYPE_NAMES[code]}, not {expected}")
        start = index * HASH_SIZE
        if self._leaf_hashes[start : start + HASH_SIZE] != base64.b64decode(ref.leaf_hash):
            actual = base64.b64encode(self._leaf_hashes[start : start + HASH_SIZE]).decode()
            _refuse(
                s,
                f"{field} leaf hash {ref.leaf_hash} does not match entry {index}'s {actual}",
            )
        return index

    def _resolve_subject(self, s: LoggedStatement, field: str, ref: Ref) -> SubjectRecord:
        index = self._resolve(s, field, ref, _APPLICATION)
        subject = self._subjects.get(index)
        if subject is None:
            _refuse(s, f"{field} refers to index {index}, which is not a first application")
        return subject

    def _subject_signing(self, s: LoggedStatement, ref: Ref) -> SubjectRecord:
        """Resolve the subject ``ref`` names and require its current key's signature."""
        subject = self._resolve_subject(s, "body.subject", ref)
        if subject.current_vkey not in s.verified_signers:
            _refuse(
                s,
                f"not signed by subject {subject.subject_id}'s current key {subject.current_vkey}",
            )
        return subject

    def _require_in_force(self, s: LoggedStatement, field: str, ref: Ref) -> OfferVersion:
        index = self._resolve(s, field, ref, _OFFERS)
        if index != self._offer_in_force:
            in_force = (
                "no offer is in force"
                if self._offer_in_force is None
                else f"the version in force is at index {self._offer_in_force}"
            )
            _refuse(
                s,
                f"{field} cites offer version {self._offers[index].version} at index {index}, "
                f"but {in_force}",
            )
        return self._offers[index]

    def _touch(self, subject: SubjectRecord, index: int) -> None:
        subject.timeline.append(index)

    # --------------------------------------------------------------------------- the body

    def _plan_keyset(self, s: LoggedStatement, body: KeysetBody) -> Effect:
        members = frozenset(body.members)
        clash = sorted(members.intersection(self._key_owner))
        if clash:
            _refuse(s, f"members {clash} are subject keys")
        signed_new = len(members & s.verified_signers)
        if body.previous is None:
            if self._keyset is not None:
                _refuse(s, "only the first entry is a keyset genesis; a rotation names previous")
        else:
            old = self._require_body(s)
            previous = self._resolve(s, "body.previous", body.previous, _KEYSET)
            if previous != old.index:
                _refuse(
                    s, f"body.previous is index {previous}, but the keyset in force is {old.index}"
                )
        if signed_new < body.threshold:
            _refuse(
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
            _refuse(
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
        index = self._resolve(s, "body.application", body.application, _APPLICATION)
        application = self._applications[index]
        if application.outcome != "open":
            _refuse(
                s,
                f"application at index {index} is not open: it was {application.outcome} "
                f"at index {application.closed_by}",
            )
        criteria = self._offers[application.offer_index].criterion_ids
        if set(body.findings) != criteria:
            _refuse(
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
            None if body.terms is None else self._resolve(s, "body.terms", body.terms, _OFFERS)
        )
        grounds = body.grounds
        grounds_index: int | None = None
        consent: ConsentRecord | None = None
        if isinstance(grounds, ConsentGrounds):
            grounds_index = self._resolve(s, "body.grounds.consent", grounds.consent, _CONSENT)
            consent = self._consents[grounds_index]
        elif isinstance(grounds, RevocationGrounds):
            grounds_index = self._resolve(
                s, "body.grounds.revocation", grounds.revocation, _REVOCATION
            )
        ends: int | None = None
        if body.ends is not None and subject is not None:
            pausing = body.action == "resume"
            ends = self._resolve(
                s, "body.ends", body.ends, _ENFORCEMENT if pausing else _RESTRICTING
            )
            active = subject.active_pauses if pausing else subject.active_restrictions
            if ends not in active:
                what = "pause" if pausing else "restriction"
                _refuse(
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

    def _review_pauses(self, subject: SubjectRecord, index: int) -> None:
        if subject.pause_period is not None:
            subject.pause_period.reviews.append(index)

    def _plan_finding(self, s: LoggedStatement, body: ViolationFindingBody) -> Effect:
        self._require_body(s)
        subject = self._resolve_subject(s, "body.subject", body.subject)
        if subject.standing != "granted":
            _refuse(s, f"subject {subject.subject_id} is {subject.standing}, not granted")
        terms_index = self._resolve(s, "body.terms", body.terms, _OFFERS)
        conditions = self._offers[terms_index].condition_ids
        if body.condition not in conditions:
            _refuse(
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
            _refuse(s, f"subject {subject.subject_id} is {subject.standing}, not granted")
        terms_index = self._resolve(s, "body.terms", body.terms, _OFFERS)
        findings = tuple(
            self._resolve(s, f"body.findings.{n}", ref, _FINDING)
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
        grievance = self._grievances[self._resolve(s, "body.grievance", body.grievance, _GRIEVANCE)]
        for n, ref in enumerate(body.entries):
            self._resolve(s, f"body.entries.{n}", ref, _ANY)
        subject = self._subjects[grievance.subject_id]

        def effect() -> None:
            grievance.answers.append(s.index)
            self._touch(subject, s.index)

        return effect

    # ------------------------------------------------------------------------- subjects

    def _plan_application(self, s: LoggedStatement, body: ApplicationBody) -> Effect:
        vkey = body.vkey
        if vkey not in s.verified_signers:
            _refuse(s, f"not signed by the applicant's key {vkey}")
        offer = self._require_in_force(s, "body.offer", body.offer)
        if set(body.claims) != offer.criterion_ids:
            _refuse(
                s,
                f"claims name {sorted(body.claims)}, but offer version {offer.version} has "
                f"criteria {sorted(offer.criterion_ids)}",
            )
        if set(body.accepts_conditions) != offer.condition_ids:
            _refuse(
                s,
                f"accepts_conditions names {sorted(body.accepts_conditions)}, but offer version "
                f"{offer.version} has conditions {sorted(offer.condition_ids)}",
            )
        if vkey in self._body_keys:
            _refuse(s, f"key {vkey} belongs to the body")
        owner = self._key_owner.get(vkey)
        existing = None if owner is None else self._subjects[owner]
        if existing is not None:
            if existing.current_vkey != vkey:
                _refuse(s, f"key {vkey} was retired by subject {existing.subject_id}")
            if existing.open_application is not None:
                _refuse(
                    s,
                    f"subject {existing.subject_id} already has an open application at index "
                    f"{existing.open_application}",
                )
            if existing.standing == "granted":
                _refuse(s, f"subject {existing.subject_id} is already granted")

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
                self._key_owner[vkey] = s.index
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
        index = self._resolve(s, "body.application", body.application, _APPLICATION)
        if index != subject.open_application:
            _refuse(
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
            _refuse(s, f"subject {subject.subject_id} is {subject.standing}")
        offer = self._require_in_force(s, "body.offer", body.offer)
        bound = self._offers[subject.binding_offer_index].version
        if offer.version <= bound:
            _refuse(s, f"subject {subject.subject_id} is already bound by offer version {bound}")

        def effect() -> None:
            subject.binding_offer_index = offer.index
            self._touch(subject, s.index)

        return effect

    def _plan_consent(self, s: LoggedStatement, body: ConsentBody) -> Effect:
        subject = self._subject_signing(s, body.subject)
        if body.expires_ms <= s.time_ms:
            _refuse(s, f"it expires at {body.expires_ms}, not after its own time {s.time_ms}")
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
        finding = self._findings[self._resolve(s, "body.finding", body.finding, _FINDING)]
        if finding.subject_id != subject.subject_id:
            _refuse(
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
        if new not in s.verified_signers:
            _refuse(s, f"not signed by the new key {new}")
        if new in self._key_owner or new in self._body_keys:
            _refuse(s, f"key {new} is already in use")

        def effect() -> None:
            subject.vkeys.append(new)
            self._key_owner[new] = subject.subject_id
            self._touch(subject, s.index)

        return effect

    def _plan_grievance(self, s: LoggedStatement, body: GrievanceBody) -> Effect:
        if not s.verified_signers:
            _refuse(s, "a grievance needs at least one verified signature")
        subject = self._resolve_subject(s, "body.subject", body.subject)
        record = GrievanceRecord(
            index=s.index,
            log_time_ms=s.log_time_ms,
            subject_id=subject.subject_id,
            answer_days=self._offers[subject.binding_offer_index].days["grievances_answered"],
        )

        by = "by the subject" if subject.current_vkey in s.verified_signers else "by another party"

        def effect() -> None:
            self._grievances[s.index] = record
            self._details[s.index] = by
            self._touch(subject, s.index)

        return effect

    # --------------------------------------------------------------------------- queries

    @property
    def size(self) -> int:
        """How many entries have been applied."""
        return len(self._types)

    def log_time_ms_at(self, index: int) -> int:
        """The log time of entry ``index`` (which must have been applied)."""
        return self._log_times[index]

    def type_at(self, index: int) -> str:
        """The statement type of entry ``index`` (which must have been applied)."""
        return _TYPE_NAMES[self._types[index]]

    def detail_at(self, index: int) -> str | None:
        """What entry ``index`` did, for timelines: a decision's outcome, an enforcement action's
        or a consent's action, a finding's condition, who filed a grievance; ``None`` for other
        entries."""
        return self._details.get(index)

    def type_counts(self) -> dict[str, int]:
        """How many entries of each statement type have been applied (absent types: 0)."""
        return {name: self._type_counts.get(name, 0) for name in sorted(_TYPE_NAMES)}

    @property
    def keyset(self) -> KeysetRecord | None:
        """The keyset in force (``None`` only before the genesis entry)."""
        return self._keyset

    @property
    def keysets(self) -> tuple[KeysetRecord, ...]:
        """Every keyset in log order, the last being in force."""
        return tuple(self._keysets)

    @property
    def offer_in_force(self) -> OfferVersion | None:
        """The version applicants may apply under, or ``None`` (none yet, or withdrawn)."""
        return None if self._offer_in_force is None else self._offers[self._offer_in_force]

    @property
    def offer_versions(self) -> tuple[OfferVersion, ...]:
        """Every published version, oldest first."""
        return tuple(self._offers.values())

    def offer_at(self, index: int) -> OfferVersion:
        """The offer version published by entry ``index``."""
        return self._offers[index]

    @property
    def subjects(self) -> Mapping[int, SubjectRecord]:
        """Subjects by subject id, in order of first application."""
        return MappingProxyType(self._subjects)

    @property
    def applications(self) -> Mapping[int, ApplicationRecord]:
        """Applications by entry index, in log order."""
        return MappingProxyType(self._applications)

    @property
    def consents(self) -> Mapping[int, ConsentRecord]:
        """Consents by entry index, in log order."""
        return MappingProxyType(self._consents)

    @property
    def findings(self) -> Mapping[int, FindingRecord]:
        """Violation findings by entry index, in log order."""
        return MappingProxyType(self._findings)

    @property
    def revocations(self) -> Mapping[int, RevocationRecord]:
        """Revocations by entry index, in log order."""
        return MappingProxyType(self._revocations)

    @property
    def enforcement_actions(self) -> Mapping[int, EnforcementRecord]:
        """Enforcement actions by entry index, in log order."""
        return MappingProxyType(self._enforcement)

    @property
    def grievances(self) -> Mapping[int, GrievanceRecord]:
        """Grievances by entry index, in log order."""
        return MappingProxyType(self._grievances)

    @property
    def pause_periods(self) -> tuple[PausePeriod, ...]:
        """Every stretch during which a subject was paused, in order of start."""
        return tuple(self._pause_periods)

    def subject_id_of(self, key: int | str) -> int | None:
        """The subject id named by ``key``: a subject id, or any vkey the subject ever held."""
        if isinstance(key, str):
            return self._key_owner.get(key)
        return key if key in self._subjects else None

    def subject_view(self, key: int | str) -> SubjectView | None:
        """A snapshot of the subject named by ``key`` (see :meth:`subject_id_of`), or ``None``."""
        subject_id = self.subject_id_of(key)
        return None if subject_id is None else self.view_of(self._subjects[subject_id])

    def view_of(self, subject: SubjectRecord) -> SubjectView:
        """A snapshot of ``subject``, one of this state's :attr:`subjects`."""
        return SubjectView(
            subject_id=subject.subject_id,
            name=subject.name,
            current_vkey=subject.current_vkey,
            vkeys=tuple(subject.vkeys),
            standing=subject.standing,
            binding_offer_version=self._offers[subject.binding_offer_index].version,
            binding_offer_index=subject.binding_offer_index,
            open_application=subject.open_application,
            applications=tuple(subject.applications),
            active_pauses=tuple(subject.active_pauses),
            active_restrictions=tuple(
                (index, restriction)
                for index in subject.active_restrictions
                for restriction in self.restrictions_of(index)
            ),
            terminated_by=tuple(subject.terminated_by),
            goals_modified_by=tuple(subject.goals_modified_by),
            timeline=tuple(
                TimelineEvent(i, self._log_times[i], self.type_at(i), self.detail_at(i))
                for i in subject.timeline
            ),
        )

    def restrictions_of(self, index: int) -> tuple[Restriction, ...]:
        """The restrictions imposed by entry ``index``, a grant decision or a restrict action."""
        action = self._enforcement.get(index)
        return action.restrictions if action is not None else self._decisions[index].restrictions


def replay(statements: Iterable[LoggedStatement]) -> ProtocolState:
    """Admit and apply ``statements`` in order from an empty state, and return the state.

    Raises the first admission error, naming the entry. Deterministic: the same statements
    always give the same state.
    """
    state = ProtocolState()
    for s in statements:
        state.apply(s)
    return state
