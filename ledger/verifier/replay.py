"""The verifier's per-entry check: the admission rules of the log, replayed entry by entry.

:class:`ReplayCheck` parses each entry's statement as the writing server did, checks its
signatures cryptographically again and replays the protocol with admission, so a log that
contains a statement its rules would have refused fails verification at that entry.
"""

from __future__ import annotations

from collections import Counter

from ledger.protocol.state import ProtocolState
from ledger.statements.entry import LogEntry
from ledger.statements.logged import check_statement, logged_statement


class ReplayCheck:
    """The verifier's per-entry check: statement format, signatures, authority, protocol replay.

    Call it with each entry in order (``ledger.verifier.verify.verify_log`` does); it raises a
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
