"""How a verification fails: the one exception every verifier step raises, and its split-view kind.

Contract: every verifier check that fails, and every resource the verifier cannot fetch from
its source, raises :class:`VerificationFailure`, naming the first bad entry and the resource at
fault when it knows them. :class:`SplitViewError` is the one failure that comes with evidence
(:class:`~ledger.verifier.evidence.SplitView`) that a third party can check with the log's key.
"""

from __future__ import annotations

from ledger.errors import VerificationError
from ledger.verifier.evidence import SplitView


class VerificationFailure(VerificationError):
    """The log failed verification.

    ``index`` names the first bad entry when there is one; ``where`` the resource at fault (a
    tile or bundle path, ``checkpoint``, or ``consistency proof``).
    """

    def __init__(self, message: str, *, index: int | None = None, where: str | None = None):
        super().__init__(message)
        self.index = index
        self.where = where


class SplitViewError(VerificationFailure):
    """The source's checkpoint contradicts the trusted one; ``evidence`` proves it."""

    def __init__(self, message: str, evidence: SplitView) -> None:
        super().__init__(message, where="checkpoint")
        self.evidence = evidence
