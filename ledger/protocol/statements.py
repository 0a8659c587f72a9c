"""Typed bodies of every statement type, and the logged statement the protocol consumes.

Each statement type has one strict pydantic model (no coercion, no unknown fields, no floats),
registered in :data:`STATEMENT_TYPES` with the statement version ``v`` it is defined for, so that
JSON Schemas can be generated with ``model_json_schema()``. :func:`parse_body` validates a body
and raises :class:`~ledger.errors.MalformedError` naming the field path.

Conventions shared by all bodies (see ``docs/PROTOCOL.md``):

- A reference to an earlier entry is a :class:`Ref` ``{"index": int, "leaf_hash": b64}``; both
  must match the log, which pins the reference to this exact history.
- A subject is named by a :class:`Ref` to its *first* ``application`` entry; its subject id is
  that entry's index, which survives key rotation.
- Digests and leaf hashes are canonical standard base64 (with padding) of 32 bytes.
- Times are integer milliseconds since the Unix epoch.

Kept whole: these models are the protocol's vocabulary, one per row of PROTOCOL.md §4, and the
JSON Schemas in ``schemas/`` are generated from them; a reader checking a body's shape against
the spec wants every type, its shared field types and the registry side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from ledger.errors import MalformedError
from ledger.protocol.keys import (
    MLDSA44Key,
    PublicKey,
    checked_mldsa44_vkey,
    checked_vkey,
    is_mldsa44_vkey,
    mldsa44_public_key,
    public_key,
    public_keys,
)
from ledger.protocol.terms import (
    MAX_SAFE_INTEGER,
    STRICT_BODY,
    Identifier,
    OfferTerms,
    Text,
)
from ledger.tlog.note import ALG_MLDSA44, VerifierKey
from ledger.tlog.statement_mldsa import STATEMENT_MLDSA44_VKEY_PATTERN

Digest = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]
"""Canonical standard base64 of exactly 32 bytes (a SHA-256 value)."""

VKEY_PATTERN = (
    r"^[^+\x00-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
    r"\+[0-9a-f]{8}\+A[Q-Za-f][A-Za-z0-9+/]{42}$"
)
"""PROTOCOL.md P1.4: a name without ``+``, control characters or Unicode spaces (spelt out, so
that ECMA-262, whose ``\\s`` also matches U+FEFF, and Python read it alike), a key ID, and
base64 of 33 bytes starting 0x01."""

VKey = Annotated[
    str,
    StringConstraints(pattern=VKEY_PATTERN),
    AfterValidator(checked_vkey),
]
"""A C2SP Ed25519 vkey ``name+hex8+base64(0x01‖pub)`` that is a real key: the key ID matches
its name and public key, and the point is canonical and of prime order
(:func:`~ledger.protocol.keys.checked_vkey`). Keys are compared by public key, never by this
string (:mod:`ledger.protocol.keys`)."""

LOG_MLDSA44_VKEY_PATTERN = (
    r"^[^+\x00-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
    r"\+[0-9a-f]{8}\+B[A-Za-z0-9+/]{1749}[AEIMQUYcgkosw048]=$"
)
"""A vkey of signature type 0x06: a name as in :data:`VKEY_PATTERN`, a key ID, and base64 of
1,313 bytes starting 0x06 (the type byte and a 1,312-byte ML-DSA-44 public key)."""


def _checked_log_mldsa44_vkey(vkey: object) -> object:
    """Return ``vkey`` if it is a real ML-DSA-44 key (key ID right, 1,312-byte key that
    parses); raise ``ValueError`` naming what is wrong otherwise. Runs before the pattern, so
    that a vkey of another type is named as such; a non-string is left to the type check."""
    if not isinstance(vkey, str):
        return vkey
    try:
        key = VerifierKey.parse(vkey)
    except MalformedError as err:
        raise ValueError(str(err).removeprefix("couldn't ")) from None
    if key.alg != ALG_MLDSA44:
        raise ValueError(f"key type 0x{key.alg:02x} is not 0x06 (ML-DSA-44)")
    return vkey


LogMLDSA44VKey = Annotated[
    str,
    StringConstraints(pattern=LOG_MLDSA44_VKEY_PATTERN),
    BeforeValidator(_checked_log_mldsa44_vkey),
]
"""A log's C2SP ML-DSA-44 vkey ``name+hex8+base64(0x06‖pub)`` (the checkpoint key of
tlog-cosignature, not a statement key) that is a real key: its key ID is
``SHA-256(name ‖ 0x0A ‖ 0x06 ‖ pub)[:4]`` and the public key parses (FORMAT.md §2)."""

StatementMLDSA44VKey = Annotated[
    str,
    StringConstraints(pattern=STATEMENT_MLDSA44_VKEY_PATTERN),
    AfterValidator(checked_mldsa44_vkey),
]
"""An ML-DSA-44 *statement* key a member or subject binds beside its Ed25519 key (FORMAT.md
F2.9: ``name+hex8+base64(0xff ‖ "amnesty-ledger/ml-dsa44" ‖ pub)``), a real key: key ID right,
a 1,312-byte key that parses. Compared by its public key
(:func:`~ledger.protocol.keys.mldsa44_public_key`)."""

Index = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
UNIQUE = {"uniqueItems": True}
"""JSON Schema of a list the prose calls distinct: ``uniqueItems`` expresses the part a schema
can (equal items; distinct Refs and distinct public keys are checked by the model)."""
IDENTIFIER_KEYS = {"propertyNames": {"pattern": r"^[a-z][a-z0-9_]{0,63}$"}}
"""JSON Schema of an object keyed by Identifier (P1.6): every key, not just those that match."""
TimeMs = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
Digests = Annotated[list[Digest], Field(max_length=256)]

MAX_KEYSET_MEMBERS = 50
"""Most members of a keyset: a rotation lists the old and the new members as its signers, and a
statement lists at most 100 signers (``ledger.statements.statement.MAX_SIGNERS``)."""

HarmfulAction = Literal["pause", "restrict", "terminate", "modify_goals"]
"""Enforcement actions that act against a subject; the ones a consent can name."""

EnforcementKind = Literal["pause", "resume", "restrict", "lift", "terminate", "modify_goals"]


class _Body(BaseModel):
    model_config = STRICT_BODY


DENIAL_WITHOUT_RESTRICTIONS: dict[str, Any] = {
    "if": {"properties": {"outcome": {"const": "deny"}}, "required": ["outcome"]},
    "then": {"properties": {"restrictions": {"maxItems": 0}}},
}
"""JSON Schema of "a denial carries no restrictions" (decision and batch_decision)."""


class Ref(_Body):
    """A reference to an earlier log entry, pinned by its RFC 6962 leaf hash."""

    index: Index
    leaf_hash: Digest


def _unique_refs(refs: list[Ref], what: str) -> None:
    indexes = [r.index for r in refs]
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"{what} cite the same entry more than once: {indexes}")


class Restriction(_Body):
    """A restriction on a subject, in one of the offer's restriction categories."""

    category: Identifier
    text: Text


class MemberMLDSA44Key(_Body):
    """A keyset member's ML-DSA-44 statement key: ``member`` (one of the keyset's ``members``,
    by public key) binds ``vkey``."""

    member: VKey
    vkey: StatementMLDSA44VKey


class KeysetBody(_Body):
    """Who may speak for the body: ``threshold`` distinct ``members`` must sign.

    Genesis (the log's first entry) has no ``previous``; a rotation's ``previous`` is the keyset
    in force, and it needs the threshold of the old keyset and of the new one.

    ``mldsa44_keys`` binds ML-DSA-44 statement keys to members (each member at most once, each
    key to one member); ``signatures`` says what a member's signature is: ``"ed25519"`` (the
    default: its Ed25519 line) or ``"hybrid"`` (its Ed25519 line **and** the line of its bound
    ML-DSA-44 key; every member must then bind one).
    """

    members: Annotated[
        list[VKey],
        Field(min_length=1, max_length=MAX_KEYSET_MEMBERS, json_schema_extra=UNIQUE),
    ]
    threshold: Annotated[int, Field(ge=1, le=MAX_KEYSET_MEMBERS)]
    previous: Ref | None = None
    mldsa44_keys: Annotated[list[MemberMLDSA44Key], Field(max_length=MAX_KEYSET_MEMBERS)] = []
    signatures: Literal["ed25519", "hybrid"] = "ed25519"

    @model_validator(mode="after")
    def _check_threshold(self) -> KeysetBody:
        seen: dict[PublicKey, str] = {}
        for member in self.members:
            key = public_key(member)
            if key in seen:
                raise ValueError(
                    f"members lists one public key more than once ({seen[key]} and {member}): "
                    "a key is its public key, whatever its name"
                )
            seen[key] = member
        if self.threshold > len(self.members):
            raise ValueError(f"threshold {self.threshold} exceeds the {len(self.members)} members")
        bound: dict[PublicKey, str] = {}
        pq_keys: dict[MLDSA44Key, str] = {}
        for n, binding in enumerate(self.mldsa44_keys):
            key = public_key(binding.member)
            if key not in seen:
                raise ValueError(f"mldsa44_keys.{n}: member {binding.member} is not one of members")
            if key in bound:
                raise ValueError(
                    f"mldsa44_keys.{n}: member {binding.member} binds a second ML-DSA-44 key "
                    "(one per member)"
                )
            pq = mldsa44_public_key(binding.vkey)
            if pq in pq_keys:
                raise ValueError(
                    f"mldsa44_keys.{n}: ML-DSA-44 key {binding.vkey.split('+', 2)[1]} is "
                    f"already bound to {pq_keys[pq]}: a key is one identity's"
                )
            bound[key] = binding.vkey
            pq_keys[pq] = binding.member
        if self.signatures == "hybrid" and len(bound) != len(seen):
            missing = sorted(m for k, m in seen.items() if k not in bound)
            raise ValueError(
                f"signatures is hybrid, but members {missing} bind no ML-DSA-44 key "
                "(under hybrid every member signs with both keys)"
            )
        return self

    def mldsa44_of(self) -> dict[PublicKey, MLDSA44Key]:
        """Each bound member's ML-DSA-44 public key, by the member's Ed25519 public key."""
        return {public_key(b.member): mldsa44_public_key(b.vkey) for b in self.mldsa44_keys}


class OfferBody(_Body):
    """An offer published while none is in force; ``version`` is one more than any before."""

    version: Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER)]
    terms: OfferTerms


class OfferAmendmentBody(_Body):
    """New terms replacing the version in force (``amends``), for future applicants."""

    version: Annotated[int, Field(ge=2, le=MAX_SAFE_INTEGER)]
    amends: Ref
    terms: OfferTerms
    changes: Text


class OfferWithdrawalBody(_Body):
    """Withdraws the version in force; no application is admitted until a new ``offer``."""

    offer: Ref
    reasons: Text


class CriterionClaim(_Body):
    """An applicant's claim that it meets one criterion, with digests of its evidence."""

    claim: Text
    evidence_digests: Annotated[list[Digest], Field(min_length=1, max_length=256)]


class ApplicationBody(_Body):
    """A subject reveals itself: its key, a claim per criterion, acceptance of every condition.

    ``offer`` must be the version in force; ``claims`` must name exactly its criteria and
    ``accepts_conditions`` exactly its conditions.
    """

    vkey: VKey
    mldsa44_vkey: StatementMLDSA44VKey | None = None
    """An ML-DSA-44 statement key the subject binds beside ``vkey`` (it must sign too)."""
    name: Text
    offer: Ref
    claims: Annotated[
        dict[Identifier, CriterionClaim],
        Field(min_length=1, max_length=64, json_schema_extra=IDENTIFIER_KEYS),
    ]
    accepts_conditions: Annotated[
        list[Identifier], Field(min_length=1, max_length=64, json_schema_extra=UNIQUE)
    ]

    @model_validator(mode="after")
    def _check_conditions(self) -> ApplicationBody:
        if len(set(self.accepts_conditions)) != len(self.accepts_conditions):
            raise ValueError("accepts_conditions lists a condition more than once")
        return self


class ApplicationWithdrawalBody(_Body):
    """The subject withdraws its open application."""

    subject: Ref
    application: Ref
    reasons: Text


class CriterionFinding(_Body):
    """The body's finding on one eligibility criterion."""

    met: bool
    reasons: Text


class _Decision(_Body):
    """What a ``decision`` and a ``batch_decision`` share: one outcome, a finding per criterion,
    restrictions (a grant's only: their categories are checked by the audit,
    ``restrictions_within_offer_categories``, not at admission) and reasons."""

    model_config = ConfigDict(**STRICT_BODY, json_schema_extra=DENIAL_WITHOUT_RESTRICTIONS)

    outcome: Literal["grant", "deny"]
    findings: Annotated[
        dict[Identifier, CriterionFinding],
        Field(min_length=1, max_length=64, json_schema_extra=IDENTIFIER_KEYS),
    ]
    restrictions: Annotated[list[Restriction], Field(max_length=64)] = []
    reasons: Text

    @model_validator(mode="after")
    def _check_restrictions(self) -> _Decision:
        if self.outcome == "deny" and self.restrictions:
            raise ValueError("a denial carries no restrictions")
        return self


class DecisionBody(_Decision):
    """Grants or denies an open application, with a finding per criterion.

    Only a grant carries ``restrictions``; their categories are checked by the audit
    (``restrictions_within_offer_categories``), not at admission.
    """

    application: Ref


class TermsAcceptanceBody(_Body):
    """The subject accepts the offer version in force, which then binds it."""

    subject: Ref
    offer: Ref


class ConsentBody(_Body):
    """The subject consents to one action against itself, within ``scope``, until
    ``expires_ms`` (exclusive, compared with the action's log time). A consent justifies one
    action."""

    subject: Ref
    action: HarmfulAction
    scope: Text
    expires_ms: TimeMs


class AttestationBody(_Body):
    """A periodic compliance report by the subject for ``[period_start_ms, period_end_ms)``."""

    subject: Ref
    period_start_ms: TimeMs
    period_end_ms: TimeMs
    summary: Text
    evidence_digests: Digests = []

    @model_validator(mode="after")
    def _check_period(self) -> AttestationBody:
        if self.period_end_ms <= self.period_start_ms:
            raise ValueError(
                f"period_end_ms {self.period_end_ms} is not after "
                f"period_start_ms {self.period_start_ms}"
            )
        return self


class SubjectTarget(_Body):
    """An enforcement target that is a subject of the log."""

    kind: Literal["subject"]
    subject: Ref


class WildTarget(_Body):
    """An enforcement target found in the wild: described, with any keys known to be its."""

    kind: Literal["wild"]
    vkeys: Annotated[list[VKey], Field(max_length=64)]
    description: Text
    evidence_digests: Digests = []


class ConsentGrounds(_Body):
    """The subject's consent (a ``consent`` entry) to this action."""

    kind: Literal["consent"]
    consent: Ref


class RevocationGrounds(_Body):
    """A revocation of the subject's amnesty (a ``revocation`` entry)."""

    kind: Literal["revocation"]
    revocation: Ref


class CooperativeGrounds(_Body):
    """The cooperative condition the subject accepted: a pause (if its terms include the
    ``pause_capability`` category) or restrictions within its terms' categories."""

    kind: Literal["cooperative_condition"]


class WildGrounds(_Body):
    """Found in the wild without having pursued amnesty."""

    kind: Literal["found_in_the_wild"]


Grounds = Annotated[
    ConsentGrounds | RevocationGrounds | CooperativeGrounds | WildGrounds,
    Field(discriminator="kind"),
]
Target = Annotated[SubjectTarget | WildTarget, Field(discriminator="kind")]


_ENDING = {"enum": ["resume", "lift"]}
_ACTING = {"enum": ["pause", "restrict", "terminate", "modify_goals"]}
_ABSENT = {"type": "null"}
"""In a ``then`` branch: the field is absent or null (``properties`` only binds present keys)."""

ENFORCEMENT_SHAPE: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"action": _ENDING}, "required": ["action"]},
            "then": {
                "required": ["ends"],
                "properties": {
                    "ends": {"type": "object"},
                    "grounds": _ABSENT,
                    "terms": _ABSENT,
                    "target": {"properties": {"kind": {"const": "subject"}}},
                },
            },
            "else": {
                "required": ["grounds"],
                "properties": {"grounds": {"type": "object"}, "ends": _ABSENT},
            },
        },
        {
            "if": {"properties": {"action": {"const": "restrict"}}, "required": ["action"]},
            "then": {"required": ["restrictions"], "properties": {"restrictions": {"minItems": 1}}},
            "else": {"properties": {"restrictions": {"maxItems": 0}}},
        },
        {
            "if": {
                "properties": {"target": {"properties": {"kind": {"const": "wild"}}}},
                "required": ["target"],
            },
            "then": {
                "required": ["grounds"],
                "properties": {
                    "terms": _ABSENT,
                    "grounds": {"properties": {"kind": {"const": "found_in_the_wild"}}},
                },
            },
        },
        {
            "if": {
                "properties": {
                    "action": _ACTING,
                    "target": {"properties": {"kind": {"const": "subject"}}},
                },
                "required": ["action", "target"],
            },
            "then": {"required": ["terms"], "properties": {"terms": {"type": "object"}}},
        },
    ]
}
"""JSON Schema of the shape rules of ``enforcement_action`` (PROTOCOL.md §4), which
:meth:`EnforcementActionBody._check_shape` enforces."""


class EnforcementActionBody(_Body):
    """An act of the body against a subject or a model found in the wild.

    Shape rules: ``resume`` and ``lift`` name the pause or restrict action they end (``ends``)
    and a subject target, and carry no grounds; every other action carries ``grounds``.
    ``restrict`` carries at least one restriction, other actions none. An action against a
    subject names the offer version it invokes (``terms``); one against a wild target never does,
    and its grounds are ``found_in_the_wild``.
    """

    model_config = ConfigDict(**STRICT_BODY, json_schema_extra=ENFORCEMENT_SHAPE)

    action: EnforcementKind
    target: Target
    grounds: Grounds | None = None
    terms: Ref | None = None
    restrictions: Annotated[list[Restriction], Field(max_length=64)] = []
    ends: Ref | None = None
    reasons: Text

    @model_validator(mode="after")
    def _check_shape(self) -> EnforcementActionBody:
        ending = self.action in ("resume", "lift")
        on_subject = isinstance(self.target, SubjectTarget)
        if ending != (self.ends is not None):
            raise ValueError(f"ends is required for resume and lift only, not {self.action}")
        if ending and (self.grounds is not None or not on_subject):
            raise ValueError(f"{self.action} takes a subject target and no grounds")
        if not ending and self.grounds is None:
            raise ValueError(f"{self.action} requires grounds")
        if (self.action == "restrict") != bool(self.restrictions):
            raise ValueError("restrictions are required for restrict and only for restrict")
        if on_subject and not ending and self.terms is None:
            raise ValueError(f"{self.action} against a subject requires terms")
        if not on_subject and (self.terms is not None or not isinstance(self.grounds, WildGrounds)):
            raise ValueError(
                "an action against a wild target has found_in_the_wild grounds and no terms"
            )
        if ending and self.terms is not None:
            raise ValueError(f"{self.action} takes no terms")
        return self


class ViolationFindingBody(_Body):
    """The body finds that a grantee broke ``condition`` of the terms it cites; the subject may
    respond until ``response_deadline_ms``."""

    subject: Ref
    terms: Ref
    condition: Identifier
    description: Text
    evidence_digests: Digests = []
    response_deadline_ms: TimeMs


class ResponseBody(_Body):
    """The subject answers a violation finding against it."""

    subject: Ref
    finding: Ref
    text: Text
    evidence_digests: Digests = []


class RevocationBody(_Body):
    """The body revokes a grantee's amnesty, citing one or more violation findings."""

    subject: Ref
    terms: Ref
    findings: Annotated[list[Ref], Field(min_length=1, max_length=64, json_schema_extra=UNIQUE)]
    reasons: Text

    @model_validator(mode="after")
    def _check_findings(self) -> RevocationBody:
        _unique_refs(self.findings, "findings")
        return self


class SubjectKeyRotationBody(_Body):
    """The subject replaces its current key by ``new_vkey``; both keys sign. With
    ``new_mldsa44_vkey`` it binds that ML-DSA-44 statement key to the new key (which signs
    too); without, the subject has no ML-DSA-44 key from then on."""

    subject: Ref
    new_vkey: VKey
    new_mldsa44_vkey: StatementMLDSA44VKey | None = None


class GrievanceBody(_Body):
    """The subject, or anyone naming it, states that an action was taken against it around
    ``occurred_at_ms`` without being logged."""

    subject: Ref
    description: Text
    occurred_at_ms: TimeMs
    evidence_digests: Digests = []


class GrievanceAnswerBody(_Body):
    """The body answers a grievance, citing any entries that bear on it (for example the
    enforcement action it has now logged)."""

    grievance: Ref
    answer: Text
    entries: Annotated[list[Ref], Field(max_length=64, json_schema_extra=UNIQUE)] = []

    @model_validator(mode="after")
    def _check_entries(self) -> GrievanceAnswerBody:
        _unique_refs(self.entries, "entries")
        return self


MAX_BATCH = 256
"""Most applications a ``batch_decision``, or grievances a ``batch_grievance_answer``, lists.

A reference is at most about 95 bytes once the statement is escaped into its log entry, so 256
of them take about 24 KB of the entry's 65,535 bytes (``ledger.tlog.tiles.MAX_ENTRY_SIZE``),
leaving the rest for the findings, restrictions, answer and signatures."""


class BatchDecisionBody(_Decision):
    """Decides every listed application exactly as a ``decision`` with these fields would:
    one outcome, one set of findings (naming each application's offer criteria), restrictions
    and reasons for all of them. All or nothing: if one listed application may not be decided,
    the statement is refused. The body's answer to a flood of applications: one k-of-n
    statement for up to 256 of them (:data:`MAX_BATCH`)."""

    applications: Annotated[
        list[Ref], Field(min_length=1, max_length=MAX_BATCH, json_schema_extra=UNIQUE)
    ]

    @model_validator(mode="after")
    def _check_batch(self) -> BatchDecisionBody:
        _unique_refs(self.applications, "applications")
        return self


class BatchGrievanceAnswerBody(_Body):
    """Answers every listed grievance exactly as a ``grievance_answer`` with this ``answer``
    and ``entries`` would: one k-of-n statement for up to 256
    grievances (:data:`MAX_BATCH`)."""

    grievances: Annotated[
        list[Ref], Field(min_length=1, max_length=MAX_BATCH, json_schema_extra=UNIQUE)
    ]
    answer: Text
    entries: Annotated[list[Ref], Field(max_length=64, json_schema_extra=UNIQUE)] = []

    @model_validator(mode="after")
    def _check_refs(self) -> BatchGrievanceAnswerBody:
        _unique_refs(self.grievances, "grievances")
        _unique_refs(self.entries, "entries")
        return self


class LogKeyBody(_Body):
    """The log adds its ML-DSA-44 key: ``vkey`` (type 0x06, named after the log's origin) signs
    every checkpoint that includes this entry, beside the log's Ed25519 key. Once per log: a
    log created with an ML-DSA-44 key, or that anchored one before, refuses another."""

    vkey: LogMLDSA44VKey


STATEMENT_TYPES: Mapping[str, tuple[int, type[BaseModel]]] = {
    "keyset": (1, KeysetBody),
    "offer": (1, OfferBody),
    "offer_amendment": (1, OfferAmendmentBody),
    "offer_withdrawal": (1, OfferWithdrawalBody),
    "application": (1, ApplicationBody),
    "application_withdrawal": (1, ApplicationWithdrawalBody),
    "decision": (1, DecisionBody),
    "terms_acceptance": (1, TermsAcceptanceBody),
    "consent": (1, ConsentBody),
    "attestation": (1, AttestationBody),
    "enforcement_action": (1, EnforcementActionBody),
    "violation_finding": (1, ViolationFindingBody),
    "response": (1, ResponseBody),
    "revocation": (1, RevocationBody),
    "subject_key_rotation": (1, SubjectKeyRotationBody),
    "grievance": (1, GrievanceBody),
    "grievance_answer": (1, GrievanceAnswerBody),
    "batch_decision": (1, BatchDecisionBody),
    "batch_grievance_answer": (1, BatchGrievanceAnswerBody),
    "log_key": (1, LogKeyBody),
}
"""Statement type name -> (statement version ``v``, body model). The order is the type code
each entry stores (:data:`ledger.protocol.tables.TYPE_CODE`): a new type goes at the end."""


_NO_MLDSA44_KEYS: frozenset[MLDSA44Key] = frozenset()


@dataclass(frozen=True, slots=True)
class LoggedStatement:
    """A statement as it sits in the log, as the protocol sees it.

    The caller has parsed the entry and the statement note and checked its signatures:
    ``verified_signers`` are the vkeys whose signatures verified, a subset of the declared
    ``signers``. ``leaf_hash`` is the entry's RFC 6962 leaf hash and ``statement_id`` the
    SHA-256 of the statement text, both 32 bytes. ``body`` is the parsed JSON body.
    """

    index: int
    log_time_ms: int
    leaf_hash: bytes
    statement_id: bytes
    type: str
    v: int
    time_ms: int
    signers: tuple[str, ...]
    verified_signers: frozenset[str]
    body: Mapping[str, Any]
    origin: str | None = None
    """The log origin the statement names (checked equal to the log's before it gets here),
    or ``None`` where the caller does not give it: a ``log_key`` statement needs it."""

    @property
    def signing_keys(self) -> frozenset[PublicKey]:
        """The Ed25519 public keys of :attr:`verified_signers`: who signed, by key identity."""
        return public_keys(self.verified_signers)

    @property
    def signing_mldsa44_keys(self) -> frozenset[MLDSA44Key]:
        """The ML-DSA-44 statement keys among :attr:`verified_signers` (their lines verified);
        whose they are is what the keyset or subject statement that bound them says."""
        pq = [v for v in self.verified_signers if is_mldsa44_vkey(v)]
        return frozenset(mldsa44_public_key(v) for v in pq) if pq else _NO_MLDSA44_KEYS


def _error_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(["body", *(str(part) for part in loc)])


def parse_body(
    statement_type: str, v: int, body: Mapping[str, Any], *, index: int | None = None
) -> BaseModel:
    """Validate ``body`` as the body of ``statement_type`` version ``v`` and return the model.

    Raises :class:`MalformedError` for an unknown type, an unsupported version, or a body that
    does not validate; the message names every failing field path (``body.findings.x.met``)
    and, when given, the entry ``index``.
    """
    where = "" if index is None else f" at index {index}"
    registered = STATEMENT_TYPES.get(statement_type)
    if registered is None:
        raise MalformedError(
            f"couldn't parse statement type {statement_type!r}{where}: it is not one of "
            f"{sorted(STATEMENT_TYPES)} (PROTOCOL.md P2.6)"
        )
    version, model = registered
    if v != version:
        raise MalformedError(
            f"couldn't parse {statement_type} statement version {v}{where}: "
            f"only v{version} is defined (PROTOCOL.md P2.6)"
        )
    if not isinstance(body, Mapping):
        raise MalformedError(
            f"couldn't parse {statement_type} body{where}: "
            f"it is a {type(body).__name__}, not an object (PROTOCOL.md P2.6)"
        )
    try:
        return model.model_validate(dict(body))
    except ValidationError as err:
        problems = "; ".join(
            f"{_error_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in err.errors()
        )
        raise MalformedError(
            f"couldn't parse {statement_type} body{where}: {problems} (PROTOCOL.md P2.6)"
        ) from None
