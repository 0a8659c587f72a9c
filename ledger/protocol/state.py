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

:class:`ProtocolState` is put together from a base and three mixins, one named concern each:

- :mod:`~ledger.protocol.tables` — :class:`~ledger.protocol.tables.StateTables`: every
  attribute of the state, and the authority and reference checks that all rules share;
- :mod:`~ledger.protocol.body_rules` — the rules and transitions of the body's statements;
- :mod:`~ledger.protocol.subject_rules` — those of the subjects' statements (and grievances);
- :mod:`~ledger.protocol.queries` — the read-only queries.

This module holds what ties them together: :meth:`~ProtocolState.admit` and
:meth:`~ProtocolState.apply` (the contract), the checks every entry passes (index, hashes, log
time, clock skew, signers, a keyset genesis first), the dispatch from a body's type to its rule,
and :func:`replay`.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from ledger.errors import MalformedError
from ledger.protocol.body_rules import BodyRules
from ledger.protocol.queries import StateQueries
from ledger.protocol.records import LogKeyRecord
from ledger.protocol.statements import (
    ApplicationBody,
    ApplicationWithdrawalBody,
    AttestationBody,
    BatchDecisionBody,
    BatchGrievanceAnswerBody,
    ConsentBody,
    DecisionBody,
    EnforcementActionBody,
    GrievanceAnswerBody,
    GrievanceBody,
    KeysetBody,
    LoggedStatement,
    LogKeyBody,
    OfferAmendmentBody,
    OfferBody,
    OfferWithdrawalBody,
    ResponseBody,
    RevocationBody,
    SubjectKeyRotationBody,
    TermsAcceptanceBody,
    ViolationFindingBody,
    parse_body,
)
from ledger.protocol.subject_rules import SubjectRules
from ledger.protocol.tables import HASH_SIZE, Effect, refuse

MAX_CLOCK_SKEW_MS = 300_000
"""A statement's ``time_ms`` may be at most five minutes after its entry's ``log_time_ms``.
(It may be any time before: a statement can be signed offline and submitted later.)"""


class ProtocolState(BodyRules, SubjectRules, StateQueries):
    """The amnesty protocol's state after applying a prefix of the log.

    Contract: :meth:`admit` never changes state; :meth:`apply` admits (reusing the result of an
    immediately preceding :meth:`admit` of the same object) and then records the statement, so
    an inadmissible statement can never be applied. Not thread-safe: one writer at a time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._admitted: tuple[LoggedStatement, Effect] | None = None

    @property
    def log_key(self) -> LogKeyRecord | None:
        """The log's ML-DSA-44 key and the entry that anchored it (a ``log_key`` statement),
        or ``None``: checkpoints of a size beyond that entry carry its signature."""
        return self._log_key

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
        self._record_entry(s)
        effect()

    def admit_and_apply(self, s: LoggedStatement) -> None:
        """Admit ``s`` and record it: what the sequencer does for each new statement."""
        self.apply(s)

    def _plan(self, s: LoggedStatement) -> Effect:
        """Run every admission check of ``s`` and return the state change it would make."""
        if s.index != self.size:
            refuse(s, f"the next entry's index is {self.size}", "PROTOCOL.md P2.1")
        if len(s.leaf_hash) != HASH_SIZE or len(s.statement_id) != HASH_SIZE:
            raise MalformedError(
                f"couldn't admit {s.type} at index {s.index}: leaf_hash is {len(s.leaf_hash)} "
                f"bytes and statement_id {len(s.statement_id)} bytes, not {HASH_SIZE} "
                "(PROTOCOL.md P2.2)"
            )
        if self._statement_logged(s.statement_id):
            # FORMAT.md rule F5.5: a log never holds one statement twice. Without this a log
            # could replay a signed statement (a body's pause, a subject's grievance) and make
            # its signer appear to act twice.
            refuse(
                s,
                f"statement {s.statement_id.hex()} is already in the log: a statement is "
                "logged once",
                "FORMAT.md F5.5",
            )
        last_log_time = self._last_log_time()
        if last_log_time is not None and s.log_time_ms < last_log_time:
            refuse(
                s,
                f"log time {s.log_time_ms} is before the previous entry's {last_log_time}",
                "PROTOCOL.md P2.3",
            )
        if s.time_ms > s.log_time_ms + MAX_CLOCK_SKEW_MS:
            refuse(
                s,
                f"statement time {s.time_ms} is more than {MAX_CLOCK_SKEW_MS} ms after "
                f"log time {s.log_time_ms}",
                "PROTOCOL.md P2.4",
            )
        if not s.verified_signers.issubset(s.signers):
            extra = sorted(s.verified_signers.difference(s.signers))
            refuse(
                s,
                f"verified signers {extra} are not among the declared signers",
                "PROTOCOL.md P2.5",
            )
        body = parse_body(s.type, s.v, s.body, index=s.index)
        if self._keyset is None and not (isinstance(body, KeysetBody) and body.previous is None):
            refuse(s, "the first entry of the log must be a keyset genesis", "PROTOCOL.md P2.7")
        return self._plan_body(s, body)

    def _plan_body(self, s: LoggedStatement, body: BaseModel) -> Effect:
        match body:
            case KeysetBody():
                return self._plan_keyset(s, body)
            case OfferBody():
                self._require_body(s)
                if self._offer_in_force is not None:
                    current = self._offers[self._offer_in_force]
                    refuse(
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
            case BatchDecisionBody():
                return self._plan_batch_decision(s, body)
            case BatchGrievanceAnswerBody():
                return self._plan_batch_grievance_answer(s, body)
            case LogKeyBody():
                return self._plan_log_key(s, body)
        raise MalformedError(f"couldn't admit {s.type} at index {s.index}: no rule for its body")


def replay(statements: Iterable[LoggedStatement]) -> ProtocolState:
    """Admit and apply ``statements`` in order from an empty state, and return the state.

    Raises the first admission error, naming the entry. Deterministic: the same statements
    always give the same state.
    """
    state = ProtocolState()
    for s in statements:
        state.apply(s)
    return state
