"""The read side's tree heads and proofs: the latest signed checkpoint, and proofs from tiles.

- :class:`Heads` hands out the latest checkpoint, read from the store on every call, its log
  signature verified once per distinct note; a checkpoint that does not verify is fatal.
- :class:`TreeHeadInfo` is what every answer that depends on a tree size names: the size and
  root it was computed at and the signed checkpoint that vouches for them (see
  ``api.wire.TreeHead``).
- :class:`Proofs` computes inclusion and consistency proofs and historical roots from the stored
  tiles through the log view's shared, bounded tile cache (tiles are append-only, so caching
  them is safe across tree sizes).

:class:`Heads` and :class:`Proofs` are thread-safe and shared by every request of the process;
a :class:`TreeHeadInfo` is immutable.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ledger.errors import FatalError, LedgerError
from ledger.server.logview import LogView, SignedCheckpoint
from ledger.storage.base import LogStore
from ledger.tlog.checkpoint import open_checkpoint
from ledger.tlog.merkle import consistency_proof, inclusion_proof, root_at
from ledger.tlog.note import VerifierKey

# -- checkpoints ----------------------------------------------------------------------------------


class Heads:
    """The latest signed checkpoint of the store, verified with the log's key. Thread-safe.

    The store is read on every call (answers name the latest checkpoint, never a cached one);
    a note already verified is not verified again. A read that returns an older checkpoint
    than one already served (a slower concurrent read) yields the newer one.
    """

    def __init__(self, store: LogStore, log_key: VerifierKey, origin: str) -> None:
        self._store = store
        self._log_key = log_key
        self._origin = origin
        self._latest: SignedCheckpoint | None = None
        self._lock = threading.Lock()

    def latest(self) -> SignedCheckpoint:
        """The latest checkpoint; raises :class:`FatalError` if it does not verify."""
        note = self._store.checkpoint()
        cached = self._latest
        if cached is not None and cached.note == note:
            return cached
        signed = self._open(note, "the stored checkpoint")
        with self._lock:
            previous = self._latest
            if previous is not None and signed.size < previous.size:
                return previous
            self._latest = signed
            return signed

    def exactly(self, size: int) -> SignedCheckpoint | None:
        """The checkpoint this log signed at exactly ``size``, verified, if there is one."""
        note = self._store.checkpoint_at(size)
        return None if note is None else self._open(note, f"the checkpoint of size {size}")

    @property
    def last_seen(self) -> SignedCheckpoint | None:
        """The newest checkpoint this process has read (no store access)."""
        return self._latest

    def _open(self, note: bytes, what: str) -> SignedCheckpoint:
        try:
            checkpoint = open_checkpoint(note, self._log_key)
        except LedgerError as exc:
            raise FatalError(f"couldn't trust {what}: {exc}") from exc
        if checkpoint.origin != self._origin:
            raise FatalError(
                f"couldn't trust {what}: origin {checkpoint.origin!r} is not {self._origin!r}"
            )
        return SignedCheckpoint(note, checkpoint)


@dataclass(frozen=True, slots=True)
class TreeHeadInfo:
    """A tree (``size``, ``root_hash``) and the signed checkpoint vouching for it: ``signed``
    covers at least ``size`` entries and ``consistency`` proves ``size`` -> ``signed.size``.
    ``note`` is ``signed.note`` as served: with any witness cosignatures kept for it (same
    text, so the log's signature and every proof stay valid)."""

    origin: str
    size: int
    root_hash: bytes
    signed: SignedCheckpoint
    note: bytes
    consistency: tuple[bytes, ...] = ()


# -- proofs ---------------------------------------------------------------------------------------


class Proofs:
    """Inclusion and consistency proofs and roots from stored tiles, through the log view's
    shared tile cache (tiles are append-only, so one cache serves every tree size).

    Thread-safe (the view's tile lock). Callers check sizes against a checkpoint first: the
    tiles of a size beyond the latest checkpoint are not there.
    """

    def __init__(self, view: LogView) -> None:
        self._view = view

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        with self._view.tiles_lock:
            return inclusion_proof(index, size, self._view.node_reader(size))

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof from ``size1`` to ``size2`` leaves."""
        with self._view.tiles_lock:
            return consistency_proof(size1, size2, self._view.node_reader(size2))

    def root(self, size: int) -> bytes:
        """The RFC 6962 root of the first ``size`` leaves."""
        with self._view.tiles_lock:
            return root_at(size, self._view.node_reader(size))
