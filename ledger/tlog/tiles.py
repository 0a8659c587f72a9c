"""C2SP ``tlog-tiles`` geometry, entry bundles, node hashes read from tiles, and the writer's
tiled view of the tree.

A tile at level ``L`` (``0 <= L``) and index ``N`` holds up to 256 consecutive hashes of tree
level ``8 * L``: at level 0 the leaf hashes, above that the roots of FULL tiles of the level
below, so the hash at position ``i`` is ``MTH(D[(N * 256 + i) * 256**L : (N * 256 + i + 1) *
256**L])``. A partial tile (the right edge) holds ``floor(size / 256**L) mod 256`` hashes and is
never hashed into the level above. Entry bundles (level :data:`ENTRIES_LEVEL`) hold the entries
whose leaf hashes are the matching level-0 tile. Paths are ``tile/<L>/<N>[.p/<W>]`` and
``tile/entries/<N>[.p/<W>]``, with ``N`` written in 3-digit groups, all but the last prefixed
with ``x`` (``x001/x234/067``).

Everything here is pure: tiles are read through a :data:`TileReader` passed in, and
:class:`TiledTree` hands back the tiles to write instead of writing them.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.errors import MalformedError, RefusedError
from ledger.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE, NODE_PREFIX, CompactRange, NodeID

__all__ = [
    "ENTRIES_LEVEL",
    "MAX_ENTRY_SIZE",
    "MAX_TILE_INDEX",
    "MAX_TILE_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileCache",
    "TileID",
    "TileNodeReader",
    "TileReader",
    "TiledTree",
    "bundles_for_size",
    "decode_bundle",
    "encode_bundle",
    "parse_tile_path",
    "tile_width_at",
    "tiles_for_size",
]

TILE_HEIGHT = 8
"""Tree levels spanned by one tile: a tile's hashes sit at level ``TILE_HEIGHT * L``."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256); a full tile is ``TILE_WIDTH * HASH_SIZE`` = 8,192 bytes."""

ENTRIES_LEVEL = -1
"""The :attr:`TileID.level` of an entry bundle (``tile/entries/...``)."""

MAX_ENTRY_SIZE = 0xFFFF
"""Largest entry an entry bundle can hold: its length prefix is a big-endian uint16."""

MAX_TILE_LEVEL = 63
"""Largest ``<L>`` a tile path may carry (C2SP tlog-tiles)."""

MAX_TILE_INDEX = (1 << 56) - 1
"""Largest tile index: with 256 hashes per tile, no tile of a uint64-sized tree lies beyond."""

_FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
_LEVEL_MASK = TILE_HEIGHT - 1
_sha256 = hashlib.sha256

TileReader = Callable[[int, int], bytes]
"""``read_tile(level, index)`` returns the stored bytes of hash tile ``(level, index)``.

Contract: the bytes are a whole number of 32-byte hashes, full (8,192 bytes) or partial, and
hold at least as many hashes as the tree being read implies (a store may return a wider tile
written for a later tree: the log is append-only, so the prefix is the same). Raises a
:class:`~ledger.errors.LedgerError` if the tile cannot be read.
"""


@dataclass(frozen=True, slots=True)
class TileID:
    """One tile: hash tile ``(level, index)`` for ``level >= 0``, or entry bundle ``index`` for
    ``level == ENTRIES_LEVEL``, holding ``width`` hashes or entries (``1..256``; 256 is full).

    Validated on construction (:class:`MalformedError`): ``-1 <= level <= 63``,
    ``0 <= index <= MAX_TILE_INDEX``, ``1 <= width <= 256``.
    """

    level: int
    index: int
    width: int

    def __post_init__(self) -> None:
        if not ENTRIES_LEVEL <= self.level <= MAX_TILE_LEVEL:
            raise MalformedError(
                f"couldn't make tile ID at level {self.level}: "
                f"level must be between {ENTRIES_LEVEL} and {MAX_TILE_LEVEL}"
            )
        if not 0 <= self.index <= MAX_TILE_INDEX:
            raise MalformedError(
                f"couldn't make tile ID with index {self.index}: "
                f"index must be between 0 and {MAX_TILE_INDEX}"
            )
        if not 1 <= self.width <= TILE_WIDTH:
            raise MalformedError(
                f"couldn't make tile ID with width {self.width}: "
                f"width must be between 1 and {TILE_WIDTH}"
            )

    @property
    def is_full(self) -> bool:
        """Whether the tile holds all 256 hashes or entries (and so is immutable)."""
        return self.width == TILE_WIDTH

    def path(self) -> str:
        """The tile's path under the log prefix, e.g. ``tile/0/x001/x234/067.p/44`` or
        ``tile/entries/000``."""
        digits = str(self.index)
        digits = "0" * (-len(digits) % 3) + digits
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
        encoded = "/".join(["x" + group for group in groups[:-1]] + [groups[-1]])
        level = "entries" if self.level == ENTRIES_LEVEL else str(self.level)
        suffix = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{level}/{encoded}{suffix}"


_TILE_PATH = re.compile(
    r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?",
    re.ASCII,
)


def parse_tile_path(path: str) -> TileID:
    """Parse a tile or entry bundle path (``tile/...``, no leading slash) into its :class:`TileID`.

    Strict: only the one canonical spelling of each tile is accepted, i.e. exactly what
    :meth:`TileID.path` produces. Refused with :class:`MalformedError`: a level outside 0..63
    or with a leading zero, an index group that is not 3 ASCII digits, a missing or extra ``x``,
    a leading all-zero group (``x000/001``), a width of 0, 256 or more, or with a leading zero,
    an index beyond :data:`MAX_TILE_INDEX`, and anything else before, between or after.
    """
    match = _TILE_PATH.fullmatch(path)
    if match is None:
        raise MalformedError(f"couldn't parse tile path {path!r}: not tile/<L>/<N>[.p/<W>]")
    level_text, index_text, width_text = match.groups()
    level = ENTRIES_LEVEL if level_text == "entries" else int(level_text)
    index = int(index_text.replace("x", "").replace("/", ""))
    width = TILE_WIDTH if width_text is None else int(width_text)
    if width_text is not None and width >= TILE_WIDTH:
        raise MalformedError(
            f"couldn't parse tile path {path!r}: partial width {width} must be below {TILE_WIDTH}"
        )
    try:
        tile = TileID(level, index, width)
    except MalformedError as err:
        raise MalformedError(f"couldn't parse tile path {path!r}: {err}") from err
    if tile.path() != path:
        raise MalformedError(
            f"couldn't parse tile path {path!r}: not canonical, expected {tile.path()!r}"
        )
    return tile


def _check_tree_size(size: int) -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise MalformedError(f"couldn't use tree size {size}: must be between 0 and 2**64 - 1")


def tile_width_at(level: int, index: int, size: int) -> int:
    """The width of tile ``(level, index)`` in a tree of ``size`` leaves: 256 for a full tile,
    ``1..255`` for the right-edge partial tile, 0 if the tree has no such tile.

    ``level`` may be :data:`ENTRIES_LEVEL`: a bundle has the width of the level-0 tile it
    matches. ``O(1)``.
    """
    _check_tree_size(size)
    if level < ENTRIES_LEVEL or index < 0:
        return 0
    hashes = size >> (TILE_HEIGHT * max(level, 0))
    full = hashes >> TILE_HEIGHT
    if index < full:
        return TILE_WIDTH
    if index == full:
        return hashes & (TILE_WIDTH - 1)
    return 0


def _tiles_at_level(level: int, size: int) -> list[TileID]:
    hashes = size >> (TILE_HEIGHT * max(level, 0))
    full = hashes >> TILE_HEIGHT
    tiles = [TileID(level, index, TILE_WIDTH) for index in range(full)]
    if hashes & (TILE_WIDTH - 1):
        tiles.append(TileID(level, full, hashes & (TILE_WIDTH - 1)))
    return tiles


def tiles_for_size(size: int) -> list[TileID]:
    """Every hash tile a tree of ``size`` leaves implies, ordered by level then index: at each
    level the full tiles and, if the level's width is not a multiple of 256, the right-edge
    partial tile. Empty for ``size == 0``.

    A tree of 70,000 leaves implies 273 full and one 112-wide level-0 tiles, one full and one
    17-wide level-1 tiles, and one 1-wide level-2 tile.
    """
    _check_tree_size(size)
    tiles: list[TileID] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        tiles.extend(_tiles_at_level(level, size))
        level += 1
    return tiles


def bundles_for_size(size: int) -> list[TileID]:
    """Every entry bundle a tree of ``size`` leaves implies, by index: the full bundles and the
    right-edge partial one, if any."""
    _check_tree_size(size)
    return _tiles_at_level(ENTRIES_LEVEL, size)


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """Encode 1 to 256 entries as an entry bundle: each a big-endian uint16 length, then the
    entry. Raises :class:`MalformedError` for an entry longer than :data:`MAX_ENTRY_SIZE` bytes
    or a count outside 1..256."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise MalformedError(
            f"couldn't encode entry bundle of {len(entries)} entries: "
            f"a bundle holds 1 to {TILE_WIDTH}"
        )
    parts = []
    for position, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_SIZE:
            raise MalformedError(
                f"couldn't encode entry {position} of entry bundle: {len(entry)} bytes, "
                f"the limit is {MAX_ENTRY_SIZE}"
            )
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(entry)
    return b"".join(parts)


def decode_bundle(data: bytes, expected_count: int | None = None) -> list[bytes]:
    """Decode an entry bundle into its entries; the exact inverse of :func:`encode_bundle`.

    Strict (:class:`MalformedError`, naming the byte offset): a length prefix or an entry cut
    short, an empty bundle, more than 256 entries, and — when ``expected_count`` is given (the
    width the tree size implies) — any other number of entries.
    """
    entries: list[bytes] = []
    offset = 0
    end = len(data)
    while offset < end:
        if len(entries) == TILE_WIDTH:
            raise MalformedError(
                f"couldn't decode entry bundle: bytes after entry {TILE_WIDTH - 1} at offset "
                f"{offset}, a bundle holds at most {TILE_WIDTH} entries"
            )
        if offset + 2 > end:
            raise MalformedError(
                f"couldn't decode entry bundle: truncated length prefix at offset {offset} "
                f"of {end} bytes"
            )
        length = int.from_bytes(data[offset : offset + 2], "big")
        start = offset + 2
        offset = start + length
        if offset > end:
            raise MalformedError(
                f"couldn't decode entry bundle: entry {len(entries)} at offset {start} needs "
                f"{length} bytes, only {end - start} remain"
            )
        entries.append(data[start:offset])
    if not entries:
        raise MalformedError("couldn't decode entry bundle: it is empty")
    if expected_count is not None and len(entries) != expected_count:
        raise MalformedError(
            f"couldn't decode entry bundle: {len(entries)} entries ending at offset {end}, "
            f"expected {expected_count}"
        )
    return entries


def _split_hashes(data: bytes, tile: tuple[int, int], need: int) -> list[bytes]:
    """Split stored tile bytes into hashes, checking them against :data:`TileReader`'s contract:
    a whole number of hashes, no more than a full tile, at least ``need`` of them."""
    level, index = tile
    if len(data) % HASH_SIZE or len(data) > _FULL_TILE_BYTES or len(data) < need * HASH_SIZE:
        raise MalformedError(
            f"couldn't read tile (level {level}, index {index}): {len(data)} bytes, want a "
            f"multiple of {HASH_SIZE} between {need * HASH_SIZE} and {_FULL_TILE_BYTES}"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _subtree_root(hashes: Sequence[bytes], start: int, height: int) -> bytes:
    """The root of the perfect subtree whose ``2**height`` bottom hashes are
    ``hashes[start : start + 2**height]``."""
    row = hashes[start : start + (1 << height)]
    sha = _sha256
    while len(row) > 1:
        row = [sha(NODE_PREFIX + row[i] + row[i + 1]).digest() for i in range(0, len(row), 2)]
    return row[0]


def _all_levels(hashes: list[bytes]) -> list[list[bytes]]:
    """Every perfect subtree inside a tile of ``w`` hashes: ``levels[r][q]`` is the root of
    ``hashes[q << r : (q + 1) << r]``, for ``q < w >> r`` (``w - 1`` hashes computed at most)."""
    levels = [hashes]
    sha = _sha256
    row = hashes
    while len(row) > 1:
        row = [sha(NODE_PREFIX + row[i] + row[i + 1]).digest() for i in range(0, len(row) - 1, 2)]
        levels.append(row)
    return levels


class TileCache:
    """An LRU of tiles with every level hashed inside them, shareable by any number of
    :class:`TileNodeReader` of any tree size.

    Sharing is safe because the log is append-only: a full tile never changes, and a partial
    tile of a given width is a prefix of every later version of it. Entries are keyed by
    ``(level, index, width)``; a lookup prefers the full tile, whose prefix serves every width.
    The keys do not name the log: use one cache per log. A full tile costs about 40 KB of
    memory. Not safe for concurrent use.
    """

    __slots__ = ("_max_tiles", "_tiles")

    def __init__(self, max_tiles: int = 64) -> None:
        """Keep at most ``max_tiles`` tiles (at least 1), evicting the least recently used."""
        if max_tiles < 1:
            raise MalformedError(f"couldn't make tile cache of {max_tiles} tiles: need at least 1")
        self._max_tiles = max_tiles
        self._tiles: OrderedDict[tuple[int, int, int], list[list[bytes]]] = OrderedDict()

    def __len__(self) -> int:
        """The number of tiles held."""
        return len(self._tiles)

    def add(self, tile: TileID, data: bytes) -> None:
        """Keep hash tile ``tile`` (its stored bytes, ``tile.width`` hashes), hashed level by
        level. Only for bytes that are durably part of the log (a committed batch's tiles):
        a cached partial tile serves every later tree size as a prefix."""
        if tile.level < 0:
            raise MalformedError(f"couldn't cache {tile}: entry bundles are not hash tiles")
        hashes = _split_hashes(data, (tile.level, tile.index), tile.width)
        if len(hashes) != tile.width:
            raise MalformedError(
                f"couldn't cache tile (level {tile.level}, index {tile.index}): "
                f"{len(hashes)} hashes, want {tile.width}"
            )
        self._put(tile.level, tile.index, _all_levels(hashes))

    def _get(self, level: int, index: int, width: int) -> list[list[bytes]] | None:
        for key in ((level, index, TILE_WIDTH), (level, index, width)):
            levels = self._tiles.get(key)
            if levels is not None:
                self._tiles.move_to_end(key)
                return levels
        return None

    def _put(self, level: int, index: int, levels: list[list[bytes]]) -> None:
        self._tiles[(level, index, len(levels[0]))] = levels
        if len(self._tiles) > self._max_tiles:
            self._tiles.popitem(last=False)


class TileNodeReader:
    """A :data:`~ledger.tlog.merkle.NodeReader` over the hash tiles of a tree of ``size`` leaves.

    Node ``(level, index)`` lives in tile level ``level // 8``: at ``level % 8 == 0`` it is
    stored there, otherwise it is the root of ``2**(level % 8)`` adjacent hashes of that tile.
    Each call reads every tile it needs at most once, and only tiles ``cache`` does not hold;
    a tile read is hashed level by level once and kept in ``cache``. Pass one long-lived
    :class:`TileCache` to every reader to keep hot tiles across proofs and tree sizes; by
    default each reader has its own. A node not contained in the tree of ``size`` leaves is
    refused with :class:`RefusedError` before anything is read. Not safe for concurrent use.
    """

    __slots__ = ("_cache", "_read_tile", "_size")

    def __init__(self, read_tile: TileReader, size: int, cache: TileCache | None = None) -> None:
        """Serve the nodes of the tree of ``size`` leaves from tiles read by ``read_tile``."""
        _check_tree_size(size)
        self._read_tile = read_tile
        self._size = size
        self._cache = TileCache() if cache is None else cache

    @property
    def size(self) -> int:
        """The size of the tree whose nodes this reader serves."""
        return self._size

    def __call__(self, ids: Sequence[NodeID]) -> list[bytes]:
        """Return the hashes of the perfect subtrees ``ids``, in order (see the class)."""
        size = self._size
        by_tile: dict[tuple[int, int], list[int]] = {}
        for position, node in enumerate(ids):
            level, index = node.level, node.index
            if level < 0 or index < 0 or (index + 1) << level > size:
                raise RefusedError(
                    f"couldn't read node (level {level}, index {index}): not a perfect "
                    f"subtree of the tree of size {size}"
                )
            height = level & _LEVEL_MASK
            tile = (level // TILE_HEIGHT, index >> (TILE_HEIGHT - height))
            by_tile.setdefault(tile, []).append(position)
        out: list[bytes] = [b""] * len(ids)
        for (tile_level, tile_index), positions in by_tile.items():
            levels = self._tile_levels(tile_level, tile_index)
            for position in positions:
                node = ids[position]
                height = node.level & _LEVEL_MASK
                out[position] = levels[height][node.index & ((TILE_WIDTH >> height) - 1)]
        return out

    def _tile_levels(self, level: int, index: int) -> list[list[bytes]]:
        """The hashed levels of tile ``(level, index)``, at least as wide as this tree has it:
        from the cache, or read, hashed and cached under the width actually read (a store that
        returns a wider tile returns a later version of it, which serves this tree's prefix)."""
        width = tile_width_at(level, index, self._size)
        levels = self._cache._get(level, index, width)
        if levels is None:
            levels = _all_levels(
                _split_hashes(self._read_tile(level, index), (level, index), width)
            )
            self._cache._put(level, index, levels)
        return levels


class TiledTree:
    """The log writer's view of the tree: its frontier and its right-edge tiles.

    Invariants, for a tree of ``size`` leaves: ``_frontier`` is the tree's
    :class:`~ledger.tlog.merkle.CompactRange`; ``_edges[L]`` is the list of hashes in the right-edge
    tile of level ``L`` (index ``size >> (8 * (L + 1))``, width ``(size >> (8 * L)) % 256``,
    possibly empty); ``_completed`` and ``_touched`` record the tiles changed since the last
    :meth:`changed_tiles`. A tile-level hash is born exactly when the frontier forms a perfect
    subtree at a level divisible by 8, so appends cost no more hashing than the frontier alone.

    Build one with :meth:`empty` or :meth:`load`. Not safe for concurrent use.
    """

    __slots__ = ("_completed", "_edges", "_frontier", "_touched")

    def __init__(self, frontier: CompactRange, edges: list[list[bytes]]) -> None:
        """Use :meth:`empty` or :meth:`load`; this trusts ``edges`` to match ``frontier``."""
        self._frontier = frontier
        self._edges = edges
        self._completed: list[tuple[TileID, bytes]] = []
        self._touched: set[int] = set()

    @classmethod
    def empty(cls) -> TiledTree:
        """The tree with no leaves."""
        return cls(CompactRange(), [])

    @classmethod
    def load(cls, size: int, read_tile: TileReader) -> TiledTree:
        """Rebuild the writer's state for a stored tree of ``size`` leaves from its right-edge
        tiles: one tile read per non-empty edge (at most ``ceil(64 / 8)``), no other I/O.

        The tiles are trusted, not verified: the caller MUST compare :meth:`root` with the root
        of the signed checkpoint for ``size`` before appending, and refuse to go on if they
        differ. Raises :class:`MalformedError` if a stored tile has the wrong length.
        """
        _check_tree_size(size)
        edges: list[list[bytes]] = []
        level = 0
        while size >> (TILE_HEIGHT * level):
            width = (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
            if width:
                tile = (level, size >> (TILE_HEIGHT * (level + 1)))
                edges.append(_split_hashes(read_tile(*tile), tile, width)[:width])
            else:
                edges.append([])
            level += 1
        # Every frontier node at tree level 8L + h lies in the edge tile of level L: the larger
        # frontier nodes to its left cover whole tiles of that level, or the left part of it.
        frontier = [
            _subtree_root(
                edges[node.level // TILE_HEIGHT],
                (node.index << (node.level & _LEVEL_MASK)) & (TILE_WIDTH - 1),
                node.level & _LEVEL_MASK,
            )
            for node in CompactRange.node_ids(size)
        ]
        return cls(CompactRange(size, frontier), edges)

    @property
    def size(self) -> int:
        """The number of leaves in the tree."""
        return self._frontier.size

    def root(self) -> bytes:
        """The tree's RFC 6962 root hash."""
        return self._frontier.root()

    def append(self, leaf_hash: bytes) -> int:
        """Add a leaf with hash ``leaf_hash`` and return its index. Raises
        :class:`MalformedError` if ``leaf_hash`` is not 32 bytes."""
        index = self._frontier.size
        self._frontier.append(leaf_hash, self._on_node)
        return index

    def _on_node(self, level: int, index: int, node: bytes) -> None:
        """Frontier visitor: a hash at a level divisible by 8 joins that tile level's edge; a
        filled edge is a completed full tile and the edge moves on to the next index."""
        if level & _LEVEL_MASK:
            return
        tile_level = level // TILE_HEIGHT
        if tile_level == len(self._edges):
            self._edges.append([])
        edge = self._edges[tile_level]
        edge.append(node)
        self._touched.add(tile_level)
        if len(edge) == TILE_WIDTH:
            self._completed.append(
                (TileID(tile_level, index >> TILE_HEIGHT, TILE_WIDTH), b"".join(edge))
            )
            edge.clear()

    def changed_tiles(self) -> list[tuple[TileID, bytes]]:
        """Return every hash tile whose contents changed since :meth:`load`, :meth:`empty` or
        the previous call, with its bytes, and start recording afresh.

        That is each full tile completed in between and the current partial tile of every level
        that gained hashes, ordered by (level, index). A partial tile is superseded by any wider
        one of the same (level, index); empty tiles are never returned.
        """
        size = self.size
        changed = list(self._completed)
        for tile_level in self._touched:
            edge = self._edges[tile_level]
            if edge:
                tile_index = size >> (TILE_HEIGHT * (tile_level + 1))
                changed.append((TileID(tile_level, tile_index, len(edge)), b"".join(edge)))
        changed.sort(key=lambda item: (item[0].level, item[0].index))
        self._completed = []
        self._touched = set()
        return changed
