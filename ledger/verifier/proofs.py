"""Offline proofs of one entry: a C2SP ``tlog-proof`` file that tells the whole story.

:func:`entry_proof` builds the file from any :class:`~ledger.verifier.sources.LogSource`: the inclusion
proof is computed from the source's hash tiles, and the file's ``extra`` field carries the
**entry itself** — the leaf data, whose ``statement`` field is the signed statement verbatim —
so that a decision (or any statement) and the proof that the log holds it travel as one file.

:func:`verify_entry_proof` needs nothing but that file and the log's key. ``extra`` is
unauthenticated in tlog-proof, so it is never trusted as such: it is the leaf whose hash the
inclusion proof must bind to the signed root, which authenticates it completely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.errors import LedgerError, MalformedError, RefusedError, VerificationError
from ledger.statements.entry import LogEntry
from ledger.statements.statement import Statement, parse_statement, verified_signers
from ledger.tlog.checkpoint import Checkpoint, LogKey, Policy, open_checkpoint
from ledger.tlog.merkle import inclusion_proof, leaf_hash, verify_inclusion
from ledger.tlog.tiles import (
    ENTRIES_LEVEL,
    TILE_WIDTH,
    TileID,
    TileNodeReader,
    decode_bundle,
    tile_width_at,
)
from ledger.tlog.tlogproof import TlogProof, format_tlog_proof, open_tlog_proof, parse_tlog_proof
from ledger.verifier.sources import LogSource, tile_reader


def entry_proof(
    source: LogSource, log_key: LogKey, index: int, *, include_entry: bool = True
) -> bytes:
    """A tlog-proof file for entry ``index`` against the checkpoint ``source`` serves now.

    Steps: (1) open the checkpoint under ``log_key``; (2) fetch the entry from its bundle;
    (3) compute the inclusion proof from the source's tiles; (4) check the proof against the
    checkpoint, so that a bad source never yields a file that fails later. With
    ``include_entry`` (the default) the entry is the file's ``extra`` data.
    Raises :class:`~ledger.errors.LedgerError` subclasses naming what failed.
    """
    note = source.checkpoint()
    checkpoint = open_checkpoint(note, log_key)
    size = checkpoint.size
    if not 0 <= index < size:
        raise RefusedError(f"couldn't prove entry {index}: the log has {size} entries")
    bundle = index // TILE_WIDTH
    width = tile_width_at(ENTRIES_LEVEL, bundle, size)
    entries = decode_bundle(source.tile(TileID(ENTRIES_LEVEL, bundle, width)), expected_count=width)
    entry = entries[index % TILE_WIDTH]
    proof = inclusion_proof(index, size, TileNodeReader(tile_reader(source, size), size))
    verify_inclusion(index, size, leaf_hash(entry), proof, checkpoint.root_hash)
    return format_tlog_proof(TlogProof(index, tuple(proof), note, entry if include_entry else b""))


@dataclass(frozen=True, slots=True)
class ProvenEntry:
    """An entry proven to be in a log at a signed checkpoint, with its statement's verified
    signers (the listed signers whose signature lines verify; authority against the keyset in
    force is a matter for the full log)."""

    checkpoint: Checkpoint
    entry: LogEntry
    statement: Statement
    verified_signers: frozenset[str]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "ok": True,
            "origin": self.checkpoint.origin,
            "checkpoint_size": self.checkpoint.size,
            "index": self.entry.index,
            "log_time_ms": self.entry.log_time_ms,
            "statement_id": self.statement.statement_id.hex(),
            "type": self.statement.type,
            "time_ms": self.statement.time_ms,
            "signers": list(self.statement.signers),
            "verified_signers": sorted(self.verified_signers),
            "body": self.statement.body,
        }


def verify_entry_proof(
    data: bytes,
    trust: LogKey | Policy,
    *,
    entry: bytes | None = None,
    statement: bytes | None = None,
) -> ProvenEntry:
    """Verify a tlog-proof file for an amnesty log entry, offline.

    ``entry`` is the leaf data when the file carries none in ``extra``; ``statement``, if given,
    must be exactly the statement the proven entry holds. ``trust`` is the log's key, or a
    tlog-policy whose witness quorum the checkpoint must also meet.

    Steps: (1) parse the file; (2) take the entry from ``extra`` (or ``entry``); (3) verify the
    checkpoint's signature(s) and the inclusion of the entry's leaf hash; (4) the entry decodes
    and is entry ``index``; (5) its statement parses for the checkpoint's origin and its
    listed signers' signatures verify; (6) it is byte for byte ``statement``, when given.
    Raises :class:`~ledger.errors.VerificationError` (or a subclass) saying which step failed.
    """
    # Step 1.
    proof = parse_tlog_proof(data)
    # Step 2.
    leaf_data = proof.extra or entry
    if leaf_data is None:
        raise MalformedError(
            f"couldn't verify the proof of entry {proof.index}: the file carries no entry "
            "(extra) and none was given"
        )
    if proof.extra and entry is not None and entry != proof.extra:
        raise VerificationError(
            f"couldn't verify the proof of entry {proof.index}: the given entry is not the one "
            "the file carries"
        )
    # Step 3.
    checkpoint = open_tlog_proof(proof, leaf_hash(leaf_data), trust)
    # Steps 4-5.
    try:
        decoded = LogEntry.decode(leaf_data)
        if decoded.index != proof.index:
            raise VerificationError(f"the entry says it is entry {decoded.index}")
        signed = parse_statement(decoded.statement.encode("utf-8"), origin=checkpoint.origin)
        verified = verified_signers(signed)
    except LedgerError as exc:
        raise VerificationError(
            f"couldn't verify entry {proof.index} of {checkpoint.origin}: {exc}"
        ) from exc
    # Step 6.
    if statement is not None and statement != decoded.statement.encode("utf-8"):
        raise VerificationError(
            f"couldn't verify the statement against entry {proof.index}: the entry holds "
            f"statement {signed.statement.statement_id.hex()}, which is not the given one"
        )
    return ProvenEntry(checkpoint, decoded, signed.statement, verified)
