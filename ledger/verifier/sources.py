"""Where the verifier reads a log from: the :class:`LogSource` protocol and its readers.

A source is anything that hands out a signed checkpoint and tlog-tiles resources (entry bundles
and hash tiles): the live service over HTTP (:class:`ledger.client.source.HttpLogSource`), a
static mirror directory (:class:`DirectorySource`), or a database
(:class:`ledger.server.logview.LogView`). The verifier trusts none of them: whatever a source
serves is checked by :mod:`ledger.verifier.verify`.

Every read is bounded in size: a checkpoint at most :data:`MAX_CHECKPOINT_BYTES`, a tile or
bundle at most :func:`tile_limit` (the HTTP source adds a time bound).

Contract: the verifier reads tiles and bundles through :func:`fetch_tile` (or :func:`tile_reader`,
built on it), which turn a source's :class:`~ledger.errors.LedgerError` into a
:class:`~ledger.verifier.failures.VerificationFailure` naming the resource (``where``);
:class:`DirectorySource` raises that failure itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ledger.errors import LedgerError
from ledger.tlog.merkle import HASH_SIZE
from ledger.tlog.tiles import (
    ENTRIES_LEVEL,
    MAX_ENTRY_SIZE,
    TileID,
    TileReader,
    parse_tile_path,
    tile_width_at,
)
from ledger.verifier.failures import VerificationFailure

MAX_CHECKPOINT_BYTES = 1 << 20
"""The largest checkpoint note any source is read for (room for hundreds of cosignatures,
hybrid ones included); a larger one is refused, not read whole."""


def tile_limit(tile: TileID) -> int:
    """The most bytes ``tile`` can hold: ``width`` hashes, or ``width`` entries of at most
    :data:`~ledger.tlog.tiles.MAX_ENTRY_SIZE` bytes each with their 2-byte length. A source
    that serves more is refused before the rest is read."""
    if tile.level == ENTRIES_LEVEL:
        return tile.width * (2 + MAX_ENTRY_SIZE)
    return tile.width * HASH_SIZE


class LogSource(Protocol):
    """Where a verifier reads a log from. Each method raises a LedgerError if it cannot.

    With ``fetch_threads > 1`` the verifier calls :meth:`tile` from several threads at once.
    """

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note."""

    def tile(self, tile: TileID) -> bytes:
        """The bytes of a hash tile or entry bundle."""


def fetch_tile(source: LogSource, tile: TileID) -> bytes:
    """The bytes ``source`` serves for ``tile``, as served (unchecked).

    Raises :class:`VerificationFailure` naming the tile if the source cannot serve it.
    """
    try:
        return source.tile(tile)
    except VerificationFailure:
        raise
    except LedgerError as exc:
        raise VerificationFailure(
            f"couldn't fetch {tile.path()}: {exc}", where=tile.path()
        ) from exc


def tile_reader(source: LogSource, size: int) -> TileReader:
    """A :data:`~ledger.tlog.tiles.TileReader` over the hash tiles ``source`` serves for the tree of
    ``size`` entries (for :class:`~ledger.tlog.tiles.TileNodeReader` and ``TiledTree.load``).

    Fetch failures raise :class:`VerificationFailure` naming the tile.
    """

    def read(level: int, index: int) -> bytes:
        width = tile_width_at(level, index, size)
        if width == 0:
            raise VerificationFailure(
                f"couldn't read tile (level {level}, index {index}): the tree of size {size} has "
                "no such tile"
            )
        return fetch_tile(source, TileID(level, index, width))

    return read


class DirectorySource:
    """A static tlog-tiles mirror on disk: ``DIR/checkpoint`` and ``DIR/tile/...``.

    Safe for concurrent use.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def checkpoint(self) -> bytes:
        return self._read(self.root / "checkpoint", "checkpoint", MAX_CHECKPOINT_BYTES)

    def tile(self, tile: TileID) -> bytes:
        path = tile.path()
        parse_tile_path(path)
        return self._read(self.root / path, path, tile_limit(tile))

    def _read(self, path: Path, what: str, limit: int) -> bytes:
        """The file's bytes, refused when it is over ``limit`` (read no further)."""
        try:
            with path.open("rb") as file:
                data = file.read(limit + 1)
        except OSError as exc:
            raise VerificationFailure(
                f"couldn't read {what} from {self.root}: {exc}", where=what
            ) from exc
        if len(data) > limit:
            raise VerificationFailure(
                f"couldn't read {what} from {self.root}: over the {limit}-byte limit", where=what
            )
        return data
