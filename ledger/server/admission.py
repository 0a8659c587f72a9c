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
from ledger.protocol.stored import DerivedRow, DerivedSource, FactCache, StoredProtocolState
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
    """The sequencer's policy for an amnesty log (see the module docstring).

    With ``derived`` (the store's derived state, :mod:`ledger.protocol.stored`), the protocol
    state is a :class:`~ledger.protocol.stored.StoredProtocolState`: it starts from the stored
    flush point instead of replaying the log, holds in memory only a bounded cache and the
    current batch, hands the batch's changes to the append transaction (:meth:`derived_rows`)
    and undoes a failed batch by forgetting them (:meth:`reset`). Without it (tools, tests), the
    state is in memory and a reset replays from entry 0.
    """

    def __init__(
        self,
        origin: str,
        derived: DerivedSource | None = None,
        *,
        facts: FactCache | None = None,
        cache_records: int = 50_000,
    ) -> None:
        self.origin = origin
        self._derived = derived
        self.state: ProtocolState = (
            ProtocolState()
            if derived is None
            else StoredProtocolState(derived, 0, facts=facts, cache_records=cache_records)
        )

    @property
    def size(self) -> int:
        return self.state.size

    def reset(self) -> None:
        state = self.state
        if isinstance(state, StoredProtocolState):
            # The stored state at the flush point is exactly the committed log's: forgetting
            # the overlay undoes everything applied since, with no replay.
            state.rolled_back()
        else:
            self.state = ProtocolState()

    def advance(self, size: int) -> None:
        """Adopt the stored derived state at the largest flush point ``<= size`` if it is ahead
        of this state (another writer, or a backfill, moved the log on); in memory: nothing."""
        state = self.state
        if not isinstance(state, StoredProtocolState) or self._derived is None:
            return
        point = self._derived.flush_point(size)
        if point is not None and point > state.size:
            state.repin(point)

    def derived_rows(self) -> list[DerivedRow] | None:
        """The changes since the flush point, to commit with the batch (``None`` in memory)."""
        state = self.state
        return state.derived_rows() if isinstance(state, StoredProtocolState) else None

    def committed(self) -> None:
        """The rows of :meth:`derived_rows` were committed with the batch."""
        state = self.state
        if isinstance(state, StoredProtocolState):
            state.committed()

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
