"""What may enter an amnesty log: the writing server's admission policy.

:class:`StatementPolicy` is the sequencer's :class:`~ledger.server.sequencer.EntryPolicy` for a
real log: a submission must be a signed statement for this log's origin whose body validates
against its type's schema and whose listed signers' signatures verify (``prepare``, outside any
lock), and which the protocol's admission rules accept at its place in the log (``admit``, under
the write lock, against the state replayed up to that entry). The verifier replays the same rules
with :class:`ledger.verifier.replay.ReplayCheck`; both use :mod:`ledger.statements.logged`.
"""

from __future__ import annotations

from ledger.errors import MalformedError
from ledger.protocol.state import ProtocolState
from ledger.protocol.statements import LoggedStatement
from ledger.server.sequencer import Prepared
from ledger.statements.entry import LogEntry
from ledger.statements.logged import (
    CheckedStatement,
    check_statement,
    logged_statement,
    signer_keys,
    subject_keys,
)
from ledger.statements.statement import parse_statement, present_signers


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
            signers=signer_keys(checked.verified),
            context=checked,
        )

    def catch_up(self, entry: LogEntry, leaf: bytes) -> None:
        signed = parse_statement(entry.statement.encode("utf-8"), origin=self.origin)
        logged = logged_statement(signed, present_signers(signed), entry, leaf)
        self.state.apply(logged)
        self._size = entry.index + 1

    def admit(self, prepared: Prepared, entry: LogEntry, leaf: bytes) -> object:
        checked = prepared.context
        if not isinstance(checked, CheckedStatement):
            raise MalformedError("couldn't admit a submission that StatementPolicy did not prepare")
        logged = logged_statement(checked.signed, checked.verified, entry, leaf)
        self.state.admit(logged)
        return logged

    def apply(self, admitted: object, entry: LogEntry, leaf: bytes) -> None:
        assert isinstance(admitted, LoggedStatement)
        self.state.apply(admitted)
        self._size = entry.index + 1
