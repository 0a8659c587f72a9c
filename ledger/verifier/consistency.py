"""Steps 1 and 2 of a verification: the source's checkpoint, opened and tied to the trusted one.

:func:`open_source_checkpoint` (step 1) fetches the signed checkpoint and opens it: the log's
signature must verify and the origin must be the key's name. :func:`check_consistent` (step 2)
holds a new checkpoint against the one a previous run verified: it must not be older; at the
same size it must have the same root; at a larger size the consistency proof, computed from the
source's own tiles, must verify.

Contract: both return only when the check passed; otherwise they raise
:class:`~ledger.verifier.failures.VerificationFailure`, or :class:`SplitViewError` when the
source's checkpoint contradicts the trusted one and the evidence
(:class:`~ledger.verifier.evidence.SplitView`) proves it — never when the source merely serves
tiles that do not match its own checkpoint.
"""

from __future__ import annotations

from ledger.errors import LedgerError, ProofError
from ledger.protocol.records import LogKeyRecord
from ledger.tlog.checkpoint import Checkpoint, LogKey
from ledger.tlog.merkle import consistency_proof, root_at, verify_consistency
from ledger.tlog.tiles import TileNodeReader
from ledger.verifier.evidence import SplitView
from ledger.verifier.failures import SplitViewError, VerificationFailure
from ledger.verifier.log_keys import open_checkpoint_at
from ledger.verifier.sources import LogSource, tile_reader
from ledger.verifier.trust import TrustState


def open_source_checkpoint(
    source: LogSource, log_key: LogKey, anchored: LogKeyRecord | None = None
) -> tuple[bytes, Checkpoint]:
    """Step 1: the checkpoint ``source`` serves, as a note and opened with ``log_key`` — and,
    when the history verified before anchored the log's ML-DSA-44 key (``anchored``), with
    that key too (:func:`~ledger.verifier.log_keys.keys_at`)."""
    try:
        note = source.checkpoint()
    except LedgerError as exc:
        raise VerificationFailure(
            f"couldn't fetch the checkpoint: {exc}", where="checkpoint"
        ) from exc
    try:
        return note, open_checkpoint_at(note, log_key, anchored)
    except LedgerError as exc:
        raise VerificationFailure(
            f"couldn't open the checkpoint: {exc}", where="checkpoint"
        ) from exc


def check_consistent(
    source: LogSource, trusted: TrustState, note: bytes, checkpoint: Checkpoint
) -> None:
    """Step 2: raise unless ``checkpoint`` extends the trusted one."""
    old = trusted.checkpoint
    if checkpoint.size < old.size:
        raise VerificationFailure(
            f"couldn't verify the checkpoint: the source serves size {checkpoint.size}, older than "
            f"the size {old.size} verified before (a stale or rolled-back view)",
            where="checkpoint",
        )
    if checkpoint.size == old.size:
        if checkpoint.root_hash != old.root_hash:
            raise SplitViewError(
                f"couldn't verify the checkpoint: it has size {old.size} like the one verified "
                f"before, but root {checkpoint.root_hash.hex()} instead of {old.root_hash.hex()}: "
                "a split view",
                SplitView(
                    checkpoint1=trusted.checkpoint_note,
                    checkpoint2=note,
                    consistency_proof=(),
                    prefix_root=checkpoint.root_hash,
                    failed_check="equal sizes, different roots",
                ),
            )
        return
    reader = TileNodeReader(tile_reader(source, checkpoint.size), checkpoint.size)
    try:
        proof = consistency_proof(old.size, checkpoint.size, reader)
        verify_consistency(old.size, checkpoint.size, proof, old.root_hash, checkpoint.root_hash)
        return
    except VerificationFailure:
        raise
    except ProofError as exc:
        failed = str(exc)
    except LedgerError as exc:
        raise VerificationFailure(
            f"couldn't prove consistency from size {old.size} to {checkpoint.size}: {exc}",
            where="consistency proof",
        ) from exc
    # The proof fails from the trusted root. It is evidence only if it ties the source's own
    # tree of the old size to the new root; otherwise the source merely served bad tiles.
    prefix_root = root_at(old.size, reader)
    try:
        verify_consistency(old.size, checkpoint.size, proof, prefix_root, checkpoint.root_hash)
    except ProofError as exc:
        raise VerificationFailure(
            f"couldn't prove consistency from size {old.size} to {checkpoint.size}: {failed}; "
            f"the source's tiles do not match its own checkpoint either ({exc})",
            where="consistency proof",
        ) from exc
    raise SplitViewError(
        f"couldn't verify the checkpoint: the first {old.size} entries of the tree of size "
        f"{checkpoint.size} hash to {prefix_root.hex()}, but the checkpoint verified before says "
        f"{old.root_hash.hex()}: a split view",
        SplitView(
            checkpoint1=trusted.checkpoint_note,
            checkpoint2=note,
            consistency_proof=tuple(proof),
            prefix_root=prefix_root,
            failed_check=failed,
        ),
    )
