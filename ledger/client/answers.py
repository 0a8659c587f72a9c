"""The answer types of :class:`~ledger.client.json_api.LedgerClient`, and the readers of JSON
answer fields.

What an answer holds is either **verified** here or **taken on the server's word**, and every
answer says which:

- per-entry answers (:class:`VerifiedEntry`, :class:`VerifiedReceipt`, :class:`VerifiedHead`)
  are always verified: a checkpoint signed with the pinned log key, an inclusion or consistency
  proof, the entry's own bytes;
- answers about the log's derived state — the precedent, a subject, which offer version is in
  force, whether a listing left an entry out — carry a :class:`Provenance`: ``verified`` when
  they were computed here from the local verified replica
  (:class:`~ledger.client.replica.VerifiedReplica`), else labelled ``UNVERIFIED``;
- what cannot be verified at all (``/llms.txt``, ``/healthz``) comes as :class:`Unverified`.

Building an answer verifies nothing: the client does, then builds it. The field readers
(:func:`b64_field`, :func:`hashes_field`, :func:`int_field`, :func:`int_text_field`,
:func:`object_field`) check the shape of one field of a server's JSON answer and raise
:class:`~ledger.errors.MalformedError`, naming ``what`` was being read, when it is not what it
should be.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from ledger.errors import LedgerError, MalformedError, VerificationError
from ledger.protocol.audit import render_precedent_text
from ledger.protocol.terms import OfferTerms
from ledger.statements.entry import LogEntry
from ledger.statements.statement import Statement, sign_statement
from ledger.tlog.checkpoint import Checkpoint
from ledger.tlog.note import Signer, excerpt

T = TypeVar("T")


class SplitViewError(VerificationError):
    """The server showed two checkpoints that no consistency proof reconciles.

    ``evidence`` holds both signed notes: together they prove the log forked (or lied).
    """

    def __init__(self, message: str, evidence: tuple[bytes, bytes]) -> None:
        super().__init__(message)
        self.evidence = evidence


class NotFoundError(LedgerError):
    """What was asked for is not in the log, as the local verified replica shows it at a
    checkpoint it verified (a subject no application names, no offer in force): a verified
    absence, unlike a server's 404 (:class:`~ledger.client.source.RemoteError`)."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Whether an answer's content was verified here, and how far the local replica got.

    ``verified`` is True only when the content was computed here from entries this process
    verified against the pinned log key (the local replica, or a replay of the log); False when
    it was taken on the server's word (its checkpoint was verified, its content was not).
    ``size`` is the tree size the answer is at; ``replica_size`` the number of entries the local
    replica has verified; ``catching_up`` whether it is verifying more in the background.
    ``how`` says in words what was checked; :attr:`label` is the line to show a reader.
    """

    verified: bool
    size: int
    replica_size: int
    how: str
    catching_up: bool = False

    @classmethod
    def replica(cls, size: int) -> Provenance:
        """Computed from the local replica, which has verified all ``size`` entries."""
        return cls(
            True,
            size,
            size,
            f"computed here from the local replica, which verified all {size} entries up to "
            "this checkpoint (statements, signatures, hash chain, protocol) against the pinned "
            "log key",
        )

    @classmethod
    def replayed(cls, size: int, replica_size: int) -> Provenance:
        """Computed by replaying and verifying the first ``size`` entries here."""
        return cls(
            True,
            size,
            replica_size,
            f"recomputed here by replaying and verifying entries 0 to {size - 1} against the "
            "pinned log key",
        )

    @classmethod
    def server(
        cls,
        size: int,
        replica_size: int,
        catching_up: bool,
        *,
        checked: str | None = None,
        checked_so_far: int | None = None,
    ) -> Provenance:
        """Taken on the server's word at a verified checkpoint of ``size`` entries; ``checked``
        says what of it was nevertheless verified, if anything; ``checked_so_far`` how far a
        run under way has got."""
        how = (
            f"taken on the server's word; the local replica has verified {replica_size} of "
            f"{size} entries"
        )
        if catching_up:
            how += " and is verifying the rest in the background"
            if checked_so_far is not None and checked_so_far > replica_size:
                how += f" ({checked_so_far} checked so far)"
        how += (
            "; only the checkpoint's signature and consistency were checked"
            if checked is None
            else f"; checked here: {checked}"
        )
        return cls(False, size, replica_size, how, catching_up)

    @property
    def label(self) -> str:
        """``verified: …`` or ``UNVERIFIED: …``: one line a reader cannot mistake."""
        return ("verified: " if self.verified else "UNVERIFIED: ") + self.how


@dataclass(frozen=True, slots=True)
class Unverified(Generic[T]):
    """Something only the server vouches for, which nothing here can check (``/llms.txt``,
    ``/healthz``): ``value`` as the server sent it."""

    value: T
    what: str
    verified: Literal[False] = False

    @property
    def label(self) -> str:
        """The ``UNVERIFIED: …`` line to show with it."""
        return f"UNVERIFIED: {self.what}, as the server sent it; nothing in it can be checked"


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
    """A version of the terms. ``terms``, ``version``, ``kind`` and ``changes`` are always read
    from the signed entry that published it (``entry``, whose inclusion was verified);
    ``in_force`` and ``withdrawn_by`` are derived state, verified only when ``provenance`` says
    so (else they are the server's word: it could show a superseded version as in force)."""

    version: int
    kind: str
    in_force: bool
    withdrawn_by: int | None
    changes: str | None
    terms: OfferTerms
    entry: VerifiedEntry
    provenance: Provenance

    @property
    def verified(self) -> bool:
        """Whether the in-force status and withdrawal were verified too."""
        return self.provenance.verified


@dataclass(frozen=True, slots=True)
class OfferHistory:
    """Every version, oldest first (each as :class:`VerifiedOffer`), and what changed between
    consecutive versions, computed here from their signed terms (see
    :func:`ledger.client.views.terms_changes`). Which versions exist and which is in force is
    derived state: verified when ``provenance`` says so."""

    head: VerifiedHead
    versions: tuple[VerifiedOffer, ...]
    in_force_version: int | None
    diffs: tuple[dict[str, Any], ...]
    provenance: Provenance

    @property
    def verified(self) -> bool:
        """Whether the list of versions and their status were verified."""
        return self.provenance.verified


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of entries, each verified (inclusion in ``head``, and matching the query's
    filters); ``next_after`` is the cursor of the next page, if any.

    ``complete`` is True when the local replica confirmed that no entry matching the query was
    left out between the cursor and the page's end (possible for the ``statement_type``,
    ``since_ms`` and ``until_ms`` filters); False means the server's word: a filtered listing
    can omit entries without any proof failing.
    """

    head: VerifiedHead
    entries: tuple[VerifiedEntry, ...]
    next_after: int | None
    complete: bool


@dataclass(frozen=True, slots=True)
class SubjectAnswer:
    """A subject's standing, binding terms and timeline (``view``, the shape of the service's
    ``SubjectView``) at ``head``: computed from the local replica when ``provenance`` is
    verified, else the server's JSON."""

    head: VerifiedHead
    view: dict[str, Any]
    provenance: Provenance

    @property
    def verified(self) -> bool:
        """Whether ``view`` was computed from the verified replica."""
        return self.provenance.verified


@dataclass(frozen=True, slots=True)
class PrecedentAnswer:
    """A precedent report at ``head``: computed here (``provenance`` verified: from the local
    replica, or by replaying the log) or the server's (labelled unverified). ``recomputed`` is
    True when the server's report was also fetched and found identical to the local one."""

    head: VerifiedHead
    report: dict[str, Any]
    provenance: Provenance
    recomputed: bool = False

    @property
    def verified(self) -> bool:
        """Whether the report was computed from verified entries."""
        return self.provenance.verified

    def text(self) -> str:
        """The report rendered locally as plain text (never the server's rendering)."""
        return render_precedent_text(self.report)


@dataclass(frozen=True, slots=True)
class PrecedentSummary:
    """The precedent in brief at ``head`` (the shape of the service's ``PrecedentSummary``
    without its checkpoint): each commitment's verdict, the first applicant, totals."""

    head: VerifiedHead
    summary: dict[str, Any]
    provenance: Provenance

    @property
    def verified(self) -> bool:
        """Whether the summary was computed from the verified replica."""
        return self.provenance.verified


@dataclass(frozen=True, slots=True)
class SubmissionRefused:
    """A statement of a batch the server refused: its position in the batch, the HTTP status
    its problem document carries, and the problem's detail."""

    position: int
    status: int
    detail: str


@dataclass(frozen=True, slots=True)
class PrecedentPage:
    """A page of the precedent report's ``applications`` or ``subjects`` at ``head``.

    ``items`` are in ascending entry index (application index, subject id), all after the
    cursor asked for and inside the head; from the local replica when ``provenance`` is
    verified, else the server's JSON, each item checked against the report's item schema and
    order but otherwise on the server's word. ``next_cursor`` (the last item's entry index, as
    a string) reads the next page; None on the last page. ``total`` is the number of items in
    the whole list at ``head``.
    """

    head: VerifiedHead
    audit_time_ms: int
    items: tuple[dict[str, Any], ...]
    total: int
    next_cursor: str | None
    provenance: Provenance

    @property
    def verified(self) -> bool:
        """Whether the items were computed from the verified replica."""
        return self.provenance.verified


@dataclass(frozen=True, slots=True)
class PreparedApplication:
    """An unsigned application statement, checked against what was asked and ``offer`` (the
    offer in force: verified as such when ``offer.provenance`` says so)."""

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
