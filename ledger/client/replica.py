"""The verified replica: replay a log from its tiles up to a verified head and recompute the
precedent report.

:func:`recompute_precedent` trusts only the :class:`~ledger.client.answers.VerifiedHead` it is
given (already verified against the pinned log key): every entry it reads from the source is
checked against that head's root, the hash chain, the statements' signatures, authority and
admission (:class:`~ledger.verifier.replay.ReplayCheck`) before the report is computed. A
source that serves anything else raises :class:`~ledger.errors.VerificationError` (or
:class:`~ledger.errors.ProofError` when the entries do not hash to the head's root).
"""

from __future__ import annotations

import base64
from typing import Any, Protocol

from ledger.client.answers import VerifiedHead
from ledger.errors import ProofError, VerificationError
from ledger.protocol.audit import precedent_report
from ledger.statements.entry import LogEntry
from ledger.tlog.merkle import CompactRange, leaf_hash
from ledger.tlog.tiles import ENTRIES_LEVEL, TILE_WIDTH, TileID, decode_bundle
from ledger.verifier.replay import ReplayCheck


class TileSource(Protocol):
    """What the replica reads: entry bundles by tile (any verifier ``LogSource``, e.g.
    :class:`~ledger.client.source.HttpLogSource`, is one). May raise any LedgerError."""

    def tile(self, tile: TileID) -> bytes:
        """The bytes of a hash tile or entry bundle."""


def recompute_precedent(
    source: TileSource, origin: str, head: VerifiedHead, audit_time_ms: int
) -> dict[str, Any]:
    """Replay entries ``[0, head.size)`` of the log ``origin`` from ``source``'s entry bundles,
    verifying each (leaf hashes against ``head``'s root, hash chain, statement signatures,
    authority, admission), and compute the precedent report at ``audit_time_ms``. Bundles are
    read at the width ``head``'s checkpoint serves."""
    check = ReplayCheck(origin)
    tree = CompactRange()
    served = head.checkpoint.size
    for bundle in range((head.size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, served - bundle * TILE_WIDTH)
        datas = decode_bundle(
            source.tile(TileID(ENTRIES_LEVEL, bundle, width)), expected_count=width
        )
        for offset, data in enumerate(datas):
            index = bundle * TILE_WIDTH + offset
            if index >= head.size:
                break
            entry = LogEntry.decode(data)
            if entry.index != index or entry.prev != tree.root():
                raise VerificationError(
                    f"couldn't replay entry {index}: its index or prev breaks the chain"
                )
            leaf = leaf_hash(data)
            check(entry, leaf)
            tree.append(leaf)
    if tree.root() != head.root_hash:
        raise ProofError(
            f"couldn't replay the log: {head.size} entries hash to {tree.root().hex()}, "
            f"the verified head says {head.root_hash.hex()}"
        )
    return precedent_report(
        check.state,
        checkpoint={
            "origin": origin,
            "size": head.size,
            "root_hash_b64": base64.b64encode(head.root_hash).decode(),
        },
        audit_time_ms=audit_time_ms,
    )
