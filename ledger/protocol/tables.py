"""The protocol state's tables, and the checks that every admission rule shares.

:class:`StateTables` is the base of :class:`~ledger.protocol.state.ProtocolState`. It owns every
attribute of the state — the per-entry facts in flat arrays (32 bytes of leaf hash, one byte of
type code, eight bytes of log time), everything else in dicts keyed by entry index or public
key (:mod:`ledger.protocol.keys`: a key is its public key) — and
the checks that the rules of :mod:`~ledger.protocol.body_rules` and
:mod:`~ledger.protocol.subject_rules` share:

- authority: :meth:`~StateTables._require_body` (the threshold of distinct members of the keyset
  in force) and :meth:`~StateTables._subject_signing` (the subject's current key);
- references: :meth:`~StateTables._resolve` (an earlier entry of one of the expected types whose
  leaf hash matches), and on it the lookups of a subject and of the offer version in force.

Contract: the checks only read the tables, and refuse with :func:`refuse` (a
:class:`~ledger.errors.RefusedError` naming the statement). The two bookkeeping helpers,
:meth:`~StateTables._touch` and :meth:`~StateTables._review_pauses`, write: a rule calls them
only inside the effect it returns, which :meth:`~ledger.protocol.state.ProtocolState.apply` runs
after every check has passed.

The attributes set in :meth:`StateTables.__init__` are the state, and nothing else is:
:mod:`ledger.verifier.trust` snapshots a state attribute by attribute (``vars(state)``) and
refuses a snapshot whose attributes differ, so adding or renaming one changes its format.
"""

from __future__ import annotations

import base64
from array import array
from collections.abc import Callable, MutableMapping, MutableSequence, MutableSet
from typing import NoReturn

from ledger.errors import AuthorityError, RefusedError
from ledger.protocol.keys import PublicKey, public_key
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
    SignatureStrength,
    SubjectRecord,
)
from ledger.protocol.signature_strength import note_entry
from ledger.protocol.statements import STATEMENT_TYPES, LoggedStatement, Ref

HASH_SIZE = 32

TYPE_NAMES: tuple[str, ...] = tuple(STATEMENT_TYPES)
"""Statement types by type code (the byte stored per entry)."""
TYPE_CODE = {name: code for code, name in enumerate(TYPE_NAMES)}
"""Type codes by statement type."""

# The type codes a reference may name, by what it refers to (for StateTables._resolve).
KEYSET = frozenset({TYPE_CODE["keyset"]})
OFFERS = frozenset({TYPE_CODE["offer"], TYPE_CODE["offer_amendment"]})
APPLICATION = frozenset({TYPE_CODE["application"]})
CONSENT = frozenset({TYPE_CODE["consent"]})
FINDING = frozenset({TYPE_CODE["violation_finding"]})
REVOCATION = frozenset({TYPE_CODE["revocation"]})
GRIEVANCE = frozenset({TYPE_CODE["grievance"]})
ENFORCEMENT = frozenset({TYPE_CODE["enforcement_action"]})
RESTRICTING = frozenset(
    {TYPE_CODE["enforcement_action"], TYPE_CODE["decision"], TYPE_CODE["batch_decision"]}
)
ANY = frozenset(TYPE_CODE.values())

Effect = Callable[[], None]
"""The state change an admitted statement makes, planned by its rule and run by ``apply``."""


def refuse(s: LoggedStatement, cause: str, rule: str = "PROTOCOL.md P2.8") -> NoReturn:
    """Refuse ``s``: raise :class:`~ledger.errors.RefusedError` naming it, ``cause`` and the
    numbered ``rule`` it breaks (by default P2.8, a statement type's own rule)."""
    raise RefusedError(f"couldn't admit {s.type} at index {s.index}: {cause} ({rule})")


def refuse_authority(s: LoggedStatement, cause: str) -> NoReturn:
    """Refuse ``s`` for want of the signatures it needs (the body's threshold, a subject's
    key): :class:`~ledger.errors.AuthorityError`, a :class:`~ledger.errors.RefusedError`."""
    raise AuthorityError(f"couldn't admit {s.type} at index {s.index}: {cause} (PROTOCOL.md P2.8)")


class StateTables:
    """The state's tables (every attribute of a :class:`~ledger.protocol.state.ProtocolState`)
    and the authority and reference checks the admission rules share."""

    _signature_strength: SignatureStrength | None = None
    """Which entries only Ed25519 protects (:mod:`ledger.protocol.signature_strength`), updated
    as each entry is recorded: in memory here, in the ``meta`` table by the stored state."""

    def __init__(self) -> None:
        self._init_tables()

    def _init_tables(self) -> None:
        """Create the tables, empty and in memory. :class:`~ledger.protocol.stored.
        StoredProtocolState` overrides this (and the per-entry accessors below) to keep them in
        a database instead."""
        self._leaf_hashes = bytearray()
        self._statement_ids: MutableSet[bytes] = set()
        self._types = bytearray()
        self._log_times = array("q")
        self._type_counts: dict[str, int] = {}
        self._keyset: KeysetRecord | None = None
        self._keysets: MutableSequence[KeysetRecord] = []
        self._body_keys: MutableSet[PublicKey] = set()
        self._offers: MutableMapping[int, OfferVersion] = {}
        self._offer_in_force: int | None = None
        self._latest_version = 0
        self._subjects: MutableMapping[int, SubjectRecord] = {}
        self._key_owner: MutableMapping[PublicKey, int] = {}
        self._applications: MutableMapping[int, ApplicationRecord] = {}
        self._decisions: MutableMapping[int, ApplicationRecord] = {}
        self._consents: MutableMapping[int, ConsentRecord] = {}
        self._findings: MutableMapping[int, FindingRecord] = {}
        self._revocations: MutableMapping[int, RevocationRecord] = {}
        self._enforcement: MutableMapping[int, EnforcementRecord] = {}
        self._grievances: MutableMapping[int, GrievanceRecord] = {}
        self._pause_periods: MutableSequence[PausePeriod] = []
        self._details: MutableMapping[int, str] = {}
        self._signature_strength = SignatureStrength()
        self._log_key: LogKeyRecord | None = None

    @property
    def size(self) -> int:
        """How many entries have been applied."""
        return len(self._types)

    # -- per-entry facts (in memory: flat arrays; overridden by the stored state) ------------

    def _type_code_at(self, index: int) -> int:
        """The type code of applied entry ``index``."""
        return self._types[index]

    def _leaf_at(self, index: int) -> bytes:
        """The leaf hash of applied entry ``index``."""
        return bytes(self._leaf_hashes[index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def _log_time_at(self, index: int) -> int:
        """The log time of applied entry ``index``."""
        return self._log_times[index]

    def _last_log_time(self) -> int | None:
        """The log time of the last applied entry, or ``None`` before the first."""
        return self._log_times[-1] if self._log_times else None

    def _statement_logged(self, statement_id: bytes) -> bool:
        """Whether an applied entry holds the statement ``statement_id``."""
        return statement_id in self._statement_ids

    def _record_entry(self, s: LoggedStatement) -> None:
        """Record the per-entry facts of ``s``, the next entry (``apply`` calls this)."""
        self._leaf_hashes += s.leaf_hash
        self._statement_ids.add(s.statement_id)
        self._types.append(TYPE_CODE[s.type])
        self._log_times.append(s.log_time_ms)
        self._type_counts[s.type] = self._type_counts.get(s.type, 0) + 1
        note_entry(self, s)

    # ------------------------------------------------------------------ authority and refs

    def _require_body(self, s: LoggedStatement) -> KeysetRecord:
        keyset = self._keyset
        if keyset is None:
            refuse(s, "no keyset is in force")
        signed = len(keyset.members_signing(s.signing_keys, s.signing_mldsa44_keys))
        if signed < keyset.threshold:
            both = ""
            if keyset.signatures == "hybrid":
                both = " with both their keys (signatures: hybrid)"
            refuse_authority(
                s,
                f"{signed} of {keyset.threshold} required distinct members of the keyset at "
                f"index {keyset.index} signed{both}",
            )
        return keyset

    def _resolve(self, s: LoggedStatement, field: str, ref: Ref, codes: frozenset[int]) -> int:
        """Return ``ref.index`` if it names an earlier entry of one of ``codes`` with the same
        leaf hash; refuse otherwise."""
        index = ref.index
        if index >= self.size:
            refuse(s, f"{field} refers to index {index}, but only {self.size} entries precede it")
        code = self._type_code_at(index)
        if code not in codes:
            expected = " or ".join(sorted(TYPE_NAMES[c] for c in codes))
            refuse(s, f"{field} refers to index {index}, a {TYPE_NAMES[code]}, not {expected}")
        leaf = self._leaf_at(index)
        if leaf != base64.b64decode(ref.leaf_hash):
            actual = base64.b64encode(leaf).decode()
            refuse(
                s,
                f"{field} leaf hash {ref.leaf_hash} does not match entry {index}'s {actual}",
            )
        return index

    def _resolve_subject(self, s: LoggedStatement, field: str, ref: Ref) -> SubjectRecord:
        index = self._resolve(s, field, ref, APPLICATION)
        subject = self._subjects.get(index)
        if subject is None:
            refuse(s, f"{field} refers to index {index}, which is not a first application")
        return subject

    def _subject_signing(self, s: LoggedStatement, ref: Ref) -> SubjectRecord:
        """Resolve the subject ``ref`` names and require its current key's signature."""
        subject = self._resolve_subject(s, "body.subject", ref)
        if not self._signed_by(s, subject.current_vkey):
            refuse_authority(
                s,
                f"not signed by subject {subject.subject_id}'s current key {subject.current_vkey}",
            )
        return subject

    def _signed_by(self, s: LoggedStatement, vkey: str) -> bool:
        """Whether ``s`` carries a verified signature by ``vkey``'s public key, under any name
        (a key is its public key: :mod:`ledger.protocol.keys`)."""
        return public_key(vkey) in s.signing_keys

    def _key_in_use(self, vkey: str) -> str | None:
        """Who has ever held ``vkey``'s public key, in words, or ``None``: a key once a
        subject's or a body member's is never another's, under any name."""
        key = public_key(vkey)
        owner = self._key_owner.get(key)
        if owner is not None:
            return f"subject {owner}"
        if key in self._body_keys:
            return "the body"
        return None

    def _require_in_force(self, s: LoggedStatement, field: str, ref: Ref) -> OfferVersion:
        index = self._resolve(s, field, ref, OFFERS)
        if index != self._offer_in_force:
            in_force = (
                "no offer is in force"
                if self._offer_in_force is None
                else f"the version in force is at index {self._offer_in_force}"
            )
            refuse(
                s,
                f"{field} cites offer version {self._offers[index].version} at index {index}, "
                f"but {in_force}",
            )
        return self._offers[index]

    def _touch(self, subject: SubjectRecord, index: int) -> None:
        subject.timeline.append(index)

    def _review_pauses(self, subject: SubjectRecord, index: int) -> None:
        if subject.pause_period is not None:
            subject.pause_period.reviews.append(index)
