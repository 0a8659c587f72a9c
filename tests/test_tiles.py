"""Tests for ledger.tlog.tiles: Sunlight's tiles-300 layout byte for byte, strict tile paths, entry
bundles, and property tests of TiledTree and TileNodeReader against the RFC 6962 reference."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from merkle_reference import ReferenceTree, ref_leaf_hash

from ledger.errors import MalformedError, RefusedError
from ledger.tlog.merkle import (
    CompactRange,
    NodeID,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_at,
)
from ledger.tlog.tiles import (
    ENTRIES_LEVEL,
    MAX_ENTRY_SIZE,
    MAX_TILE_INDEX,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileCache,
    TiledTree,
    TileID,
    TileNodeReader,
    TileReader,
    bundles_for_size,
    decode_bundle,
    encode_bundle,
    parse_tile_path,
    tile_width_at,
    tiles_for_size,
)
from tests.support import VECTORS

TILES_300 = VECTORS / "tiles-300"

MAX_LEAVES = 1400
LEAVES = [ref_leaf_hash(b"leaf %d" % i) for i in range(MAX_LEAVES)]
REF = ReferenceTree(LEAVES)

Store = dict[tuple[int, int], bytes]


def expected_tiles(size: int, ref: ReferenceTree = REF) -> dict[tuple[int, int], bytes]:
    """The tiles of a tree of ``size`` leaves, straight from the spec's formula: hash ``i`` of
    tile (L, N) is MTH of leaves [(N*256 + i) * 256**L, (N*256 + i + 1) * 256**L)."""
    tiles = {}
    for tile in tiles_for_size(size):
        level_base = TILE_HEIGHT * tile.level
        hashes = [ref.node(level_base, tile.index * TILE_WIDTH + i) for i in range(tile.width)]
        tiles[(tile.level, tile.index)] = b"".join(hashes)
    return tiles


def apply(store: Store, changed: list[tuple[TileID, bytes]]) -> None:
    """Write changed tiles as a store keyed by (level, index) would: a wider tile replaces."""
    for tile, data in changed:
        assert len(data) == tile.width * 32
        previous = store.get((tile.level, tile.index), b"")
        assert data != previous, f"{tile.path()} reported changed but is unchanged"
        assert data.startswith(previous), f"{tile.path()} rewrote existing hashes"
        store[(tile.level, tile.index)] = data


def reader_of(store: Store, reads: list[tuple[int, int]] | None = None) -> TileReader:
    """A TileReader over ``store`` that records each read in ``reads``."""

    def read_tile(level: int, index: int) -> bytes:
        if reads is not None:
            reads.append((level, index))
        return store[(level, index)]

    return read_tile


# --- the tiles-300 vector -------------------------------------------------------------------


def test_tiles_300_byte_identical_to_sunlight() -> None:
    tree = TiledTree.empty()
    for i in range(300):
        assert tree.append(leaf_hash(b"record %d" % i)) == i
    changed = tree.changed_tiles()
    assert [tile.path() for tile, _ in changed] == [
        "tile/0/000",
        "tile/0/001.p/44",
        "tile/1/000.p/1",
    ]
    for tile, data in changed:
        assert data == (TILES_300 / tile.path()).read_bytes()
    origin, size, root_b64 = (TILES_300 / "checkpoint").read_text().splitlines()[:3]
    assert (origin, int(size)) == ("rome2026h1.example.org", 300)
    assert tree.size == 300
    assert tree.root() == base64.b64decode(root_b64)
    assert tree.changed_tiles() == []


def test_tiles_300_layout_is_what_tiles_for_size_implies() -> None:
    on_disk = sorted(
        str(path.relative_to(TILES_300))
        for path in (TILES_300 / "tile").rglob("*")
        if path.is_file()
    )
    assert sorted(tile.path() for tile in tiles_for_size(300)) == on_disk
    assert [parse_tile_path(path).path() for path in on_disk] == on_disk


def test_tiles_300_load_and_prove() -> None:
    store: Store = {}
    for path in (TILES_300 / "tile").rglob("*"):
        if path.is_file():
            tile = parse_tile_path(str(path.relative_to(TILES_300)))
            store[(tile.level, tile.index)] = path.read_bytes()
    reads: list[tuple[int, int]] = []
    tree = TiledTree.load(300, reader_of(store, reads))
    assert sorted(reads) == [(0, 1), (1, 0)]
    root = base64.b64decode((TILES_300 / "checkpoint").read_text().splitlines()[2])
    assert tree.root() == root
    entries = [b"record %d" % i for i in range(300)]
    ref = ReferenceTree([ref_leaf_hash(e) for e in entries])
    nodes = TileNodeReader(reader_of(store), 300)
    assert root_at(300, nodes) == root
    for index in (0, 1, 255, 256, 299):
        assert inclusion_proof(index, 300, nodes) == ref.path(index, 300)


# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        (TileID(0, 0, 256), "tile/0/000"),
        (TileID(0, 1, 44), "tile/0/001.p/44"),
        (TileID(1, 0, 1), "tile/1/000.p/1"),
        (TileID(0, 1234067, 256), "tile/0/x001/x234/067"),
        (TileID(0, 1234067, 44), "tile/0/x001/x234/067.p/44"),
        (TileID(2, 1000, 255), "tile/2/x001/000.p/255"),
        (TileID(ENTRIES_LEVEL, 0, 256), "tile/entries/000"),
        (TileID(ENTRIES_LEVEL, 999, 7), "tile/entries/999.p/7"),
        (TileID(63, MAX_TILE_INDEX, 256), "tile/63/x072/x057/x594/x037/x927/935"),
    ],
)
def test_path_examples(tile: TileID, path: str) -> None:
    assert tile.path() == path
    assert parse_tile_path(path) == tile
    assert tile.is_full is (tile.width == TILE_WIDTH)


tile_ids = st.builds(
    TileID,
    st.integers(ENTRIES_LEVEL, 63),
    st.integers(0, 10**7) | st.integers(0, MAX_TILE_INDEX),
    st.integers(1, TILE_WIDTH),
)


@settings(max_examples=300, deadline=None)
@given(tile_ids)
def test_path_round_trip(tile: TileID) -> None:
    assert parse_tile_path(tile.path()) == tile


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile/0/0",
        "tile/0/00",
        "tile/0/0000",
        "tile/00/000",
        "tile/01/000",
        "tile/-1/000",
        "tile/64/000",
        "tile/100/000",
        "tile/0/x000/001",  # leading zero group
        "tile/0/x001",  # the last group has no x
        "tile/0/001/002",  # every group but the last has an x
        "tile/0/x001/x002",
        "tile/0/x1/000",
        "tile/0/X001/000",
        "tile/0/-001",
        "tile/0/001.p/0",
        "tile/0/001.p/256",
        "tile/0/001.p/300",
        "tile/0/001.p/044",
        "tile/0/001.p/",
        "tile/0/001.p",
        "tile/0/001.p/4a",
        "tile/0/001.p/1.p/1",
        "tile/entries/000.p/256",
        "tile/entries/000.p/0",
        "tile/entry/000",
        "tile/0/x072/x057/x594/x037/x927/936",  # index 2**56, beyond any uint64 tree
        "/tile/0/000",
        "tile/0/000/",
        "tile//0/000",
        " tile/0/000",
        "tile/0/000 ",
        "tile/0/000\n",
        "tile/0/\u0660\u0660\u0660",  # Arabic-Indic digits
        "tile/\u0661/000",
        "tile/0/\uff10\uff10\uff10",  # fullwidth digits
        "tile/0/000\x00",
        "checkpoint",
        "tile/0/../0/000",
    ],
)
def test_hostile_paths_refused(path: str) -> None:
    with pytest.raises(MalformedError, match="couldn't parse tile path"):
        parse_tile_path(path)


def test_path_errors_say_why() -> None:
    with pytest.raises(MalformedError, match="partial width 256 must be below 256"):
        parse_tile_path("tile/0/001.p/256")
    with pytest.raises(MalformedError, match="not canonical, expected 'tile/0/001'"):
        parse_tile_path("tile/0/x000/001")
    with pytest.raises(MalformedError, match="level must be between -1 and 63"):
        parse_tile_path("tile/64/000")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="tile/entrsxp.0123456789-\u0660", max_size=40))
def test_any_text_parses_canonically_or_is_refused(path: str) -> None:
    try:
        tile = parse_tile_path(path)
    except MalformedError:
        return
    assert tile.path() == path


@pytest.mark.parametrize(
    ("level", "index", "width"),
    [(-2, 0, 1), (64, 0, 1), (0, -1, 1), (0, MAX_TILE_INDEX + 1, 1), (0, 0, 0), (0, 0, 257)],
)
def test_tile_id_refuses_out_of_range(level: int, index: int, width: int) -> None:
    with pytest.raises(MalformedError, match="couldn't make tile ID"):
        TileID(level, index, width)


# --- geometry -------------------------------------------------------------------------------


def test_spec_example_70000() -> None:
    tiles = tiles_for_size(70_000)
    by_level: dict[int, list[TileID]] = {}
    for tile in tiles:
        by_level.setdefault(tile.level, []).append(tile)
    assert sorted(by_level) == [0, 1, 2]
    assert [t.width for t in by_level[0]] == [256] * 273 + [112]
    assert [t.width for t in by_level[1]] == [256, 17]
    assert [t.width for t in by_level[2]] == [1]
    assert [t.path() for t in tiles_for_size(256)] == ["tile/0/000", "tile/1/000.p/1"]
    assert tiles_for_size(0) == []
    assert bundles_for_size(0) == []
    assert [t.path() for t in bundles_for_size(513)] == [
        "tile/entries/000", "tile/entries/001", "tile/entries/002.p/1",
    ]  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 1 << 22)
    | st.sampled_from([256**k + d for k in (1, 2) for d in (-1, 0, 1)] + [1 << 22, 70_000])
)
def test_tile_width_at_agrees_with_tiles_for_size(size: int) -> None:
    tiles = tiles_for_size(size)
    listed = {(t.level, t.index): t.width for t in tiles}
    assert len(listed) == len(tiles)
    for (level, index), width in listed.items():
        assert tile_width_at(level, index, size) == width
        assert tile_width_at(level, index + 1, size) == listed.get((level, index + 1), 0)
    top = max((level for level, _ in listed), default=-1)
    assert tile_width_at(top + 1, 0, size) == 0
    assert tile_width_at(0, -1, size) == 0
    bundles = bundles_for_size(size)
    assert [(b.index, b.width) for b in bundles] == [
        (t.index, t.width) for t in tiles if t.level == 0
    ]
    for bundle in bundles:
        assert tile_width_at(ENTRIES_LEVEL, bundle.index, size) == bundle.width
    # The leaves a level's tiles cover add up to the tree: each full tile at level L is
    # 256**(L+1) leaves, each hash 256**L.
    for level in range(top + 1):
        hashes = sum(t.width for t in tiles if t.level == level)
        assert hashes == size >> (TILE_HEIGHT * level)


# --- entry bundles --------------------------------------------------------------------------

entries_lists = st.lists(st.binary(max_size=300), min_size=1, max_size=TILE_WIDTH)


@settings(max_examples=100, deadline=None)
@given(entries_lists)
def test_bundle_round_trip(entries: list[bytes]) -> None:
    data = encode_bundle(entries)
    assert len(data) == sum(2 + len(e) for e in entries)
    assert decode_bundle(data) == entries
    assert decode_bundle(data, expected_count=len(entries)) == entries
    with pytest.raises(MalformedError, match=f"expected {len(entries) + 1}"):
        decode_bundle(data, expected_count=len(entries) + 1)


@settings(max_examples=100, deadline=None)
@given(entries_lists, st.data())
def test_bundle_truncation_and_trailing_bytes_refused(
    entries: list[bytes], data: st.DataObject
) -> None:
    encoded = encode_bundle(entries)
    boundaries = {0}
    offset = 0
    for entry in entries:
        offset += 2 + len(entry)
        boundaries.add(offset)
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    if cut in boundaries:
        # Cut exactly between entries: well-formed, but fewer entries than the tree implies.
        with pytest.raises(MalformedError):
            decode_bundle(encoded[:cut], expected_count=len(entries))
    else:
        with pytest.raises(MalformedError, match="offset"):
            decode_bundle(encoded[:cut])
    trailing = data.draw(st.binary(min_size=1, max_size=3), label="trailing")
    with pytest.raises(MalformedError, match="offset"):
        decode_bundle(encoded + trailing, expected_count=len(entries))


def test_bundle_limits() -> None:
    biggest = b"x" * MAX_ENTRY_SIZE
    assert decode_bundle(encode_bundle([biggest])) == [biggest]
    assert encode_bundle([b""]) == b"\x00\x00"
    with pytest.raises(MalformedError, match="65536 bytes, the limit is 65535"):
        encode_bundle([b"ok", b"x" * (MAX_ENTRY_SIZE + 1)])
    with pytest.raises(MalformedError, match="0 entries"):
        encode_bundle([])
    with pytest.raises(MalformedError, match="257 entries"):
        encode_bundle([b""] * 257)
    with pytest.raises(MalformedError, match="empty"):
        decode_bundle(b"")
    with pytest.raises(MalformedError, match="at most 256"):
        decode_bundle(b"\x00\x00" * 257)
    with pytest.raises(MalformedError, match="truncated length prefix at offset 4"):
        decode_bundle(b"\x00\x02ab\x00")
    with pytest.raises(MalformedError, match="entry 1 at offset 6 needs 5 bytes, only 2 remain"):
        decode_bundle(b"\x00\x02ab\x00\x05cd")


# --- TiledTree against the reference --------------------------------------------------------


def batches(total: int) -> st.SearchStrategy[list[int]]:
    """Random splits of ``total`` appends into batches (a batch of 0 is a no-op commit)."""
    return st.lists(st.integers(0, 300), max_size=40).map(lambda sizes: _fit(sizes, total))


def _fit(sizes: list[int], total: int) -> list[int]:
    out = []
    left = total
    for size in sizes:
        take = min(size, left)
        out.append(take)
        left -= take
    out.append(left)
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(0, MAX_LEAVES).flatmap(lambda n: st.tuples(st.just(n), batches(n))))
def test_batched_appends_produce_the_from_scratch_tiles(case: tuple[int, list[int]]) -> None:
    total, split = case
    tree = TiledTree.empty()
    store: Store = {}
    size = 0
    for batch in split:
        for _ in range(batch):
            tree.append(LEAVES[size])
            size += 1
        apply(store, tree.changed_tiles())
        assert store == expected_tiles(size)
        assert tree.root() == REF.root(size)
    assert size == total


@settings(max_examples=30, deadline=None)
@given(st.integers(0, MAX_LEAVES), st.integers(0, MAX_LEAVES))
def test_load_then_append_equals_straight_append(a: int, b: int) -> None:
    middle, total = min(a, b), max(a, b)
    straight = TiledTree.empty()
    for i in range(total):
        straight.append(LEAVES[i])
    store: Store = {}
    first = TiledTree.empty()
    for i in range(middle):
        first.append(LEAVES[i])
    apply(store, first.changed_tiles())

    reads: list[tuple[int, int]] = []
    resumed = TiledTree.load(middle, reader_of(store, reads))
    assert len(reads) == len(set(reads)) <= 2  # one read per non-empty edge level
    assert resumed.size == middle
    assert resumed.root() == REF.root(middle)
    for i in range(middle, total):
        resumed.append(LEAVES[i])
    apply(store, resumed.changed_tiles())
    assert resumed.root() == straight.root() == REF.root(total)
    straight_store: Store = {}
    apply(straight_store, straight.changed_tiles())
    assert store == straight_store


@settings(max_examples=40, deadline=None)
@given(st.data(), st.integers(1, MAX_LEAVES))
def test_tile_node_reader_proofs_match_reference(data: st.DataObject, size: int) -> None:
    store = expected_tiles(MAX_LEAVES)  # a store that has grown past `size`: wider tiles
    nodes = TileNodeReader(reader_of(store), size)
    assert nodes.size == size
    assert root_at(size, nodes) == REF.root(size)
    for _ in range(5):
        index = data.draw(st.integers(0, size - 1), label="index")
        assert inclusion_proof(index, size, nodes) == REF.path(index, size)
        size1 = data.draw(st.integers(1, size), label="size1")
        assert consistency_proof(size1, size, nodes) == (
            REF.proof(size1, size) if size1 < size else []
        )
    exact = TileNodeReader(reader_of(expected_tiles(size)), size, TileCache(1))
    index = data.draw(st.integers(0, size - 1), label="index on exact tiles")
    assert inclusion_proof(index, size, exact) == REF.path(index, size)


def test_every_node_from_tiles() -> None:
    size = MAX_LEAVES
    nodes = TileNodeReader(reader_of(expected_tiles(size)), size)
    ids = [
        NodeID(level, index) for level in range(size.bit_length()) for index in range(size >> level)
    ]
    assert nodes(ids) == [REF.node(n.level, n.index) for n in ids]


def test_full_level_one_tile() -> None:
    """65,536 + 300 leaves: a full level-1 tile, whose hashes are roots of full level-0 tiles,
    checked against an independent level-by-level build."""
    size = TILE_WIDTH**2 + 300
    leaves = [i.to_bytes(32, "big") for i in range(size)]
    tree = TiledTree.empty()
    for leaf in leaves[: TILE_WIDTH**2 - 1]:
        tree.append(leaf)
    store: Store = {}
    apply(store, tree.changed_tiles())
    for leaf in leaves[TILE_WIDTH**2 - 1 :]:
        tree.append(leaf)
    changed = tree.changed_tiles()
    assert [t.path() for t, _ in changed] == [
        "tile/0/255", "tile/0/256", "tile/0/257.p/44",
        "tile/1/000", "tile/1/001.p/1", "tile/2/000.p/1",
    ]  # fmt: skip
    apply(store, changed)
    row = leaves
    levels = [row]
    while len(row) > 1:
        row = [
            hashlib.sha256(b"\x01" + row[i] + row[i + 1]).digest()
            for i in range(0, len(row) - 1, 2)
        ]
        levels.append(row)
    for tile in tiles_for_size(size):
        level_row = levels[TILE_HEIGHT * tile.level]
        start = tile.index * TILE_WIDTH
        assert store[(tile.level, tile.index)] == b"".join(level_row[start : start + tile.width])
    assert TiledTree.load(size, reader_of(store)).root() == tree.root()
    nodes = TileNodeReader(reader_of(store), size)
    assert root_at(size, nodes) == tree.root()
    assert nodes([NodeID(16, 0)]) == [levels[16][0]]


# --- TileNodeReader: caching, refusals, hostile tiles ---------------------------------------


def test_each_tile_read_once_per_call_then_cached() -> None:
    store = expected_tiles(600)  # tiles 0/000, 0/001 full, 0/002.p/88, 1/000.p/2
    reads: list[tuple[int, int]] = []
    nodes = TileNodeReader(reader_of(store, reads), 600)
    ask = [NodeID(3, 0), NodeID(0, 5), NodeID(8, 0), NodeID(0, 520), NodeID(9, 0)]
    first = nodes(ask)
    assert first == [REF.node(n.level, n.index) for n in ask]
    assert sorted(reads) == [(0, 0), (0, 2), (1, 0)]
    reads.clear()
    assert nodes(ask) == first
    assert reads == []


def test_lru_evicts_least_recently_used() -> None:
    store = expected_tiles(600)
    reads: list[tuple[int, int]] = []
    nodes = TileNodeReader(reader_of(store, reads), 600, TileCache(2))
    for index in (0, 300, 0, 520, 300, 0):  # tiles 0, 1, 0, 2 (evicts 1), 1 (evicts 0), 0
        nodes([NodeID(0, index)])
    assert reads == [(0, 0), (0, 1), (0, 2), (0, 1), (0, 0)]


def test_shared_cache_serves_every_size_correctly() -> None:
    cache = TileCache(16)
    reads: list[tuple[int, int]] = []
    store: Store = {}
    ask = {
        size: [NodeID(0, 299), NodeID(2, 64), NodeID(5, 8), NodeID(6, 4)] if size >= 320 else
        [NodeID(0, 299), NodeID(2, 64), NodeID(3, 36)]
        for size in (300, 400)
    }  # fmt: skip
    # The store holds the 300-leaf tree: tile 0/001 is 44 wide, and cached at that width.
    store.update(expected_tiles(300))
    assert TileNodeReader(reader_of(store, reads), 300, cache)(ask[300]) == [
        REF.node(n.level, n.index) for n in ask[300]
    ]
    assert reads == [(0, 1)]
    # The log grows: a reader of the 400-leaf tree must not be served the 44-wide tile.
    store.update(expected_tiles(400))
    reads.clear()
    assert TileNodeReader(reader_of(store, reads), 400, cache)(ask[400]) == [
        REF.node(n.level, n.index) for n in ask[400]
    ]
    assert reads == [(0, 1)]
    # Once the tile is full, every size's reader uses it, with no read.
    store.update(expected_tiles(600))
    reads.clear()
    TileNodeReader(reader_of(store, reads), 600, cache)([NodeID(7, 3)])
    assert reads == [(0, 1)]
    reads.clear()
    for size in (300, 400):
        assert TileNodeReader(reader_of(store, reads), size, cache)(ask[size]) == [
            REF.node(n.level, n.index) for n in ask[size]
        ]
    assert reads == []
    assert len(cache) == 3


def test_nodes_outside_the_tree_refused_before_reading() -> None:
    reads: list[tuple[int, int]] = []
    nodes = TileNodeReader(reader_of(expected_tiles(300), reads), 300)
    for node in (NodeID(0, 300), NodeID(2, 75), NodeID(9, 0), NodeID(-1, 0), NodeID(0, -1)):
        with pytest.raises(RefusedError, match="tree of size 300"):
            nodes([NodeID(0, 0), node])
    assert reads == []


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (b"\x00" * 31, "31 bytes"),
        (b"\x00" * (32 * 43), "1376 bytes"),  # fewer hashes than size 300 implies
        (b"\x00" * (32 * 257), "8224 bytes"),
        (b"\x00" * (32 * 44 + 1), "1409 bytes"),
    ],
)
def test_malformed_tiles_refused(stored: bytes, message: str) -> None:
    store = expected_tiles(300)
    store[(0, 1)] = stored
    with pytest.raises(MalformedError, match=message):
        TileNodeReader(reader_of(store), 300)([NodeID(0, 299)])
    with pytest.raises(MalformedError, match=message):
        TiledTree.load(300, reader_of(store))


def test_load_empty_and_refusals() -> None:
    def never(level: int, index: int) -> bytes:
        raise AssertionError("read a tile for the empty tree")

    empty = TiledTree.load(0, never)
    assert empty.size == 0
    assert empty.root() == CompactRange().root()
    with pytest.raises(MalformedError):
        TiledTree.load(-1, never)
    with pytest.raises(MalformedError, match="need at least 1"):
        TileCache(0)
    with pytest.raises(MalformedError, match="31 bytes"):
        TiledTree.empty().append(b"\x00" * 31)


def test_load_from_a_store_ahead_of_the_checkpoint() -> None:
    """Tiles already written for a bigger tree (a crash after tiles, before the checkpoint; a
    mirror ahead of us) hold the smaller tree as a prefix: load must use only that prefix."""
    ahead = expected_tiles(MAX_LEAVES)
    tree = TiledTree.load(300, reader_of(ahead))
    assert tree.root() == REF.root(300)
    store = expected_tiles(300)
    for i in range(300, 700):
        tree.append(LEAVES[i])
    apply(store, tree.changed_tiles())
    assert store == expected_tiles(700)


def test_load_reads_only_edge_tiles() -> None:
    size = TILE_WIDTH**2 + 256 * 3 + 5
    store: Store = {}
    tree = TiledTree.empty()
    for i in range(size):
        tree.append(i.to_bytes(32, "big"))
    apply(store, tree.changed_tiles())
    reads: list[tuple[int, int]] = []
    assert TiledTree.load(size, reader_of(store, reads)).root() == tree.root()
    assert sorted(reads) == [(0, 259), (1, 1), (2, 0)]
