"""Integrity before signing: the checks that the stored state is what the log signed, and
extends what the signer published.

- :func:`verify_stored_head`: the stored latest checkpoint verifies under the log key and names
  the log's origin, the stored tiles hash to its root (the tree's right edge), and its last
  entry hashes to the leaf in its level-0 tile. O(log n) tile reads and one entry read.
- :func:`check_stored_state`: that, plus the stored tree extends the checkpoint the signer
  remembers publishing (:mod:`ledger.server.published`). What ``amnesty serve`` runs before
  starting, and every server process at start.
- :func:`sweep_entries`: every stored entry against the leaf hash in its level-0 tile. O(n):
  a server runs it in the background after it starts (it reads its protocol state from the
  derived state, not by replaying the log), and stops writing if it finds damage.
- :func:`prefix_roots`: the roots of a tree's prefixes, for consistency with a remembered
  checkpoint, computed from the stored tiles.

Every refusal is an :class:`~ledger.server.published.UntrustedStoreError` with a one-line
reason: never guess, never sign on top of damage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ledger.errors import FatalError, LedgerError
from ledger.server.published import PublishedCheckpoint, RootAt, UntrustedStoreError
from ledger.statements.entry import LogEntry
from ledger.storage.base import LogStore
from ledger.tlog.checkpoint import Checkpoint, open_checkpoint
from ledger.tlog.merkle import HASH_SIZE, leaf_hash, root_at
from ledger.tlog.note import VerifierKey
from ledger.tlog.tiles import TILE_WIDTH, TiledTree, TileNodeReader, TileReader


def verify_stored_head(
    head: bytes,
    log_key: VerifierKey,
    origin: str,
    read_tile: Callable[[int, int], bytes],
    read_entries: Callable[[int, int], list[bytes]],
) -> tuple[Checkpoint, TiledTree, LogEntry | None]:
    """Check stored state against the signed checkpoint ``head``; return it, the tree, the last entry.

    Refuses (``FatalError``) when the checkpoint's log signature fails or names another origin,
    when the stored tiles do not hash to the signed root, or when the last stored entry does not
    hash to the leaf hash its level-0 tile holds. O(log n) tile reads and one entry read.
    """
    try:
        checkpoint = open_checkpoint(head, log_key)
    except LedgerError as exc:
        raise UntrustedStoreError(f"couldn't trust the stored checkpoint: {exc}") from exc
    if checkpoint.origin != origin:
        raise UntrustedStoreError(
            f"couldn't trust the stored checkpoint: origin {checkpoint.origin!r} is not "
            f"this log's {origin!r}"
        )
    tree = TiledTree.load(checkpoint.size, read_tile)
    if tree.root() != checkpoint.root_hash:
        raise UntrustedStoreError(
            f"couldn't trust the stored tree: tiles at size {checkpoint.size} hash to "
            f"{tree.root().hex()}, the signed checkpoint says {checkpoint.root_hash.hex()}"
        )
    if checkpoint.size == 0:
        return checkpoint, tree, None
    index = checkpoint.size - 1
    stored = read_entries(index, index + 1)
    if not stored:
        raise UntrustedStoreError(f"couldn't trust the store: entry {index} is missing")
    tile = read_tile(0, index // 256)
    offset = (index % 256) * 32
    if leaf_hash(stored[0]) != tile[offset : offset + 32]:
        raise UntrustedStoreError(
            f"couldn't trust the store: entry {index} does not hash to the leaf hash in the "
            "stored level-0 tile"
        )
    try:
        last = LogEntry.decode(stored[0])
    except LedgerError as exc:
        raise UntrustedStoreError(
            f"couldn't trust the store: entry {index} does not decode: {exc}"
        ) from exc
    return checkpoint, tree, last


def check_stored_state(
    store: LogStore,
    log_key: VerifierKey,
    origin: str,
    published: PublishedCheckpoint | None,
) -> Checkpoint:
    """The startup check, cheap (O(log n) tile reads, one entry read): the stored latest
    checkpoint verifies under the log key, the stored tiles hash to its root and its last entry
    to its leaf (:func:`verify_stored_head`), and the stored tree extends the checkpoint the
    signer remembers publishing (``published``, if this process signs). Returns the stored
    checkpoint; raises :class:`~ledger.errors.FatalError` (a
    :class:`~ledger.server.published.ForkError` for a store behind or beside what was published)
    with a one-line reason. Reads only: nothing is written, so it is safe beside running writers.
    """
    checkpoint, _, _ = verify_stored_head(
        store.checkpoint(), log_key, origin, store.read_tile, store.read_entries
    )
    if published is not None:
        published.check(
            checkpoint.size,
            prefix_roots(checkpoint, checkpoint, store.read_tile),
            doing="start",
        )
    return checkpoint


def prefix_roots(tree: Checkpoint, stored: Checkpoint, read_tile: TileReader) -> RootAt:
    """Roots of the prefixes of ``tree`` (a tree extending the verified stored tree
    ``stored``): ``tree``'s own root at its size, ``stored``'s at its size, and below that the
    root computed from the stored tiles (O(log n) nodes)."""
    reader = TileNodeReader(read_tile, stored.size)

    def at(size: int) -> bytes:
        if size == tree.size:
            return tree.root_hash
        if size == stored.size:
            return stored.root_hash
        if size > stored.size:
            raise FatalError(
                f"couldn't prove size {size}: it lies between the stored tree ({stored.size}) "
                f"and the tree to sign ({tree.size})"
            )
        return root_at(size, reader)

    return at


def entries_matching_tiles(
    read_tile: Callable[[int, int], bytes],
    read_entries: Callable[[int, int], list[bytes]],
    start: int,
    end: int,
    *,
    doing: str,
    chunk: int = 4096,
) -> Iterator[tuple[int, bytes, bytes]]:
    """Yield ``(index, data, leaf_hash)`` for each of entries ``[start, end)``, in order, after
    checking that it is stored and hashes to the leaf hash in its stored level-0 tile (whose
    tree :func:`verify_stored_head` checked against the signed root: so each entry yielded is
    the one the log signed). The one check of entries against tiles, for the start-up catch-up,
    the background sweep and every replay.

    Raises :class:`~ledger.server.published.UntrustedStoreError` naming the first missing
    range or damaged entry, worded ``couldn't <doing> entry N: ...``; entries before it were
    yielded. Reads only, ``chunk`` entries and their tiles at a time: safe beside running
    writers, and memory stays bounded.
    """
    for first in range(start, end, chunk):
        last = min(end, first + chunk)
        datas = read_entries(first, last)
        if len(datas) != last - first:
            raise UntrustedStoreError(
                f"couldn't {doing} entries [{first}, {last}): {last - first - len(datas)} of "
                f"them are missing under a checkpoint of size {end} or more (a corrupted store?)"
            )
        tiles: dict[int, bytes] = {}
        for offset, data in enumerate(datas):
            index = first + offset
            tile = tiles.get(index // TILE_WIDTH)
            if tile is None:
                tile = tiles[index // TILE_WIDTH] = read_tile(0, index // TILE_WIDTH)
            leaf = leaf_hash(data)
            at = (index % TILE_WIDTH) * HASH_SIZE
            if tile[at : at + HASH_SIZE] != leaf:
                raise UntrustedStoreError(
                    f"couldn't {doing} entry {index}: it does not hash to the leaf hash in the "
                    "stored level-0 tile (a corrupted store?)"
                )
            yield index, data, leaf


def sweep_entries(
    read_tile: Callable[[int, int], bytes],
    read_entries: Callable[[int, int], list[bytes]],
    size: int,
    *,
    chunk: int = 4096,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Check that each of entries ``[0, size)`` is stored and hashes to the leaf hash in its
    stored level-0 tile (:func:`entries_matching_tiles`). Raises
    :class:`~ledger.server.published.UntrustedStoreError` naming the first that does not.
    Reads only: safe beside running writers."""
    for index, _, _ in entries_matching_tiles(
        read_tile, read_entries, 0, size, doing="trust the store's", chunk=chunk
    ):
        if progress is not None and (index + 1 == size or (index + 1) % chunk == 0):
            progress(index + 1)
