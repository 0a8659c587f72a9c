"""The one error root of amnesty-ledger and its families.

Every error the core raises derives from :class:`LedgerError`, so an adapter (the CLI, the API)
catches one type, once, and turns it into an exit code or an RFC 9457 problem document.

Messages follow "couldn't <verb> <thing>: <cause>" and carry the offending values, so that a
reader of a log line or a problem document can act on it without a debugger.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error raised by the ledger core."""


class MalformedError(LedgerError, ValueError):
    """Input does not parse as the format it claims to be (a note, a vkey, a proof, JSON...)."""


class VerificationError(LedgerError):
    """Input parsed, but a cryptographic check failed: a signature, a proof, a root, a chain link."""


class SignatureError(VerificationError):
    """A signature did not verify, or not enough distinct authorised keys signed."""


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof did not verify."""


class RefusedError(LedgerError):
    """Well-formed and correctly signed, but not admissible here.

    Examples: a statement for another log's origin, a decision answering no open application,
    a keyset rotation not signed by the outgoing keyset's threshold.
    """


class AuthorityError(RefusedError):
    """Refused because the statement is not signed by whoever may make it: fewer than the
    keyset's threshold of members, or not the subject's (or applicant's, or new) key. The
    service answers it 403, as a bad signature; it is a :class:`RefusedError` for everyone
    else."""


class DuplicateError(RefusedError):
    """The statement is already in the log; ``index`` says where."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class StorageError(LedgerError):
    """The store could not complete an operation (I/O, lost race, missing log)."""


class ConflictError(StorageError):
    """A compare-and-swap on the checkpoint lost: another writer advanced the log first."""


class FatalError(LedgerError):
    """The log's state cannot be trusted (a clock that went backwards, stored state that does not
    match the signed checkpoint). The process must refuse to go on rather than guess."""
