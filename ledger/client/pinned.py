"""Verification against a pinned log key: checkpoints, tree heads, entries, offers, tlog-proofs.

A :class:`PinnedLog` holds the log's vkey (the only trust) and the largest checkpoint it has
verified so far. It reads the JSON objects of the service's answers (``TreeHead``, ``EntryView``,
``OfferView``; see ``api.wire``) and returns them only once verified, as
:mod:`ledger.client.answers` types. It does no I/O of its own: the consistency proof that
reconciles a new checkpoint with the trusted one is fetched through the ``consistency``
callable it is given. Verification failures raise :class:`~ledger.errors.VerificationError` (or
a subclass: :class:`~ledger.errors.ProofError`, :class:`~ledger.errors.SignatureError`,
:class:`~ledger.client.answers.SplitViewError`), malformed answers
:class:`~ledger.errors.MalformedError`. Not thread-safe.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from ledger.client.answers import (
    Provenance,
    SplitViewError,
    VerifiedEntry,
    VerifiedHead,
    VerifiedOffer,
    b64_field,
    hashes_field,
    int_field,
    object_field,
)
from ledger.errors import MalformedError, ProofError, SignatureError, VerificationError
from ledger.protocol.records import LogKeyRecord
from ledger.protocol.terms import OfferTerms
from ledger.statements.entry import LogEntry
from ledger.statements.statement import parse_statement, verified_signers
from ledger.tlog.checkpoint import Checkpoint, LogKey, open_checkpoint
from ledger.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof
from ledger.verifier.log_keys import checkpoint_size, keys_at, learned_keys, open_checkpoint_at

ConsistencyFetcher = Callable[[int, int], Sequence[bytes]]
"""``fetch(old_size, new_size)``: the hashes of a consistency proof between two tree sizes, as
the server gives them (unverified; the caller checks them). May raise any LedgerError."""


class PinnedLog:
    """The pinned log key and the trusted checkpoint, and everything verified against them.

    ``trusted_checkpoint`` (a checkpoint note verified on a previous run) starts the trust;
    without it the first checkpoint accepted becomes trusted. ``consistency`` fetches the
    consistency proofs :meth:`accept_checkpoint` needs.
    """

    def __init__(
        self,
        log_key: LogKey,
        consistency: ConsistencyFetcher,
        *,
        trusted_checkpoint: bytes | None = None,
    ) -> None:
        self.log_key = log_key
        self.origin = log_key.name
        self._consistency = consistency
        self.anchored: LogKeyRecord | None = None
        """The log's ML-DSA-44 key and the entry that added it, once the verified replica's
        history holds that entry (:meth:`learn`): checkpoints beyond it must carry its
        signature too, under the pinned policy (:mod:`ledger.verifier.log_keys`)."""
        self.trusted: Checkpoint | None = None
        self.trusted_note: bytes | None = None
        if trusted_checkpoint is not None:
            self.trusted = open_checkpoint(trusted_checkpoint, log_key)
            self.trusted_note = trusted_checkpoint

    def learn(self, anchored: LogKeyRecord | None) -> None:
        """Adopt the ML-DSA-44 key the verified history anchored (``None``: none yet); from
        now on a checkpoint that includes its entry must verify under it too. Raises
        :class:`SignatureError` if the pinned keys name another ML-DSA-44 key."""
        if anchored is not None:
            learned_keys(self.log_key, anchored)  # the pin and the history agree
        self.anchored = anchored

    def _open(self, note: bytes) -> Checkpoint:
        """Open a checkpoint note under the keys in force at its size (:meth:`learn`)."""
        return open_checkpoint_at(note, self.log_key, self.anchored)

    def accept_checkpoint(self, note: bytes) -> Checkpoint:
        """Verify a checkpoint note with the pinned key and against the trusted checkpoint.

        Steps: (1) signature and origin — under the log's ML-DSA-44 key too once the verified
        history added it and the checkpoint includes that entry; (2) if it is newer than the trusted checkpoint, a
        consistency proof from the trusted size, and it becomes trusted; if older, a
        consistency proof to the trusted size; if the same size, the same root. Raises
        :class:`SplitViewError` when the two cannot be reconciled.
        """
        checkpoint = self._open(note)
        if checkpoint.origin != self.origin:
            raise SignatureError(
                f"couldn't accept checkpoint: origin {checkpoint.origin!r} is not the pinned "
                f"log's {self.origin!r}"
            )
        trusted = self.trusted
        if trusted is None:
            self.trusted, self.trusted_note = checkpoint, note
            return checkpoint
        older, newer = (
            (trusted, checkpoint) if checkpoint.size >= trusted.size else (checkpoint, trusted)
        )
        try:
            if older.size == newer.size:
                if older.root_hash != newer.root_hash:
                    raise ProofError(
                        f"two checkpoints of size {older.size} have different roots "
                        f"{older.root_hash.hex()} and {newer.root_hash.hex()}"
                    )
            else:
                verify_consistency(
                    older.size,
                    newer.size,
                    self._consistency(older.size, newer.size),
                    older.root_hash,
                    newer.root_hash,
                )
        except ProofError as exc:
            assert self.trusted_note is not None
            raise SplitViewError(
                f"couldn't reconcile checkpoint {checkpoint.size} with the trusted checkpoint "
                f"{trusted.size}: {exc}",
                (self.trusted_note, note),
            ) from exc
        if checkpoint.size > trusted.size:
            self.trusted, self.trusted_note = checkpoint, note
        return checkpoint

    def head(self, value: object) -> VerifiedHead:
        """Verify a ``TreeHead`` object of an answer (see ``api.wire.TreeHead``)."""
        head = object_field(value, "checkpoint")
        note = head.get("checkpoint")
        if not isinstance(note, str):
            raise MalformedError("couldn't read checkpoint: the signed note is missing")
        checkpoint = self.accept_checkpoint(note.encode("utf-8"))
        size = int_field(head.get("size"), "tree head size")
        root = b64_field(head.get("root_hash"), "tree head root")
        if int_field(head.get("checkpoint_size"), "checkpoint size") != checkpoint.size:
            raise ProofError("couldn't verify tree head: checkpoint_size is not the note's size")
        if head.get("origin") != self.origin:
            raise ProofError(f"couldn't verify tree head: origin {head.get('origin')!r}")
        if size > checkpoint.size:
            raise ProofError(
                f"couldn't verify tree head: size {size} beyond its checkpoint {checkpoint.size}"
            )
        if size == checkpoint.size:
            if root != checkpoint.root_hash:
                raise ProofError(
                    f"couldn't verify tree head of size {size}: root {root.hex()} is not the "
                    f"checkpoint's {checkpoint.root_hash.hex()}"
                )
        else:
            verify_consistency(
                size,
                checkpoint.size,
                hashes_field(head.get("consistency_proof"), "consistency proof"),
                root,
                checkpoint.root_hash,
            )
        return VerifiedHead(self.origin, size, root, checkpoint, note.encode("utf-8"))

    def entry(self, value: object, head: VerifiedHead) -> VerifiedEntry:
        """Verify an ``EntryView``: inclusion in ``head``, and that its fields are the entry's."""
        view = object_field(value, "entry")
        index = int_field(view.get("index"), "entry index")
        data = b64_field(view.get("entry_b64"), f"entry {index}")
        leaf = leaf_hash(data)
        verify_inclusion(
            index,
            head.size,
            leaf,
            hashes_field(view.get("inclusion_proof"), "inclusion proof"),
            head.root_hash,
        )
        entry = LogEntry.decode(data)
        signed = parse_statement(entry.statement.encode("utf-8"), origin=self.origin)
        statement = signed.statement
        said = object_field(view.get("statement"), f"entry {index} statement")
        mismatches = [
            name
            for name, ours, theirs in (
                ("index", entry.index, index),
                ("log_time_ms", entry.log_time_ms, view.get("log_time_ms")),
                ("prev", base64.b64encode(entry.prev).decode(), view.get("prev")),
                ("leaf_hash", base64.b64encode(leaf).decode(), view.get("leaf_hash")),
                ("statement_id", statement.statement_id.hex(), said.get("statement_id")),
                ("type", statement.type, said.get("type")),
                ("signers", list(statement.signers), said.get("signers")),
                ("time_ms", statement.time_ms, said.get("time_ms")),
                ("body", statement.body, said.get("body")),
                ("note", entry.statement, said.get("note")),
            )
            if ours != theirs
        ]
        if mismatches:
            raise VerificationError(
                f"couldn't verify entry {index}: the server's {', '.join(mismatches)} differ "
                "from what the entry itself says"
            )
        return VerifiedEntry(index, data, leaf, entry, statement, verified_signers(signed), head)

    def offer(self, value: object, head: VerifiedHead, provenance: Provenance) -> VerifiedOffer:
        """Verify an ``OfferView``: its entry (see :meth:`entry`) is an offer or amendment whose
        signed terms and version are what the server says. Its ``in_force`` and
        ``withdrawn_by`` are the server's word, as ``provenance`` (the caller's) must say."""
        view = object_field(value, "offer")
        entry = self.entry(view.get("entry"), head)
        withdrawn = view.get("withdrawn_by")
        offer = offer_from_entry(
            entry,
            in_force=view.get("in_force") is True,
            withdrawn_by=None if withdrawn is None else int_field(withdrawn, "withdrawn_by"),
            provenance=provenance,
        )
        said = _terms(view.get("terms"), f"the server's terms of entry {entry.index}")
        if said != offer.terms or view.get("version") != offer.version:
            raise VerificationError(
                f"couldn't verify offer at entry {entry.index}: the server's terms or version "
                "differ from the signed statement's"
            )
        if view.get("index") != entry.index or view.get("kind") != offer.kind:
            raise VerificationError(f"couldn't verify offer at entry {entry.index}: wrong index")
        return offer

    def verify_tlog_proof(self, proof: bytes, entry: bytes) -> Checkpoint:
        """Verify a C2SP tlog-proof for ``entry`` (its leaf bytes) offline with the pinned key,
        then its checkpoint against the trusted one. Returns the proof's checkpoint."""
        parsed = parse_tlog_proof(proof)
        size = checkpoint_size(parsed.checkpoint)
        open_tlog_proof(parsed, leaf_hash(entry), keys_at(self.log_key, self.anchored, size))
        decoded = LogEntry.decode(entry)
        if decoded.index != parsed.index:
            raise ProofError(
                f"couldn't verify tlog-proof: it proves index {parsed.index}, the entry says "
                f"{decoded.index}"
            )
        return self.accept_checkpoint(parsed.checkpoint)


def offer_from_entry(
    entry: VerifiedEntry, *, in_force: bool, withdrawn_by: int | None, provenance: Provenance
) -> VerifiedOffer:
    """The version of the terms that the verified ``entry`` publishes (an offer or amendment):
    terms, version, kind and changes read from the signed statement; ``in_force`` and
    ``withdrawn_by`` as the caller established them, and says in ``provenance``."""
    statement = entry.statement
    if statement.type not in ("offer", "offer_amendment"):
        raise VerificationError(f"couldn't verify offer: entry {entry.index} is a {statement.type}")
    body = statement.body
    changes = body.get("changes")
    return VerifiedOffer(
        version=int_field(body.get("version"), "offer version"),
        kind=statement.type,
        in_force=in_force,
        withdrawn_by=withdrawn_by,
        changes=changes if isinstance(changes, str) else None,
        terms=_terms(body.get("terms"), f"the terms of entry {entry.index}"),
        entry=entry,
        provenance=provenance,
    )


def _terms(value: object, what: str) -> OfferTerms:
    """``value`` read as offer terms; :class:`MalformedError` if it is not."""
    try:
        return OfferTerms.model_validate(value)
    except ValidationError as exc:
        raise MalformedError(f"couldn't read {what}: {exc.error_count()} problem(s)") from None
