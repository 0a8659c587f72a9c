"""The verified answer types of :class:`~ledger.client.json_api.LedgerClient`, and the readers of
JSON answer fields.

Each answer type holds only what the client verified (see each class for what that covers);
building one does not verify anything. The field readers (:func:`b64_field`,
:func:`hashes_field`, :func:`int_field`, :func:`int_text_field`, :func:`object_field`) check the
shape of one field of a server's JSON answer and raise :class:`~ledger.errors.MalformedError`,
naming ``what`` was being read, when it is not what it should be.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from ledger.errors import MalformedError, VerificationError
from ledger.protocol.audit import render_precedent_text
from ledger.protocol.terms import OfferTerms
from ledger.statements.entry import LogEntry
from ledger.statements.statement import Statement, sign_statement
from ledger.tlog.checkpoint import Checkpoint
from ledger.tlog.note import Signer, excerpt


class SplitViewError(VerificationError):
    """The server showed two checkpoints that no consistency proof reconciles.

    ``evidence`` holds both signed notes: together they prove the log forked (or lied).
    """

    def __init__(self, message: str, evidence: tuple[bytes, bytes]) -> None:
        super().__init__(message)
        self.evidence = evidence


@dataclass(frozen=True, slots=True)
class VerifiedHead:
    """A tree head the client has verified: ``size`` and ``root_hash``, vouched for by the log's
    signature on ``checkpoint`` (``note``), directly or by a consistency proof."""

    origin: str
    size: int
    root_hash: bytes
    checkpoint: Checkpoint
    note: bytes


@dataclass(frozen=True, slots=True)
class VerifiedEntry:
    """An entry whose inclusion in ``head`` was verified, decoded, with its statement parsed and
    the statement's signatures checked (``verified_signers``; authority is the protocol's)."""

    index: int
    data: bytes
    leaf_hash: bytes
    entry: LogEntry
    statement: Statement
    verified_signers: frozenset[str]
    head: VerifiedHead

    @property
    def note(self) -> bytes:
        """The signed statement note, as logged."""
        return self.entry.statement.encode("utf-8")


@dataclass(frozen=True, slots=True)
class VerifiedOffer:
    """A version of the terms, read from the signed entry that published it."""

    version: int
    kind: str
    in_force: bool
    withdrawn_by: int | None
    changes: str | None
    terms: OfferTerms
    entry: VerifiedEntry


@dataclass(frozen=True, slots=True)
class OfferHistory:
    """Every version, oldest first, and the server's diffs between consecutive versions."""

    head: VerifiedHead
    versions: tuple[VerifiedOffer, ...]
    in_force_version: int | None
    diffs: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of verified entries; ``next_after`` is the cursor of the next page, if any."""

    head: VerifiedHead
    entries: tuple[VerifiedEntry, ...]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class VerifiedSubject:
    """What the server says about a subject, at a verified head. ``view`` is the server's JSON
    (derived state: recompute it by replaying the log, or pass ``verify_timeline=True`` to have
    each timeline entry fetched and checked)."""

    head: VerifiedHead
    view: dict[str, Any]


@dataclass(frozen=True, slots=True)
class VerifiedPrecedent:
    """A precedent report whose checkpoint was verified; ``recomputed`` when the client replayed
    the log itself and got the same report."""

    head: VerifiedHead
    report: dict[str, Any]
    recomputed: bool

    def text(self) -> str:
        """The report rendered locally as plain text (never the server's rendering)."""
        return render_precedent_text(self.report)


@dataclass(frozen=True, slots=True)
class SubmissionRefused:
    """A statement of a batch the server refused: its position in the batch, the HTTP status
    its problem document carries, and the problem's detail."""

    position: int
    status: int
    detail: str


@dataclass(frozen=True, slots=True)
class PrecedentPage:
    """A page of the precedent report's ``applications`` or ``subjects`` at a verified head.

    ``items`` are the server's JSON, each checked against the report's item schema, in
    ascending entry index (application index, subject id), all after the cursor asked for and
    inside the head. Like the summary, they are derived state: the full report
    (:meth:`~ledger.client.json_api.LedgerClient.precedent` with ``recompute``) is what can be
    checked against the log. ``next_cursor`` (the last item's entry index, as a string) reads
    the next page; None on the last page. ``total`` is the number of items in the whole list at ``head``.
    """

    head: VerifiedHead
    audit_time_ms: int
    items: tuple[dict[str, Any], ...]
    total: int
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PreparedApplication:
    """An unsigned application statement, checked against what was asked and the offer."""

    head: VerifiedHead
    text: str
    statement: Statement
    offer: VerifiedOffer

    def sign(self, signer: Signer) -> bytes:
        """The statement signed with ``signer`` (the applicant's key), ready to submit."""
        return sign_statement(self.text.encode("utf-8"), signer)


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A submission durably logged: the entry, and a tlog-proof verified with the log's key."""

    index: int
    duplicate: bool
    data: bytes
    entry: LogEntry
    checkpoint: Checkpoint
    tlog_proof: bytes


def b64_field(text: object, what: str) -> bytes:
    """A base64 string field, decoded."""
    if not isinstance(text, str):
        raise MalformedError(f"couldn't read {what}: {text!r} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedError(f"couldn't read {what}: {excerpt(text)} is not base64") from exc


def hashes_field(values: object, what: str) -> list[bytes]:
    """A list of base64 hashes (a proof), decoded."""
    if not isinstance(values, list):
        raise MalformedError(f"couldn't read {what}: not a list")
    return [b64_field(v, what) for v in values]


def int_field(value: object, what: str) -> int:
    """An integer field (a JSON boolean is not one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedError(f"couldn't read {what}: {value!r} is not an integer")
    return value


def int_text_field(value: str, what: str) -> int:
    """A decimal integer written as text (a cursor)."""
    if not (value.isascii() and value.isdecimal()):
        raise MalformedError(f"couldn't read {what}: {excerpt(value)} is not a decimal integer")
    return int(value)


def object_field(value: object, what: str) -> dict[str, Any]:
    """A JSON object field."""
    if not isinstance(value, dict):
        raise MalformedError(f"couldn't read {what}: not a JSON object")
    return value
