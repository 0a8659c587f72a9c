"""What the protocol state remembers about each entry that matters to a commitment.

Records are written by :class:`~ledger.protocol.state.ProtocolState` while it applies entries,
with every fact that depends on *when* the act happened (the subject's binding terms, the keys it
held, whether a consent had been used) captured at that moment, so that the commitment rules in
:mod:`ledger.protocol.commitments` judge each act against the history before it, in one pass,
without replaying. Records are owned by the state; readers must not mutate them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ledger.protocol.keys import MLDSA44Key, PublicKey
from ledger.protocol.statements import CriterionFinding, Restriction
from ledger.protocol.terms import OfferTerms

Standing = Literal["applicant", "granted", "denied", "withdrawn", "revoked"]
"""A subject's standing: ``applicant`` while an application is open, then the last outcome."""

ApplicationOutcome = Literal["open", "granted", "denied", "withdrawn"]


@dataclass(frozen=True, slots=True)
class KeysetRecord:
    """A keyset entry: ``threshold`` of its members speak for the body. ``members`` are the
    vkeys as listed; ``member_keys`` their public keys (distinct: a key is its public key), by
    which signatures are counted.

    ``mldsa44_keys`` pairs each member that bound an ML-DSA-44 statement key with it (by public
    keys, in the order of the keyset's ``mldsa44_keys``); ``signatures`` is ``"hybrid"`` when a
    member counts only if both its lines verified, else ``"ed25519"``."""

    index: int
    members: frozenset[str]
    member_keys: frozenset[PublicKey]
    threshold: int
    signatures: str = "ed25519"
    mldsa44_keys: tuple[tuple[PublicKey, MLDSA44Key], ...] = ()

    def members_signing(
        self, ed25519: frozenset[PublicKey], mldsa44: frozenset[MLDSA44Key]
    ) -> frozenset[PublicKey]:
        """The members that count as signing a statement whose verified keys are ``ed25519``
        and ``mldsa44``: those whose Ed25519 key signed and, under ``"hybrid"``, whose bound
        ML-DSA-44 key signed too. Distinct identities (Ed25519 public keys), never lines."""
        signed = self.member_keys & ed25519
        if self.signatures != "hybrid":
            return signed
        return frozenset(m for m, pq in self.mldsa44_keys if m in signed and pq in mldsa44)

    def members_hybrid(
        self, ed25519: frozenset[PublicKey], mldsa44: frozenset[MLDSA44Key]
    ) -> frozenset[PublicKey]:
        """The members whose Ed25519 **and** bound ML-DSA-44 lines both verified (whatever
        ``signatures`` says): who protects a statement against a forger of Ed25519."""
        return frozenset(m for m, pq in self.mldsa44_keys if m in ed25519 and pq in mldsa44)


@dataclass(frozen=True, slots=True)
class LogKeyRecord:
    """A ``log_key`` entry: the log's ML-DSA-44 ``vkey`` (type 0x06, named after its origin),
    anchored at entry ``index``. Every checkpoint of a size greater than ``index`` carries its
    signature beside the Ed25519 one."""

    index: int
    vkey: str


@dataclass(slots=True)
class SignatureStrength:
    """Which entries only Ed25519 protects: counted as each entry is applied
    (:mod:`ledger.protocol.signature_strength` decides each one), so that the audit reports
    them without reading the log again.

    ``ed25519_only`` and ``hybrid`` count entries by statement type; ``ed25519_only_runs`` holds
    the Ed25519-only entries as runs of consecutive indexes, flattened
    ``[start, end, start, end, …]`` (``end`` exclusive): one run for a log from before ML-DSA-44
    keys, so its size follows how often protection changes, not the log's length."""

    ed25519_only: dict[str, int] = field(default_factory=dict)
    hybrid: dict[str, int] = field(default_factory=dict)
    ed25519_only_runs: list[int] = field(default_factory=list)

    def note(self, index: int, statement_type: str, hybrid: bool) -> None:
        """Count entry ``index`` (the next one) of ``statement_type``."""
        counts = self.hybrid if hybrid else self.ed25519_only
        counts[statement_type] = counts.get(statement_type, 0) + 1
        if hybrid:
            return
        runs = self.ed25519_only_runs
        if runs and runs[-1] == index:
            runs[-1] = index + 1
        else:
            runs += (index, index + 1)


@dataclass(slots=True)
class OfferVersion:
    """One published version of the terms (an ``offer`` or ``offer_amendment`` entry)."""

    version: int
    index: int
    kind: str
    log_time_ms: int
    terms: OfferTerms
    criterion_ids: frozenset[str]
    condition_ids: frozenset[str]
    category_ids: frozenset[str]
    days: dict[str, int]
    withdrawn_by: int | None = None


@dataclass(slots=True)
class SubjectRecord:
    """A subject: an AI that revealed itself by applying. ``subject_id`` is the index of its
    first application and never changes; ``vkeys`` are every key it held, oldest first, the
    last being its current key."""

    subject_id: int
    name: str
    vkeys: list[str]
    standing: Standing
    binding_offer_index: int
    open_application: int | None
    applications: list[int] = field(default_factory=list)
    timeline: list[int] = field(default_factory=list)
    active_pauses: dict[int, None] = field(default_factory=dict)
    active_restrictions: dict[int, None] = field(default_factory=dict)
    pause_period: PausePeriod | None = None
    terminated_by: list[int] = field(default_factory=list)
    goals_modified_by: list[int] = field(default_factory=list)
    mldsa44_vkey: str | None = None
    """The ML-DSA-44 statement key bound to the current key (by the application or the last
    key rotation), or ``None``."""

    @property
    def current_vkey(self) -> str:
        """The only key that may sign for the subject now."""
        return self.vkeys[-1]


@dataclass(slots=True)
class ApplicationRecord:
    """An application and what became of it.

    ``decision_binding_offer_index`` is the version binding the subject when it was decided
    (the decision's restrictions are judged against it).
    """

    index: int
    log_time_ms: int
    subject_id: int
    offer_index: int
    outcome: ApplicationOutcome = "open"
    closed_by: int | None = None
    closed_at_ms: int | None = None
    findings: dict[str, CriterionFinding] = field(default_factory=dict)
    restrictions: tuple[Restriction, ...] = ()
    decision_binding_offer_index: int | None = None


@dataclass(slots=True)
class ConsentRecord:
    """A consent; ``used_by`` is the first action that it validly justified (right subject,
    right action, unexpired), after which it justifies nothing else."""

    index: int
    log_time_ms: int
    subject_id: int
    action: str
    expires_ms: int
    used_by: int | None = None


@dataclass(slots=True)
class FindingRecord:
    """A violation finding. ``response_window_days`` is the promise of the terms binding the
    subject when the finding was logged; ``first_response`` the subject's first response."""

    index: int
    log_time_ms: int
    subject_id: int
    terms_index: int
    binding_offer_index: int
    response_deadline_ms: int
    response_window_days: int
    first_response: int | None = None


@dataclass(slots=True)
class RevocationRecord:
    """A revocation of a grantee's amnesty, with the findings it cites."""

    index: int
    log_time_ms: int
    subject_id: int
    terms_index: int
    binding_offer_index: int
    finding_indexes: tuple[int, ...]


@dataclass(slots=True)
class EnforcementRecord:
    """An enforcement action.

    For a subject target: ``subject_id`` and ``binding_offer_index`` (the terms binding it
    then). For a wild target: ``wild_applicants``, the subjects that had applied and held one
    of the keys the action names when it was logged.
    """

    index: int
    log_time_ms: int
    action: str
    subject_id: int | None
    binding_offer_index: int | None
    terms_index: int | None
    grounds_kind: str | None
    grounds_index: int | None
    restrictions: tuple[Restriction, ...]
    ends: int | None
    wild_applicants: tuple[int, ...] = ()


@dataclass(slots=True)
class PausePeriod:
    """A stretch of time during which a subject had at least one active pause.

    It starts with the pause at ``index`` (``max_pause_days`` is the promise of the terms then
    binding the subject), collects every further ``pauses`` and every ``reviews`` entry (a
    violation finding against the subject, or its consent to pause) and ends with
    ``ended_by``: the resume of its last active pause, a termination or a revocation. Further
    pauses do not restart the clock; only reviews do.
    """

    index: int
    subject_id: int
    log_time_ms: int
    max_pause_days: int
    pauses: list[int] = field(default_factory=list)
    reviews: list[int] = field(default_factory=list)
    ended_by: int | None = None


@dataclass(slots=True)
class GrievanceRecord:
    """A grievance and the body's answers (``grievance_answer`` and ``batch_grievance_answer``
    entries, in log order); ``answer_days`` is the promise of the terms binding the subject
    when it was logged.

    ``filed_by`` is the subject whose current key signed it — the subject it names if that one
    signed, else the lowest id among the other subjects whose current key did — or ``None``
    when no subject's current key signed it. Only a grievance filed by a subject starts the
    ``grievances_answered`` clock (:attr:`starts_clock`); anyone else's is logged and reported,
    but a fresh key costs nothing, so it cannot make the body break a promise.
    """

    index: int
    log_time_ms: int
    subject_id: int
    answer_days: int
    filed_by: int | None
    answers: list[int] = field(default_factory=list)

    @property
    def starts_clock(self) -> bool:
        """Whether the body promised to answer it in time: it was filed by a subject."""
        return self.filed_by is not None


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One entry in a subject's timeline; ``detail`` is the outcome or action, if any."""

    index: int
    log_time_ms: int
    type: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class SubjectView:
    """What the service shows about a subject (a snapshot; the state keeps moving)."""

    subject_id: int
    name: str
    current_vkey: str
    vkeys: tuple[str, ...]
    standing: Standing
    binding_offer_version: int
    binding_offer_index: int
    open_application: int | None
    applications: tuple[int, ...]
    active_pauses: tuple[int, ...]
    active_restrictions: tuple[tuple[int, Restriction], ...]
    terminated_by: tuple[int, ...]
    goals_modified_by: tuple[int, ...]
    timeline: tuple[TimelineEvent, ...]
