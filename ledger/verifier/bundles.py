"""Step 3 of a verification: fetch the entry bundles holding the new entries, in order.

:func:`fetch_bundles` yields, for every bundle from the one holding entry ``start_size`` to the
one holding the last entry of the tree of ``size`` entries, a :class:`Bundle`: the bundle as
served, its new entries, and the level-0 hash tile served for it. Memory stays bounded: with
``threads > 1`` at most ``2 * threads + 1`` bundles are fetched ahead of the consumer.

Contract: every bundle yielded decodes to exactly the number of entries the tree's size implies,
its level-0 tile is exactly that many hashes long, and the entries of a partly verified first
bundle (those before ``start_size``), and the hashes served for them, are the ones verified
before (``level0_edge``): only the entries after them are in :attr:`Bundle.entries`. Anything
else raises :class:`~ledger.verifier.failures.VerificationFailure` naming the bundle or tile.
Nothing else about the entries is checked here (steps 4-6 do).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ledger.errors import LedgerError
from ledger.tlog.merkle import HASH_SIZE, leaf_hash
from ledger.tlog.tiles import ENTRIES_LEVEL, TILE_WIDTH, TileID, decode_bundle, tile_width_at
from ledger.verifier.failures import VerificationFailure
from ledger.verifier.sources import LogSource, fetch_tile


@dataclass(slots=True)
class Bundle:
    """A fetched bundle: its new entries (from ``first``) and the served level-0 tile."""

    tile: TileID
    data: bytes
    first: int
    entries: list[bytes]
    level0: TileID
    served: bytes


def fetch_bundles(
    source: LogSource, size: int, start_size: int, level0_edge: bytes, threads: int
) -> Iterator[Bundle]:
    """The bundles holding the entries ``start_size .. size - 1``, in order, each with its
    level-0 tile; ``level0_edge`` holds the leaf hashes verified before of the entries in the
    tree's last, partial bundle (from the trust state). ``threads`` fetch concurrently."""
    return _Fetcher(source, size, start_size, level0_edge).bundles(threads)


class _Fetcher:
    """Fetches and prepares the bundles of one run; :meth:`_fetch_pair` is thread-safe."""

    def __init__(self, source: LogSource, size: int, start_size: int, level0_edge: bytes) -> None:
        self.source = source
        self.size = size
        self.start_size = start_size
        self.level0_edge = level0_edge

    def bundles(self, threads: int) -> Iterator[Bundle]:
        """The bundles holding new entries, in order, each with its level-0 tile."""
        first_bundle = self.start_size // TILE_WIDTH
        last_bundle = (self.size + TILE_WIDTH - 1) // TILE_WIDTH
        indexes = range(first_bundle, last_bundle if self.size > self.start_size else first_bundle)
        if threads <= 1:
            for b in indexes:
                yield self._prepare(b, *self._fetch_pair(b))
            return
        with ThreadPoolExecutor(threads) as fetcher:
            pending: deque[tuple[int, Future[tuple[bytes, bytes]]]] = deque()
            for b in indexes:
                pending.append((b, fetcher.submit(self._fetch_pair, b)))
                if len(pending) > 2 * threads:
                    head, future = pending.popleft()
                    yield self._prepare(head, *future.result())
            while pending:
                head, future = pending.popleft()
                yield self._prepare(head, *future.result())

    def _fetch_pair(self, b: int) -> tuple[bytes, bytes]:
        """Bundle ``b`` and its level-0 tile, as served (runs in the fetch threads)."""
        width = tile_width_at(ENTRIES_LEVEL, b, self.size)
        return (
            fetch_tile(self.source, TileID(ENTRIES_LEVEL, b, width)),
            fetch_tile(self.source, TileID(0, b, width)),
        )

    def _prepare(self, b: int, data: bytes, served: bytes) -> Bundle:
        """Decode bundle ``b``, check the shapes, and split off the entries verified before."""
        width = tile_width_at(ENTRIES_LEVEL, b, self.size)
        bundle_id = TileID(ENTRIES_LEVEL, b, width)
        tile_id = TileID(0, b, width)
        try:
            entries = decode_bundle(data, expected_count=width)
        except LedgerError as exc:
            raise VerificationFailure(
                f"couldn't verify {bundle_id.path()}: {exc}", where=bundle_id.path()
            ) from exc
        if len(served) != width * HASH_SIZE:
            raise VerificationFailure(
                f"couldn't verify {tile_id.path()}: it is {len(served)} bytes, not "
                f"{width * HASH_SIZE}",
                where=tile_id.path(),
            )
        first = b * TILE_WIDTH
        known = max(0, self.start_size - first)
        if known:
            self._check_known(bundle_id, tile_id, first, entries[:known], served)
        return Bundle(bundle_id, data, first + known, entries[known:], tile_id, served)

    def _check_known(
        self, bundle: TileID, tile: TileID, first: int, entries: list[bytes], served: bytes
    ) -> None:
        """Step 3: entries verified in an earlier run must come back unchanged."""
        edge = self.level0_edge
        for offset, data in enumerate(entries):
            index = first + offset
            trusted = edge[offset * HASH_SIZE : (offset + 1) * HASH_SIZE]
            if leaf_hash(data) != trusted:
                raise VerificationFailure(
                    f"couldn't verify entry {index} in {bundle.path()}: it is not the entry "
                    f"verified at size {self.start_size} (its leaf hash changed)",
                    index=index,
                    where=bundle.path(),
                )
            if served[offset * HASH_SIZE : (offset + 1) * HASH_SIZE] != trusted:
                raise VerificationFailure(
                    f"couldn't verify {tile.path()}: the hash it serves for entry {index} is not "
                    f"the one verified at size {self.start_size}",
                    where=tile.path(),
                )
