"""A signed statement at its place in the log: what the sequencer and the verifier both check.

:func:`check_statement` parses a signed statement for a log's origin, validates its body against
its type's schema and verifies its signatures; :func:`logged_statement` is the protocol's view of
it at its entry (:class:`~ledger.protocol.statements.LoggedStatement`); :func:`subject_keys` the
strings under which the read side indexes it. The writing server's policy
(:class:`ledger.server.admission.StatementPolicy`) and the verifier's per-entry check
(:class:`ledger.verifier.replay.ReplayCheck`) are both built on these, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ledger.protocol.keys import key_label, public_key, public_keys
from ledger.protocol.statements import LoggedStatement, parse_body
from ledger.statements.entry import LogEntry
from ledger.statements.statement import (
    SignedStatement,
    Statement,
    parse_statement,
    verified_signers,
)


@dataclass(frozen=True, slots=True)
class CheckedStatement:
    """A parsed statement with its verified signers (the ``context`` of a server's ``Prepared``)."""

    signed: SignedStatement
    verified: frozenset[str]


def logged_statement(
    signed: SignedStatement, verified: frozenset[str], entry: LogEntry, leaf: bytes
) -> LoggedStatement:
    """The protocol's view of a statement at its place in the log."""
    return statement_at(signed.statement, verified, entry, leaf)


def statement_at(
    statement: Statement, verified: frozenset[str], entry: LogEntry, leaf: bytes
) -> LoggedStatement:
    """The protocol's view of ``statement`` at ``entry`` (leaf hash ``leaf``), with the
    ``verified`` signers the caller established (or assumes, for a dry run)."""
    return LoggedStatement(
        index=entry.index,
        log_time_ms=entry.log_time_ms,
        leaf_hash=leaf,
        statement_id=statement.statement_id,
        type=statement.type,
        v=statement.v,
        time_ms=statement.time_ms,
        signers=statement.signers,
        verified_signers=verified,
        body=statement.body,
        origin=statement.origin,
    )


def subject_keys(statement_type: str, body: Mapping[str, object]) -> tuple[str, ...]:
    """The strings under which an entry is indexed as concerning subjects (``Prepared.subjects``).

    State-free, from the validated body alone, so that :meth:`StatementPolicy.prepare` can fill
    it outside the write lock. Two kinds of string, which never collide:

    - the decimal index of every entry the body names that belongs to exactly one subject: a
      ``subject`` reference (a subject is named by its first application), the ``application``
      a decision or withdrawal answers, the ``grievance`` an answer answers, and every one of
      the ``applications`` a batch decision decides and the ``grievances`` a batch answer
      answers;
    - the public key (standard base64, :func:`~ledger.protocol.keys.key_label`) of every key
      the body names: the applicant's ``vkey``, a rotation's ``new_vkey``, and the keys of an
      enforcement action's wild target — by public key, since a key is its public key whatever
      name a vkey gives it (the vkeys are checked: the body was validated).

    The read API finds a subject's entries by querying each of its application and grievance
    indexes and each of its keys (``api.service``). Only serves queries: the leaf is the truth.
    """
    keys: set[str] = set()
    for field_name in ("subject", "application", "grievance"):
        ref = body.get(field_name)
        if isinstance(ref, Mapping) and isinstance(ref.get("index"), int):
            keys.add(str(ref["index"]))
    for field_name in ("applications", "grievances"):  # a batch decision's or answer's items
        refs = body.get(field_name)
        if isinstance(refs, list):
            keys.update(
                str(r["index"])
                for r in refs
                if isinstance(r, Mapping) and isinstance(r.get("index"), int)
            )
    for field_name in ("vkey", "new_vkey") if statement_type in _KEYED_TYPES else ():
        vkey = body.get(field_name)
        if isinstance(vkey, str):
            keys.add(key_label(public_key(vkey)))
    target = body.get("target")
    if statement_type == "enforcement_action" and isinstance(target, Mapping):
        ref = target.get("subject")
        if isinstance(ref, Mapping) and isinstance(ref.get("index"), int):
            keys.add(str(ref["index"]))
        vkeys = target.get("vkeys")
        if isinstance(vkeys, list):
            keys.update(key_label(public_key(v)) for v in vkeys if isinstance(v, str))
    return tuple(sorted(keys))


_KEYED_TYPES = frozenset({"application", "subject_key_rotation"})


def signer_keys(verified: frozenset[str]) -> tuple[str, ...]:
    """The strings under which an entry is indexed by who signed it (``Prepared.signers``): the
    public key (standard base64) of each verified Ed25519 signer, once per key whatever its
    names (a signer's ML-DSA-44 statement key identifies no one by itself: it is left out)."""
    return tuple(sorted({key_label(k) for k in public_keys(verified)}))


def check_statement(data: bytes, origin: str) -> CheckedStatement:
    """Parse a signed statement for ``origin``, validate its body, verify its signatures."""
    signed = parse_statement(data, origin=origin)
    parse_body(signed.statement.type, signed.statement.v, signed.statement.body)
    return CheckedStatement(signed, verified_signers(signed))
