"""The verifier: re-derive a whole log from what any source serves and check every link.

Sources are anything that can hand out a signed checkpoint and tlog-tiles resources: the live
service over HTTP (:mod:`ledger.client`), a static mirror directory (:class:`DirectorySource`),
or a database (:class:`StoreSource`). The verifier trusts none of them: it needs only the log's
vkey.

Steps of a full verification (numbered as in the report):

1. open the checkpoint: the log's signature must verify and the origin must match;
2. stream every entry bundle in order, bounded memory (one bundle at a time);
3. decode each entry: canonical JSON, its ``index`` is its position, its ``log_time_ms`` does
   not decrease, its ``prev`` is the root of all entries before it (the hash chain);
4. hand each entry to the optional ``entry_check`` (statement signatures, authority, protocol
   replay: see :mod:`ledger.admission`);
5. recompute every hash tile from the leaf hashes and compare it byte for byte with the tile the
   source serves (a flipped bit in a served tile is named by tile and, at level 0, by entry);
6. the recomputed root must equal the checkpoint's root hash.

On the first failure it raises :class:`VerificationFailure` naming the entry (or tile) and what
is wrong with it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ledger.checkpoint import Checkpoint, open_checkpoint
from ledger.entry import LogEntry
from ledger.errors import LedgerError, VerificationError
from ledger.merkle import HASH_SIZE, leaf_hash
from ledger.note import VerifierKey
from ledger.tiles import (
    ENTRIES_LEVEL,
    TILE_WIDTH,
    TiledTree,
    TileID,
    decode_bundle,
    parse_tile_path,
    tile_width_at,
)


class LogSource(Protocol):
    """Where a verifier reads a log from. Each method raises a LedgerError if it cannot."""

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note."""

    def tile(self, tile: TileID) -> bytes:
        """The bytes of a hash tile or entry bundle."""


class VerificationFailure(VerificationError):
    """The log failed verification; ``index`` names the first bad entry when there is one."""

    def __init__(self, message: str, *, index: int | None = None, where: str | None = None):
        super().__init__(message)
        self.index = index
        self.where = where


EntryCheck = Callable[[LogEntry, bytes], None]
"""Called for every entry, in order, with the entry and its leaf hash; raises to reject it."""

Progress = Callable[[int, int], None]
"""Called with (entries verified so far, total entries)."""


@dataclass
class VerifiedLog:
    """The result of a successful verification."""

    checkpoint: Checkpoint
    checkpoint_note: bytes
    entries: int
    tiles_checked: int
    last_log_time_ms: int
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "ok": True,
            "origin": self.checkpoint.origin,
            "size": self.checkpoint.size,
            "root_hash": base64.b64encode(self.checkpoint.root_hash).decode(),
            "entries_verified": self.entries,
            "tiles_checked": self.tiles_checked,
            "last_log_time_ms": self.last_log_time_ms,
            **self.details,
        }


def verify_log(
    source: LogSource,
    log_key: VerifierKey,
    *,
    entry_check: EntryCheck | None = None,
    progress: Progress | None = None,
) -> VerifiedLog:
    """Fully verify the log ``source`` serves, signed by ``log_key``. See the module docstring."""
    # Step 1: the checkpoint.
    note = source.checkpoint()
    try:
        checkpoint = open_checkpoint(note, log_key)
    except LedgerError as exc:
        raise VerificationFailure(f"couldn't open the checkpoint: {exc}", where="checkpoint") from exc
    size = checkpoint.size
    tree = TiledTree.empty()
    last_time = 0
    tiles_checked = 0
    # Steps 2-5, one bundle at a time.
    for bundle_index in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, size - bundle_index * TILE_WIDTH)
        bundle_id = TileID(ENTRIES_LEVEL, bundle_index, width)
        entries = decode_bundle(_fetch(source, bundle_id), expected_count=width)
        for offset, data in enumerate(entries):
            index = bundle_index * TILE_WIDTH + offset
            leaf = leaf_hash(data)
            try:
                entry = LogEntry.decode(data)
            except LedgerError as exc:
                raise VerificationFailure(
                    f"couldn't verify entry {index}: it does not decode: {exc}", index=index
                ) from exc
            if entry.index != index:
                raise VerificationFailure(
                    f"couldn't verify entry {index}: it says it is entry {entry.index}", index=index
                )
            if entry.log_time_ms < last_time:
                raise VerificationFailure(
                    f"couldn't verify entry {index}: log time {entry.log_time_ms} ms is before the "
                    f"previous entry's {last_time} ms",
                    index=index,
                )
            root_before = tree.root()
            if entry.prev != root_before:
                raise VerificationFailure(
                    f"couldn't verify entry {index}: its prev {entry.prev.hex()} is not the root "
                    f"of the {index} entries before it ({root_before.hex()})",
                    index=index,
                )
            if entry_check is not None:
                try:
                    entry_check(entry, leaf)
                except LedgerError as exc:
                    raise VerificationFailure(
                        f"couldn't verify entry {index}: {exc}", index=index
                    ) from exc
            last_time = entry.log_time_ms
            tree.append(leaf)
        tiles_checked += _compare_tiles(source, tree, size)
        if progress is not None:
            progress(tree.size, size)
    # Step 6: the root.
    tiles_checked += _compare_tiles(source, tree, size)
    if tree.root() != checkpoint.root_hash:
        raise VerificationFailure(
            f"couldn't verify the log: {size} entries hash to {tree.root().hex()}, the "
            f"checkpoint says {checkpoint.root_hash.hex()}",
            where="checkpoint",
        )
    return VerifiedLog(
        checkpoint=checkpoint,
        checkpoint_note=note,
        entries=size,
        tiles_checked=tiles_checked,
        last_log_time_ms=last_time,
    )


def _fetch(source: LogSource, tile: TileID) -> bytes:
    try:
        return source.tile(tile)
    except LedgerError as exc:
        raise VerificationFailure(f"couldn't fetch {tile.path()}: {exc}", where=tile.path()) from exc


def _compare_tiles(source: LogSource, tree: TiledTree, size: int) -> int:
    """Compare the tiles the tree completed (and, at the end, its partial tiles) with the source.

    Only tiles the final tree of ``size`` implies are fetched: full tiles as they complete, and
    the right-edge partial tiles once the tree has reached ``size``.
    """
    checked = 0
    for tile, expected in tree.changed_tiles():
        width = tile_width_at(tile.level, tile.index, size)
        if tile.width != width:
            continue  # an intermediate partial tile no checkpoint of this size implies
        served = _fetch(source, tile)
        if served != expected:
            raise VerificationFailure(_tile_mismatch(tile, served, expected), where=tile.path(),
                                      index=_first_bad_leaf(tile, served, expected))
        checked += 1
    return checked


def _first_bad_leaf(tile: TileID, served: bytes, expected: bytes) -> int | None:
    if tile.level != 0:
        return None
    for i in range(tile.width):
        if served[i * HASH_SIZE : (i + 1) * HASH_SIZE] != expected[i * HASH_SIZE : (i + 1) * HASH_SIZE]:
            return tile.index * TILE_WIDTH + i
    return None


def _tile_mismatch(tile: TileID, served: bytes, expected: bytes) -> str:
    bad = _first_bad_leaf(tile, served, expected)
    if bad is not None:
        return (
            f"couldn't verify tile {tile.path()}: the hash it serves for entry {bad} is not the "
            f"leaf hash of entry {bad}"
        )
    return f"couldn't verify tile {tile.path()}: it does not match the tree recomputed from entries"


class DirectorySource:
    """A static tlog-tiles mirror on disk: ``DIR/checkpoint`` and ``DIR/tile/...``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def checkpoint(self) -> bytes:
        return self._read(self.root / "checkpoint", "checkpoint")

    def tile(self, tile: TileID) -> bytes:
        path = tile.path()
        parse_tile_path(path)
        return self._read(self.root / path, path)

    def _read(self, path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise VerificationFailure(f"couldn't read {what} from {self.root}: {exc}", where=what) from exc
