"""A read-only view of a stored log: checkpoints, tiles, bundles and proofs.

Everything a reader can be served is derived here from the store's tiles and entries and the
log's signed checkpoints, and is checked against the log's key on the way: the view never hands
out a checkpoint whose signature does not verify.

Tiles follow C2SP tlog-tiles: a partial tile ``.p/W`` is served only where a checkpoint this log
signed implies it (the spec requires serving those), and a full tile only once the latest
checkpoint covers it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.errors import LedgerError, MalformedError
from ledger.storage.base import LogIdentity, LogStore
from ledger.tlog.checkpoint import Checkpoint, LogKeys, open_checkpoint
from ledger.tlog.merkle import consistency_proof, inclusion_proof, leaf_hash
from ledger.tlog.note import VerifierKey, format_note, parse_note, parse_signature_line
from ledger.tlog.tiles import (
    ENTRIES_LEVEL,
    TILE_WIDTH,
    TileCache,
    TileID,
    TileNodeReader,
    encode_bundle,
)
from ledger.tlog.tlogproof import TlogProof, format_tlog_proof


class NotFoundError(LedgerError):
    """The requested resource does not exist in this log (yet)."""


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint note and its parsed, verified body."""

    note: bytes
    checkpoint: Checkpoint

    @property
    def size(self) -> int:
        """The tree size it commits to."""
        return self.checkpoint.size


class LogView:
    """Reads one log from a :class:`~ledger.storage.base.LogStore`, verifying what it serves."""

    def __init__(self, store: LogStore, *, cached_tiles: int = 4096) -> None:
        self.store = store
        self.identity: LogIdentity = store.identity()
        self.log_key = VerifierKey.parse(self.identity.log_vkey)
        # Every key the log was created with (Ed25519, and ML-DSA-44 for a hybrid log), for
        # what the log publishes and for verifiers pinning the database's own keys.
        self.log_keys = LogKeys(
            self.log_key,
            VerifierKey.parse(self.identity.mldsa_vkey) if self.identity.mldsa_vkey else None,
        )
        # Tiles are immutable (full) or prefix-stable (partial), so one cache serves every tree
        # size; TileCache is not thread-safe, hence the lock around its users. 4,096 tiles (about
        # 40 KB each with their inner levels hashed) keep every level-0 tile of a log of a million
        # entries warm.
        self._tiles = TileCache(cached_tiles)
        self._tiles_lock = threading.Lock()
        self._latest: SignedCheckpoint | None = None
        self._opened: dict[bytes, SignedCheckpoint] = {}

    @property
    def origin(self) -> str:
        """The log's origin line."""
        return self.identity.origin

    def checkpoint(self) -> bytes:
        """The latest checkpoint note as stored (a :class:`~ledger.verifier.sources.LogSource` method)."""
        return self.store.checkpoint()

    def latest(self) -> SignedCheckpoint:
        """The latest checkpoint, its log signature verified (once per distinct note)."""
        note = self.store.checkpoint()
        cached = self._latest
        if cached is not None and cached.note == note:
            return cached
        signed = SignedCheckpoint(note, open_checkpoint(note, self.log_key))
        self._latest = signed
        return signed

    def witnessed(self, signed: SignedCheckpoint) -> bytes:
        """The checkpoint note with every witness cosignature kept for its size merged in.

        The text is unchanged, so the log signature and every proof against the checkpoint stay
        valid; readers that do not know a witness ignore its line (signed-note).
        """
        lines = self.store.cosignatures(signed.size)
        if not lines:
            return signed.note
        note = parse_note(signed.note)
        for line in lines:
            note = note.with_signature(parse_signature_line(line))
        return format_note(note)

    def open(self, note: bytes) -> SignedCheckpoint:
        """Verify a checkpoint note of this log (cached: receipts of one batch share one)."""
        with self._tiles_lock:
            cached = self._opened.get(note)
        if cached is not None:
            return cached
        signed = SignedCheckpoint(note, open_checkpoint(note, self.log_key))
        with self._tiles_lock:
            self._opened[note] = signed
            while len(self._opened) > 64:
                self._opened.pop(next(iter(self._opened)))
        return signed

    def checkpoint_at(self, size: int) -> SignedCheckpoint:
        """The checkpoint this log signed at exactly ``size``."""
        note = self.store.checkpoint_at(size)
        if note is None:
            raise NotFoundError(f"couldn't find a checkpoint of size {size}")
        return SignedCheckpoint(note, open_checkpoint(note, self.log_key))

    def remember_tiles(self, tiles: Sequence[tuple[TileID, bytes]]) -> None:
        """Keep hash tiles a batch just committed (the sequencer's ``on_commit``), so proofs
        against the new checkpoint — every receipt of the batch — read no tile from the store.

        Only committed tiles may come here: the cache serves any later tree size from a
        partial tile as a prefix, which holds only for bytes that are durably in the log.
        """
        with self._tiles_lock:
            for tile, data in tiles:
                if tile.level >= 0:
                    self._tiles.add(tile, data)

    def node_reader(self, size: int) -> TileNodeReader:
        """A Merkle node reader over the stored tiles for the tree of ``size`` entries.

        It shares this view's tile cache: use it only while holding ``tiles_lock``.
        """
        return TileNodeReader(self.store.read_tile, size, self._tiles)

    @property
    def tiles_lock(self) -> threading.Lock:
        """Held while a node reader of this view is in use."""
        return self._tiles_lock

    # -- tiles ----------------------------------------------------------------------------------

    def tile(self, tile: TileID) -> bytes:
        """The bytes of a hash tile or entry bundle, if this log serves it; else NotFoundError."""
        size = self.latest().size
        level = 0 if tile.level == ENTRIES_LEVEL else tile.level
        span = TILE_WIDTH ** (level + 1)  # leaves under one full tile at this level
        start = tile.index * span
        if tile.width == TILE_WIDTH:
            if size < start + span:
                raise NotFoundError(f"couldn't find {tile.path()}: the tree has {size} entries")
        else:
            # Tree sizes whose right-edge tile at this level is exactly this partial tile.
            low = start + tile.width * TILE_WIDTH**level
            high = low + TILE_WIDTH**level
            if not self._checkpoint_in(low, min(high, size + 1)):
                raise NotFoundError(
                    f"couldn't find {tile.path()}: no checkpoint of this log implies it"
                )
        if tile.level == ENTRIES_LEVEL:
            first = tile.index * TILE_WIDTH
            entries = self.store.read_entries(first, first + tile.width)
            if len(entries) != tile.width:
                raise NotFoundError(f"couldn't find {tile.path()}: entries are missing")
            return encode_bundle(entries)
        stored = self.store.read_tile(tile.level, tile.index)
        needed = tile.width * 32
        if len(stored) < needed:
            raise NotFoundError(f"couldn't find {tile.path()}: the stored tile is shorter")
        return stored[:needed]

    def _checkpoint_in(self, low: int, high: int) -> bool:
        """Whether this log signed a checkpoint with ``low <= size < high``."""
        return high > low and self.store.has_checkpoint_between(low, high)

    # -- entries and proofs -------------------------------------------------------------------

    def entry(self, index: int, size: int | None = None) -> bytes:
        """The leaf data of entry ``index`` (which must be below ``size``, default latest)."""
        limit = self.latest().size if size is None else size
        if not 0 <= index < limit:
            raise NotFoundError(f"couldn't find entry {index}: the tree has {limit} entries")
        data = self.store.read_entries(index, index + 1)
        if not data:
            raise NotFoundError(f"couldn't find entry {index}")
        return data[0]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        self._check_size(size)
        return self._inclusion_proof(index, size)

    def _inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The proof, for a ``size`` already known to be one this log has reached."""
        if not 0 <= index < size:
            raise MalformedError(
                f"couldn't prove inclusion: index {index} is not below size {size}"
            )
        with self._tiles_lock:
            return inclusion_proof(index, size, self.node_reader(size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof between trees of ``size1`` and ``size2`` entries."""
        self._check_size(size2)
        if not 0 <= size1 <= size2:
            raise MalformedError(
                f"couldn't prove consistency: need 0 <= from ({size1}) <= to ({size2})"
            )
        with self._tiles_lock:
            return consistency_proof(size1, size2, self.node_reader(size2))

    def tlog_proof(
        self,
        index: int,
        checkpoint: SignedCheckpoint | None = None,
        *,
        with_cosignatures: bool = True,
    ) -> bytes:
        """A C2SP ``tlog-proof`` file for entry ``index`` against ``checkpoint`` (default latest),
        carrying the witness cosignatures kept for it unless ``with_cosignatures`` is false (a
        receipt for a checkpoint just signed: witnesses have not been asked yet).

        A given ``checkpoint`` is a :class:`SignedCheckpoint`, whose log signature was verified:
        this log signed that size, so its tiles exist and no other check of the size is needed.
        """
        signed = checkpoint if checkpoint is not None else self.latest()
        proof = self._inclusion_proof(index, signed.size)
        note = self.witnessed(signed) if with_cosignatures else signed.note
        return format_tlog_proof(TlogProof(index=index, hashes=tuple(proof), checkpoint=note))

    def leaf_hash(self, index: int) -> bytes:
        """The RFC 6962 leaf hash of entry ``index``."""
        return leaf_hash(self.entry(index))

    def _check_size(self, size: int) -> None:
        known = self._latest
        if known is not None and size <= known.size:
            return  # the log only grows: a size it has signed stays valid
        latest = self.latest().size
        if size > latest:
            raise NotFoundError(f"couldn't use tree size {size}: the log has {latest} entries")
