"""What may enter an amnesty log, and the same rules replayed by a verifier.

:class:`StatementPolicy` is the sequencer's :class:`~ledger.sequencer.EntryPolicy` for a real
log: a submission must be a signed statement for this log's origin whose body validates against
its type's schema and whose listed signers' signatures verify (``prepare``, outside any lock),
and which the protocol's admission rules accept at its place in the log (``admit``, under the
write lock, against the state replayed up to that entry).

:class:`ReplayCheck` is the verifier's per-entry check: the same parsing, the signatures checked
cryptographically again, and the protocol replayed with admission, so a log that contains a
statement its rules would have refused fails verification at that entry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from ledger.entry import LogEntry
from ledger.errors import MalformedError
from ledger.protocol.state import ProtocolState
from ledger.protocol.statements import LoggedStatement, parse_body
from ledger.sequencer import Prepared
from ledger.statement import (
    SignedStatement,
    parse_statement,
    present_signers,
    verified_signers,
)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A parsed statement with its verified signers: the ``context`` of a Prepared."""

    signed: SignedStatement
    verified: frozenset[str]


def logged_statement(
    signed: SignedStatement, verified: frozenset[str], entry: LogEntry, leaf: bytes
) -> LoggedStatement:
    """The protocol's view of a statement at its place in the log."""
    statement = signed.statement
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
    )


def subject_keys(statement_type: str, body: Mapping[str, object]) -> tuple[str, ...]:
    """The strings under which an entry is indexed as concerning subjects (``Prepared.subjects``).

    State-free, from the validated body alone, so that :meth:`StatementPolicy.prepare` can fill
    it outside the write lock. Two kinds of string, which never collide:

    - the decimal index of every entry the body names that belongs to exactly one subject: a
      ``subject`` reference (a subject is named by its first application), the ``application``
      a decision or withdrawal answers, and the ``grievance`` an answer answers;
    - every subject vkey the body names: the applicant's ``vkey``, a rotation's ``new_vkey``,
      and the keys of an enforcement action's wild target.

    The read API finds a subject's entries by querying each of its application and grievance
    indexes and each of its vkeys (``api.service``). Only serves queries: the leaf is the truth.
    """
    keys: set[str] = set()
    for field_name in ("subject", "application", "grievance"):
        ref = body.get(field_name)
        if isinstance(ref, Mapping) and isinstance(ref.get("index"), int):
            keys.add(str(ref["index"]))
    for field_name in ("vkey", "new_vkey") if statement_type in _KEYED_TYPES else ():
        vkey = body.get(field_name)
        if isinstance(vkey, str):
            keys.add(vkey)
    target = body.get("target")
    if statement_type == "enforcement_action" and isinstance(target, Mapping):
        ref = target.get("subject")
        if isinstance(ref, Mapping) and isinstance(ref.get("index"), int):
            keys.add(str(ref["index"]))
        vkeys = target.get("vkeys")
        if isinstance(vkeys, list):
            keys.update(v for v in vkeys if isinstance(v, str))
    return tuple(sorted(keys))


_KEYED_TYPES = frozenset({"application", "subject_key_rotation"})


def check_statement(data: bytes, origin: str) -> _Checked:
    """Parse a signed statement for ``origin``, validate its body, verify its signatures."""
    signed = parse_statement(data, origin=origin)
    parse_body(signed.statement.type, signed.statement.v, signed.statement.body)
    return _Checked(signed, verified_signers(signed))


class StatementPolicy:
    """The sequencer's policy for an amnesty log (see the module docstring)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.state = ProtocolState()
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def reset(self) -> None:
        self.state = ProtocolState()
        self._size = 0

    def prepare(self, submission: bytes) -> Prepared:
        checked = check_statement(submission, self.origin)
        statement = checked.signed.statement
        return Prepared(
            statement=checked.signed.to_bytes().decode("utf-8"),
            statement_id=statement.statement_id,
            statement_type=statement.type,
            subjects=subject_keys(statement.type, statement.body),
            signers=tuple(sorted(checked.verified)),
            context=checked,
        )

    def catch_up(self, entry: LogEntry, leaf: bytes) -> None:
        signed = parse_statement(entry.statement.encode("utf-8"), origin=self.origin)
        logged = logged_statement(signed, present_signers(signed), entry, leaf)
        self.state.apply(logged)
        self._size = entry.index + 1

    def admit(self, prepared: Prepared, entry: LogEntry, leaf: bytes) -> object:
        checked = prepared.context
        if not isinstance(checked, _Checked):
            raise MalformedError("couldn't admit a submission that StatementPolicy did not prepare")
        logged = logged_statement(checked.signed, checked.verified, entry, leaf)
        self.state.admit(logged)
        return logged

    def apply(self, admitted: object, entry: LogEntry, leaf: bytes) -> None:
        assert isinstance(admitted, LoggedStatement)
        self.state.apply(admitted)
        self._size = entry.index + 1


class ReplayCheck:
    """The verifier's per-entry check: statement format, signatures, authority, protocol replay.

    Call it with each entry in order (``ledger.verify.verify_log`` does); it raises a
    :class:`~ledger.errors.LedgerError` naming what is wrong with the first bad entry.
    """

    def __init__(self, origin: str, *, limit: int | None = None) -> None:
        self.origin = origin
        self.limit = limit
        self.state = ProtocolState()
        self.types: Counter[str] = Counter()
        self.root_at_limit: bytes | None = None
        self.last_log_time_ms = 0

    def __call__(self, entry: LogEntry, leaf: bytes) -> None:
        if self.limit is not None and entry.index >= self.limit:
            # Replay stops at ``limit`` (an audit "as of" that size). The entry's ``prev`` is
            # the root of the first ``limit`` entries, which the verifier has just checked
            # against the chain; later entries are still checked by the verifier's tree.
            if entry.index == self.limit:
                self.root_at_limit = entry.prev
            return
        self.last_log_time_ms = entry.log_time_ms
        checked = check_statement(entry.statement.encode("utf-8"), self.origin)
        logged = logged_statement(checked.signed, checked.verified, entry, leaf)
        self.state.admit(logged)
        self.state.apply(logged)
        self.types[logged.type] += 1

    def summary(self) -> dict[str, object]:
        """Counts of statement types seen, for the verification report."""
        return {"statement_types": dict(sorted(self.types.items()))}
