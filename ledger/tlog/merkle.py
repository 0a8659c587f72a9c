"""RFC 6962 / RFC 9162 §2.1 Merkle tree hashing, proof generation and proof verification.

The tree over leaves ``D[0:n]`` is the one RFC 9162 §2.1.1 defines: ``MTH({}) = SHA-256()``,
``MTH({d}) = SHA-256(0x00 || d)``, and for ``n > 1`` with ``k`` the largest power of two below
``n``, ``MTH(D[0:n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.

Every hash a proof is built from is the root of a *perfect* subtree, named by a :class:`NodeID`
``(level, index)`` and covering leaves ``[index << level, (index + 1) << level)``. A log stores
only those: hashes that involve the ragged right edge of a tree are recomputed from them when a
proof or a root needs one. Proof generation never reads storage itself; it asks a
:data:`NodeReader` for every node it needs in one call, so that a database or a tile store can
batch the lookups.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 with the strictness of the
transparency-dev/merkle vectors: every hash is exactly 32 bytes, the proof has exactly the length
the sizes imply, ``index < size`` and ``size1 <= size2``. ``root_from_inclusion_proof`` computes;
``verify_inclusion`` and ``verify_consistency`` compare and raise :class:`ProofError`, naming both
roots in hex, when the comparison fails. They never return a verdict a caller could forget to
check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ledger.errors import MalformedError, ProofError, StorageError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "MAX_TREE_SIZE",
    "NODE_PREFIX",
    "CompactRange",
    "NodeID",
    "NodeReader",
    "NodeVisitor",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_at",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

LEAF_PREFIX = b"\x00"
"""Domain separator prepended to leaf data before hashing (RFC 9162 §2.1.1)."""

NODE_PREFIX = b"\x01"
"""Domain separator prepended to two child hashes before hashing (RFC 9162 §2.1.1)."""

HASH_SIZE = 32
"""Size in bytes of every tree hash (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""``MTH({})``: the root of the tree with no leaves."""

MAX_TREE_SIZE = (1 << 64) - 1
"""Largest tree size (and so largest leaf index + 1) accepted: sizes are uint64 on the wire."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Return ``SHA-256(0x00 || data)``, the hash of one leaf whose entry data is ``data``."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA-256(0x01 || left || right)``, the hash of an interior node.

    The caller guarantees both children are :data:`HASH_SIZE` bytes; this is the hot path and
    does not check.
    """
    return _sha256(NODE_PREFIX + left + right).digest()


class NodeID(NamedTuple):
    """A perfect subtree: the ``2**level`` leaves ``[index << level, (index + 1) << level)``.

    Level 0 nodes are leaves (their hash is the leaf hash). A node is contained in a tree of
    ``size`` leaves iff ``(index + 1) << level <= size``. An immutable, hashable tuple: the
    cheapest object Python builds, and a proof needs a few dozen.
    """

    level: int
    # The field deliberately shadows the tuple.index method: "index" is the name RFC 9162 and
    # every tlog implementation give a node's position within its level.
    index: int  # type: ignore[assignment]


NodeReader = Callable[[Sequence[NodeID]], Sequence[bytes]]
"""Returns the 32-byte hashes of the given perfect subtrees, in the order asked.

Contract: called once per proof or root, with every node it needs; every node asked for is
contained in the tree the caller is proving against. A reader that cannot produce a node raises
a :class:`~ledger.errors.LedgerError` (a :class:`~ledger.errors.StorageError` for a store).
"""

NodeVisitor = Callable[[int, int, bytes], None]
"""``visit(level, index, hash)``: told about each perfect subtree a :class:`CompactRange` forms."""


def _check_size(size: int, what: str) -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise MalformedError(f"couldn't use {what} {size}: must be between 0 and 2**64 - 1")


def _read_checked(read_nodes: NodeReader, ids: Sequence[NodeID]) -> Sequence[bytes]:
    """Call ``read_nodes`` once and hold it to its contract: one 32-byte hash per node asked."""
    hashes = read_nodes(ids)
    if len(hashes) != len(ids):
        raise StorageError(
            f"couldn't read tree nodes: asked for {len(ids)} nodes, got {len(hashes)} hashes"
        )
    for position, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            level, index = ids[position]
            raise StorageError(
                f"couldn't read tree node (level {level}, index {index}): "
                f"got a {len(h)}-byte hash, want {HASH_SIZE}"
            )
    return hashes


def _fold_right(hashes: Sequence[bytes], start: int, stop: int) -> bytes:
    """Hash the adjacent perfect subtrees ``hashes[start:stop]`` (left to right, strictly
    decreasing in size) into the root of the range they cover, as RFC 6962 does at the right
    edge: the rightmost pair is combined first."""
    sha = _sha256
    h = hashes[stop - 1]
    for i in range(stop - 2, start - 1, -1):
        h = sha(NODE_PREFIX + hashes[i] + h).digest()
    return h


class CompactRange:
    """The frontier of a tree: the perfect subtree roots that make up leaves ``[0, size)``.

    Invariant: ``hashes`` holds exactly one hash per set bit of ``size``, left to right (largest
    subtree first), with the node IDs :meth:`node_ids` gives. That is all a log writer needs to
    append leaves and compute the root in ``O(log n)`` time and space.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Build the frontier of a tree of ``size`` leaves from its perfect subtree roots.

        ``hashes`` are the hashes of :meth:`node_ids` ``(size)``, in that order. Raises
        :class:`MalformedError` if their number or their lengths do not fit ``size``.
        """
        _check_size(size, "tree size")
        if len(hashes) != size.bit_count():
            raise MalformedError(
                f"couldn't build compact range of size {size}: got {len(hashes)} hashes, "
                f"want {size.bit_count()}"
            )
        for position, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise MalformedError(
                    f"couldn't build compact range of size {size}: hash {position} is "
                    f"{len(h)} bytes, want {HASH_SIZE}"
                )
        self._size = size
        self._hashes = list(hashes)

    @staticmethod
    def node_ids(size: int) -> list[NodeID]:
        """The perfect subtrees whose concatenation is leaves ``[0, size)``, left to right.

        One per set bit of ``size``, from the highest bit down; empty for ``size == 0``.
        """
        _check_size(size, "tree size")
        ids = []
        begin = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                ids.append(NodeID(level, begin >> level))
                begin += 1 << level
        return ids

    @property
    def size(self) -> int:
        """The number of leaves the range covers."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The hashes of :meth:`node_ids` ``(size)``, left to right (a copy)."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes, visit: NodeVisitor | None = None) -> None:
        """Add the leaf with hash ``leaf_hash`` at index ``size``. ``O(log n)`` worst case,
        one hash amortised.

        If ``visit`` is given it is called as ``visit(level, index, hash)`` for the new leaf
        (level 0) and then for every perfect subtree the append completes, bottom up. Raises
        :class:`MalformedError` if ``leaf_hash`` is not 32 bytes or the tree is full.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise MalformedError(
                f"couldn't append leaf hash {leaf_hash.hex()}: {len(leaf_hash)} bytes, "
                f"want {HASH_SIZE}"
            )
        size = self._size
        if size == MAX_TREE_SIZE:
            raise MalformedError(f"couldn't append to tree of size {size}: the tree is full")
        hashes = self._hashes
        sha = _sha256
        h = leaf_hash
        if visit is not None:
            visit(0, size, h)
        level = 0
        # Each trailing one bit of size is a perfect subtree of that level at the right end of
        # the frontier; the new leaf completes it into one of the next level.
        while size >> level & 1:
            h = sha(NODE_PREFIX + hashes.pop() + h).digest()
            level += 1
            if visit is not None:
                visit(level, size >> level, h)
        hashes.append(h)
        self._size = size + 1

    def root(self) -> bytes:
        """``MTH(D[0:size])``; :data:`EMPTY_ROOT` for the empty tree."""
        if not self._hashes:
            return EMPTY_ROOT
        return _fold_right(self._hashes, 0, len(self._hashes))


def root_at(size: int, read_nodes: NodeReader) -> bytes:
    """Return ``MTH(D[0:size])`` from the tree's perfect subtrees, read in one call.

    ``O(log n)`` nodes read and hashes computed. :data:`EMPTY_ROOT` for ``size == 0`` (the
    reader is not called).
    """
    ids = CompactRange.node_ids(size)
    if not ids:
        return EMPTY_ROOT
    hashes = _read_checked(read_nodes, ids)
    return _fold_right(hashes, 0, len(hashes))


def _path_nodes(index: int, level: int, size: int, ids: list[NodeID]) -> tuple[int, int]:
    """Append to ``ids`` the nodes of the audit path of leaf ``index`` in a tree of ``size``
    leaves, from ``level`` upwards; return the ``(start, stop)`` run of ``ids`` that folds into
    one proof hash, or ``(0, 0)`` when every node is a proof hash by itself.

    Requires ``0 <= index < size``. Below ``inner`` (the level where the paths to ``index`` and
    to ``size - 1`` meet) the siblings are perfect subtrees, except possibly the topmost one,
    which contains leaf ``size - 1``: when ``size`` cuts it short it is the root of the ragged
    range ``[begin, size)``, spelled as that range's perfect subtrees. That is the only node of
    a path that is not perfect. Above ``inner`` every sibling is a perfect left subtree, one per
    set bit of ``index >> inner``.
    """
    append = ids.append
    ragged = (0, 0)
    inner = (index ^ (size - 1)).bit_length()
    for lvl in range(level, inner - 1):
        append(NodeID(lvl, (index >> lvl) ^ 1))
    if inner > level:
        lvl = inner - 1
        sibling = (index >> lvl) | 1
        begin = sibling << lvl
        if begin + (1 << lvl) <= size:
            append(NodeID(lvl, sibling))
        else:
            first = len(ids)
            rest = size - begin
            for sub in range(rest.bit_length() - 1, -1, -1):
                if rest >> sub & 1:
                    append(NodeID(sub, begin >> sub))
                    begin += 1 << sub
            if len(ids) - first > 1:
                ragged = (first, len(ids))
    upper = index >> inner
    lvl = inner
    while upper:
        if upper & 1:
            append(NodeID(lvl, (index >> lvl) ^ 1))
        upper >>= 1
        lvl += 1
    return ragged


def _assemble(read_nodes: NodeReader, ids: list[NodeID], ragged: tuple[int, int]) -> list[bytes]:
    """Read ``ids`` in one call; fold the ``ragged`` run of them into one proof hash."""
    if not ids:
        return []
    hashes = _read_checked(read_nodes, ids)
    start, stop = ragged
    if stop == 0:
        return list(hashes)
    return [*hashes[:start], _fold_right(hashes, start, stop), *hashes[stop:]]


def inclusion_proof(index: int, size: int, read_nodes: NodeReader) -> list[bytes]:
    """Return the RFC 9162 §2.1.3.1 inclusion proof (audit path) of leaf ``index`` in the tree
    of ``size`` leaves, ordered from the leaf's sibling up to the root's child.

    Reads every node it needs in one ``read_nodes`` call (at most ``2 * log2(size)`` nodes).
    Raises :class:`MalformedError` unless ``0 <= index < size``.
    """
    _check_size(size, "tree size")
    if not 0 <= index < size:
        raise MalformedError(
            f"couldn't build inclusion proof for index {index} in tree of size {size}: "
            "the index must be below the size"
        )
    ids: list[NodeID] = []
    ragged = _path_nodes(index, 0, size, ids)
    return _assemble(read_nodes, ids, ragged)


def consistency_proof(size1: int, size2: int, read_nodes: NodeReader) -> list[bytes]:
    """Return the RFC 9162 §2.1.4.1 consistency proof from the tree of ``size1`` leaves to the
    tree of ``size2`` leaves.

    The proof is empty when ``size1 == size2`` or ``size1 == 0``. Otherwise it is the inclusion
    path of leaf ``size1 - 1`` in the bigger tree from the level of the largest perfect subtree
    ending at ``size1``, preceded by that subtree's root unless it is the whole old tree
    (``size1`` a power of two). Reads every node it needs in one ``read_nodes`` call.
    Raises :class:`MalformedError` unless ``0 <= size1 <= size2``.
    """
    _check_size(size2, "tree size")
    if not 0 <= size1 <= size2:
        raise MalformedError(
            f"couldn't build consistency proof from size {size1} to size {size2}: "
            "need 0 <= size1 <= size2"
        )
    if size1 in (0, size2):
        return []
    shift = (size1 & -size1).bit_length() - 1
    last = size1 - 1
    ids: list[NodeID] = []
    if size1 != 1 << shift:
        ids.append(NodeID(shift, last >> shift))
    ragged = _path_nodes(last, shift, size2, ids)
    return _assemble(read_nodes, ids, ragged)


def _check_hash(value: bytes, what: str, context: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(
            f"couldn't verify {context}: {what} is {len(value)} bytes, want {HASH_SIZE}"
        )


def _check_proof_hashes(proof: Sequence[bytes], context: str) -> None:
    for position, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(
                f"couldn't verify {context}: proof hash {position} is {len(h)} bytes, "
                f"want {HASH_SIZE}"
            )


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """Compute the root that ``proof`` implies for leaf ``index`` with hash ``leaf_hash`` in a
    tree of ``size`` leaves (RFC 9162 §2.1.3.2).

    Preconditions, each refused with :class:`ProofError`: ``0 <= index < size <= 2**64 - 1``;
    ``leaf_hash`` and every proof hash are exactly 32 bytes; ``len(proof)`` is exactly the
    audit path length for ``(index, size)``. Hashing cost: ``len(proof)`` SHA-256 calls.
    """
    context = f"inclusion of leaf {index} in tree of size {size}"
    if not 0 <= index < size <= MAX_TREE_SIZE:
        raise ProofError(f"couldn't verify {context}: need 0 <= index < size <= 2**64 - 1")
    _check_hash(leaf_hash, "leaf hash", context)
    inner = (index ^ (size - 1)).bit_length()
    want = inner + (index >> inner).bit_count()
    if len(proof) != want:
        raise ProofError(f"couldn't verify {context}: proof has {len(proof)} hashes, want {want}")
    _check_proof_hashes(proof, context)
    sha = _sha256
    h = leaf_hash
    for level in range(inner):
        if index >> level & 1:
            h = sha(NODE_PREFIX + proof[level] + h).digest()
        else:
            h = sha(NODE_PREFIX + h + proof[level]).digest()
    for level in range(inner, want):
        h = sha(NODE_PREFIX + proof[level] + h).digest()
    return h


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``proof`` shows leaf ``index`` with hash ``leaf_hash`` is in the tree of
    ``size`` leaves whose root is ``root``; return ``None`` or raise :class:`ProofError`.

    Preconditions as :func:`root_from_inclusion_proof`, plus ``root`` is 32 bytes. On a mismatch
    the error names the computed and the expected root in hex. Note that the size is bound by
    the signed checkpoint that carries ``root``, not by the proof alone.
    """
    context = f"inclusion of leaf {index} in tree of size {size}"
    _check_hash(root, "root", context)
    computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if computed != root:
        raise ProofError(
            f"couldn't verify {context}: computed root {computed.hex()}, expected root {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that ``proof`` shows the tree of ``size1`` leaves with root ``root1`` is a prefix
    of the tree of ``size2`` leaves with root ``root2`` (RFC 9162 §2.1.4.2); return ``None`` or
    raise :class:`ProofError`.

    Refused: ``size1 > size2``; a size beyond ``2**64 - 1``; any root or proof hash that is not
    32 bytes; a proof whose length is not exactly the one the sizes imply. The degenerate cases
    need an empty proof: ``size1 == size2`` holds iff ``root1 == root2`` (and, at size 0, both
    are :data:`EMPTY_ROOT`); ``size1 == 0 < size2`` holds iff ``root1`` is :data:`EMPTY_ROOT`,
    as the empty tree is a prefix of every tree. On a mismatch the error names the computed and
    the expected root in hex.
    """
    context = f"consistency from size {size1} to size {size2}"
    if not 0 <= size1 <= size2 <= MAX_TREE_SIZE:
        raise ProofError(f"couldn't verify {context}: need 0 <= size1 <= size2 <= 2**64 - 1")
    _check_hash(root1, "root1", context)
    _check_hash(root2, "root2", context)
    _check_proof_hashes(proof, context)
    if size1 in (0, size2):
        if proof:
            raise ProofError(
                f"couldn't verify {context}: proof has {len(proof)} hashes, want an empty proof"
            )
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise ProofError(
                f"couldn't verify {context}: root1 {root1.hex()} is not the empty tree's root "
                f"{EMPTY_ROOT.hex()}"
            )
        if size1 == size2 and root1 != root2:
            raise ProofError(
                f"couldn't verify {context}: equal sizes but root1 {root1.hex()} differs from "
                f"root2 {root2.hex()}"
            )
        return

    # The old tree's right edge ends in a perfect subtree of 2**shift leaves; the proof is
    # that subtree's root (implicit when it is the whole old tree) followed by its audit path
    # in the new tree. Hashing the path with only the left siblings rebuilds root1, with all
    # of them root2.
    last = size1 - 1
    shift = (size1 & -size1).bit_length() - 1
    inner_total = (last ^ (size2 - 1)).bit_length()
    inner = inner_total - shift
    border = (last >> inner_total).bit_count()
    start = 0 if size1 == 1 << shift else 1
    want = start + inner + border
    if len(proof) != want:
        raise ProofError(f"couldn't verify {context}: proof has {len(proof)} hashes, want {want}")
    seed = root1 if start == 0 else proof[0]
    sha = _sha256
    mask = last >> shift
    hash1 = seed
    hash2 = seed
    for i in range(inner):
        sibling = proof[start + i]
        if mask >> i & 1:
            hash1 = sha(NODE_PREFIX + sibling + hash1).digest()
            hash2 = sha(NODE_PREFIX + sibling + hash2).digest()
        else:
            hash2 = sha(NODE_PREFIX + hash2 + sibling).digest()
    for i in range(start + inner, want):
        sibling = proof[i]
        hash1 = sha(NODE_PREFIX + sibling + hash1).digest()
        hash2 = sha(NODE_PREFIX + sibling + hash2).digest()
    if hash1 != root1:
        raise ProofError(
            f"couldn't verify {context}: computed root1 {hash1.hex()}, expected root1 {root1.hex()}"
        )
    if hash2 != root2:
        raise ProofError(
            f"couldn't verify {context}: computed root2 {hash2.hex()}, expected root2 {root2.hex()}"
        )
