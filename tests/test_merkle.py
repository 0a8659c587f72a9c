"""Tests for ledger.tlog.merkle: the transparency-dev/merkle proof corpus, a cross-check against the
RFC 6962 reference in tests/merkle_reference.py for every tree size up to 300, and property tests
that every generated proof verifies and every mutation of it fails."""

from __future__ import annotations

import base64
import contextlib
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from merkle_reference import ReferenceTree, ref_leaf_hash

from ledger.errors import MalformedError, ProofError, StorageError
from ledger.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    CompactRange,
    NodeID,
    NodeReader,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_at,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from tests.support import VECTORS

MERKLE_VECTORS = VECTORS / "merkle"

MAX_LEAVES = 2048
LEAVES = [ref_leaf_hash(b"leaf %d" % i) for i in range(MAX_LEAVES)]
REF = ReferenceTree(LEAVES)


def reader_for(size: int, calls: list[Sequence[NodeID]] | None = None) -> NodeReader:
    """A NodeReader over REF's first ``size`` leaves that holds callers to the contract: every
    node asked for must be a perfect subtree contained in the tree of ``size`` leaves."""

    def read(ids: Sequence[NodeID]) -> list[bytes]:
        if calls is not None:
            calls.append(list(ids))
        for node in ids:
            assert node.level >= 0
            assert node.index >= 0
            assert (node.index + 1) << node.level <= size, (node, size)
        return [REF.node(node.level, node.index) for node in ids]

    return read


# --- hashing and constants ------------------------------------------------------------------


def test_constants_are_rfc6962() -> None:
    assert LEAF_PREFIX == b"\x00"
    assert NODE_PREFIX == b"\x01"
    assert HASH_SIZE == 32
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == ref_leaf_hash(b"")
    assert node_hash(b"a" * 32, b"b" * 32) != node_hash(b"b" * 32, b"a" * 32)


CLASSIC_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                  "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
CLASSIC_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_classic_eight_leaf_roots() -> None:
    frontier = CompactRange()
    assert frontier.root().hex() == CLASSIC_ROOTS[0]
    for size, data in enumerate(CLASSIC_LEAVES, start=1):
        frontier.append(leaf_hash(bytes.fromhex(data)))
        assert frontier.root().hex() == CLASSIC_ROOTS[size]


# --- the transparency-dev/merkle corpus -----------------------------------------------------

# The corpus (transparency-dev/merkle) accepts equal sizes with equal roots of any length. We
# refuse any root that is not 32 bytes, as the design demands: a 12-byte "root" cannot be a
# SHA-256 tree head, and accepting it would hide a caller passing the wrong value.
STRICTER_THAN_CORPUS = {"consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}

VECTOR_FILES = sorted(
    path
    for pattern in ("inclusion*/**/*.json", "consistency*/**/*.json")
    for path in MERKLE_VECTORS.glob(pattern)
)


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _run_vector(kind: str, vector: dict[str, Any]) -> None:
    proof = [_b64(h) for h in vector["proof"] or []]
    if kind == "inclusion":
        verify_inclusion(
            vector["leafIdx"], vector["treeSize"], _b64(vector["leafHash"]), proof,
            _b64(vector["root"]),
        )  # fmt: skip
    else:
        verify_consistency(
            vector["size1"], vector["size2"], proof, _b64(vector["root1"]), _b64(vector["root2"])
        )


def test_corpus_is_present_and_shaped_as_documented() -> None:
    # A missing or partial mount must not pass silently: 196 files, 12 valid cases (the happy
    # paths of inclusion/0-4 and consistency/0-4, single-entry's match, consistency/additional's
    # equal sizes), never two valid cases in one folder.
    assert len(VECTOR_FILES) == 196
    valid = [path for path in VECTOR_FILES if not json.loads(path.read_text())["wantErr"]]
    assert len(valid) == 12
    assert len({path.parent for path in valid}) == 12


@pytest.mark.parametrize(
    "path", VECTOR_FILES, ids=[str(p.relative_to(MERKLE_VECTORS)) for p in VECTOR_FILES]
)
def test_corpus_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    relative = str(path.relative_to(MERKLE_VECTORS))
    kind = relative.split("/", maxsplit=1)[0]
    if vector["wantErr"] or relative in STRICTER_THAN_CORPUS:
        with pytest.raises(ProofError):
            _run_vector(kind, vector)
    else:
        _run_vector(kind, vector)
        if kind == "inclusion":
            computed = root_from_inclusion_proof(
                vector["leafIdx"], vector["treeSize"], _b64(vector["leafHash"]),
                [_b64(h) for h in vector["proof"] or []],
            )  # fmt: skip
            assert computed == _b64(vector["root"])


def test_stricter_than_corpus_case_is_still_in_the_corpus() -> None:
    for relative in STRICTER_THAN_CORPUS:
        vector = json.loads((MERKLE_VECTORS / relative).read_text())
        assert vector["wantErr"] is False
        assert len(_b64(vector["root1"])) != HASH_SIZE


# --- cross-check against the reference for every size up to 300 -----------------------------


def test_roots_match_reference_for_every_size() -> None:
    frontier = CompactRange()
    for size in range(301):
        assert frontier.root() == REF.root(size)
        assert root_at(size, reader_for(size)) == REF.root(size)
        assert CompactRange(size, frontier.hashes).root() == REF.root(size)
        assert frontier.hashes == tuple(
            REF.node(n.level, n.index) for n in CompactRange.node_ids(size)
        )
        frontier.append(LEAVES[size])


def _sample(values: range, every_below: int, count: int, rng: random.Random) -> list[int]:
    if len(values) <= every_below:
        return list(values)
    return sorted({values[0], values[-1], *rng.sample(values, count)})


def test_inclusion_proofs_match_reference_for_every_size() -> None:
    rng = random.Random(6962)
    for size in range(1, 301):
        root = REF.root(size)
        for index in _sample(range(size), 64, 24, rng):
            calls: list[Sequence[NodeID]] = []
            proof = inclusion_proof(index, size, reader_for(size, calls))
            assert proof == REF.path(index, size), (index, size)
            assert len(calls) == (1 if proof else 0)
            verify_inclusion(index, size, LEAVES[index], proof, root)


def test_consistency_proofs_match_reference_for_every_size() -> None:
    rng = random.Random(9162)
    for size2 in range(1, 301):
        root2 = REF.root(size2)
        for size1 in _sample(range(size2 + 1), 48, 16, rng):
            calls: list[Sequence[NodeID]] = []
            proof = consistency_proof(size1, size2, reader_for(size2, calls))
            want = [] if size1 == 0 else REF.proof(size1, size2)
            assert proof == want, (size1, size2)
            assert len(calls) == (1 if proof else 0)
            verify_consistency(size1, size2, proof, REF.root(size1), root2)


# --- CompactRange ---------------------------------------------------------------------------


def test_node_ids_examples() -> None:
    assert CompactRange.node_ids(0) == []
    assert CompactRange.node_ids(1) == [NodeID(0, 0)]
    assert CompactRange.node_ids(6) == [NodeID(2, 0), NodeID(1, 2)]
    assert CompactRange.node_ids(7) == [NodeID(2, 0), NodeID(1, 2), NodeID(0, 6)]
    assert CompactRange.node_ids(256) == [NodeID(8, 0)]


def test_append_visits_every_perfect_subtree_once() -> None:
    seen: list[tuple[int, int, bytes]] = []
    frontier = CompactRange()
    for size in range(300):
        frontier.append(LEAVES[size], lambda lvl, idx, h: seen.append((lvl, idx, h)))
    want = {
        (level, index, REF.node(level, index))
        for level in range(9)
        for index in range(300 >> level)
    }
    assert len(seen) == len(want)
    assert set(seen) == want


@pytest.mark.parametrize(
    ("size", "hashes"),
    [
        (3, [b"\x00" * 32]),  # too few
        (2, [b"\x00" * 32, b"\x00" * 32]),  # too many
        (1, [b"\x00" * 31]),  # wrong length
        (-1, []),
        (1 << 64, [b"\x00" * 32]),
    ],
)
def test_compact_range_refuses_inconsistent_state(size: int, hashes: list[bytes]) -> None:
    with pytest.raises(MalformedError):
        CompactRange(size, hashes)


def test_compact_range_refuses_bad_leaf_and_full_tree() -> None:
    with pytest.raises(MalformedError, match="33 bytes"):
        CompactRange().append(b"\x00" * 33)
    full = CompactRange((1 << 64) - 1, [b"\x00" * 32] * 64)
    with pytest.raises(MalformedError, match="full"):
        full.append(b"\x00" * 32)


def test_hashes_is_a_copy() -> None:
    frontier = CompactRange(1, [LEAVES[0]])
    assert isinstance(frontier.hashes, tuple)
    frontier.append(LEAVES[1])
    assert frontier.hashes == (REF.node(1, 0),)


# --- generation refusals and reader contract ------------------------------------------------


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (6, 5), (-1, 5), (0, 1 << 64)])
def test_inclusion_proof_refuses_out_of_range(index: int, size: int) -> None:
    with pytest.raises(MalformedError):
        inclusion_proof(index, size, reader_for(max(size, 0)))


@pytest.mark.parametrize(("size1", "size2"), [(2, 1), (-1, 3), (1, 1 << 64)])
def test_consistency_proof_refuses_out_of_range(size1: int, size2: int) -> None:
    with pytest.raises(MalformedError):
        consistency_proof(size1, size2, reader_for(3))


def test_empty_proofs_do_not_read() -> None:
    assert consistency_proof(0, 7, _never) == []
    assert consistency_proof(7, 7, _never) == []
    assert inclusion_proof(0, 1, _never) == []
    assert root_at(0, _never) == EMPTY_ROOT


def test_reader_breaking_its_contract_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="asked for 3 nodes, got 2"):
        inclusion_proof(0, 8, lambda ids: [b"\x00" * 32] * 2)
    with pytest.raises(StorageError, match="31-byte hash"):
        root_at(5, lambda ids: [b"\x00" * 31] * len(ids))


# --- verification: hostile input ------------------------------------------------------------


def test_verify_inclusion_mismatch_names_both_roots() -> None:
    proof = REF.path(3, 8)
    wrong = bytes(32)
    with pytest.raises(ProofError) as caught:
        verify_inclusion(3, 8, LEAVES[3], proof, wrong)
    assert REF.root(8).hex() in str(caught.value)
    assert wrong.hex() in str(caught.value)


def test_verify_consistency_mismatch_names_both_roots() -> None:
    proof = REF.proof(3, 8)
    wrong = bytes(32)
    with pytest.raises(ProofError) as caught:
        verify_consistency(3, 8, proof, REF.root(3), wrong)
    assert REF.root(8).hex() in str(caught.value)
    assert wrong.hex() in str(caught.value)


@pytest.mark.parametrize(
    "case",
    [
        (0, 0, LEAVES[0], [], EMPTY_ROOT, "index < size"),
        (-1, 3, LEAVES[0], [], EMPTY_ROOT, "index < size"),
        (0, 1 << 64, LEAVES[0], [], EMPTY_ROOT, "2\\*\\*64"),
        (0, 1, LEAVES[0][:31], [], LEAVES[0], "leaf hash is 31 bytes"),
        (0, 1, LEAVES[0], [], LEAVES[0] + b"\x00", "root is 33 bytes"),
        (0, 2, LEAVES[0], [LEAVES[1][:16]], REF.root(2), "proof hash 0 is 16 bytes"),
        (0, 2, LEAVES[0], [], REF.root(2), "proof has 0 hashes, want 1"),
    ],
)
def test_verify_inclusion_refuses(case: tuple[int, int, bytes, list[bytes], bytes, str]) -> None:
    index, size, leaf, proof, root, message = case
    with pytest.raises(ProofError, match=message):
        verify_inclusion(index, size, leaf, proof, root)


def test_verify_consistency_degenerate_cases() -> None:
    root5 = REF.root(5)
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 5, [], EMPTY_ROOT, root5)
    verify_consistency(5, 5, [], root5, root5)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 5, [], root5, root5)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 0, [], root5, root5)
    with pytest.raises(ProofError, match="want an empty proof"):
        verify_consistency(0, 5, [root5], EMPTY_ROOT, root5)
    with pytest.raises(ProofError, match="want an empty proof"):
        verify_consistency(5, 5, [root5], root5, root5)
    with pytest.raises(ProofError, match="differs"):
        verify_consistency(5, 5, [], root5, REF.root(4))
    with pytest.raises(ProofError, match="size1 <= size2"):
        verify_consistency(6, 5, [], root5, root5)
    with pytest.raises(ProofError, match="proof has 0 hashes, want 4"):
        verify_consistency(3, 5, [], REF.root(3), root5)


# --- properties: generated proofs verify, mutated ones fail ---------------------------------


def _inclusion_shape(index: int, size: int) -> tuple[int, int]:
    """(inner, border) of RFC 9162 §2.1.3.2: the only way the claimed size enters the root
    computation of an inclusion proof."""
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def _flip_bit(proof: list[bytes], element: int, bit: int) -> list[bytes]:
    mutated = list(proof)
    changed = bytearray(mutated[element])
    changed[bit // 8] ^= 1 << (bit % 8)
    mutated[element] = bytes(changed)
    return mutated


sizes = st.integers(min_value=1, max_value=MAX_LEAVES)


@settings(max_examples=300, deadline=None)
@given(st.data(), sizes)
def test_inclusion_property(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    root = REF.root(size)
    proof = inclusion_proof(index, size, reader_for(size))
    assert proof == REF.path(index, size)
    verify_inclusion(index, size, LEAVES[index], proof, root)

    def fails(i: int, n: int, leaf: bytes, p: list[bytes], r: bytes) -> bool:
        try:
            verify_inclusion(i, n, leaf, p, r)
        except ProofError:
            return True
        return False

    if proof:
        element = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        assert fails(index, size, LEAVES[index], _flip_bit(proof, element, bit), root)
        assert fails(index, size, LEAVES[index], proof[:-1], root)
        assert fails(index, size, LEAVES[index], proof[1:], root)
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    assert fails(index, size, LEAVES[index], [*proof, extra], root)
    assert fails(index, size, LEAVES[index], [extra, *proof], root)
    bit = data.draw(st.integers(0, 255), label="leaf bit")
    assert fails(index, size, _flip_bit([LEAVES[index]], 0, bit)[0], proof, root)
    assert fails(index, size, LEAVES[index], proof, _flip_bit([root], 0, bit)[0])

    other_index = data.draw(st.integers(0, MAX_LEAVES), label="other index")
    assume(other_index != index)
    assert fails(other_index, size, LEAVES[index], proof, root)

    # A wrong size passes exactly when it leaves the proof's shape unchanged: the shape is all
    # the root computation sees of the size, so only the signed checkpoint binds the size.
    other_size = data.draw(st.integers(0, 2 * MAX_LEAVES), label="other size")
    assume(other_size != size)
    same_shape = other_size > index and _inclusion_shape(index, other_size) == _inclusion_shape(
        index, size
    )
    assert fails(index, other_size, LEAVES[index], proof, root) is not same_shape


@settings(max_examples=300, deadline=None)
@given(st.data(), sizes)
def test_consistency_property(data: st.DataObject, size2: int) -> None:
    size1 = data.draw(st.integers(1, size2), label="size1")
    root1, root2 = REF.root(size1), REF.root(size2)
    proof = consistency_proof(size1, size2, reader_for(size2))
    assert proof == REF.proof(size1, size2)
    verify_consistency(size1, size2, proof, root1, root2)
    assume(size1 < size2)

    def fails(s1: int, s2: int, p: list[bytes], r1: bytes, r2: bytes) -> bool:
        try:
            verify_consistency(s1, s2, p, r1, r2)
        except ProofError:
            return True
        return False

    element = data.draw(st.integers(0, len(proof) - 1), label="element")
    bit = data.draw(st.integers(0, 255), label="bit")
    assert fails(size1, size2, _flip_bit(proof, element, bit), root1, root2)
    assert fails(size1, size2, proof[:-1], root1, root2)
    assert fails(size1, size2, proof[1:], root1, root2)
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    assert fails(size1, size2, [*proof, extra], root1, root2)
    assert fails(size1, size2, [extra, *proof], root1, root2)
    assert fails(size1, size2, proof, root2, root1)
    assert fails(size1, size2, proof, _flip_bit([root1], 0, bit)[0], root2)
    assert fails(size1, size2, proof, root1, _flip_bit([root2], 0, bit)[0])
    other_size1 = data.draw(st.integers(0, size2), label="other size1")
    assume(other_size1 != size1)
    assert fails(other_size1, size2, proof, root1, root2)
    assert fails(size1, size2 * 2, proof, root1, root2)
    if size2 // 2 >= size1:
        assert fails(size1, size2 // 2, proof, root1, root2)


def _never(ids: Sequence[NodeID]) -> list[bytes]:
    raise AssertionError(f"a refused request read {ids}")


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-(2**70), 2**70) | st.integers(-2, 40),
    st.integers(-(2**70), 2**70) | st.integers(-2, 40),
    st.lists(st.binary(min_size=30, max_size=34) | st.binary(max_size=2), max_size=70),
    st.binary(min_size=31, max_size=33) | st.binary(max_size=2),
    st.binary(min_size=31, max_size=33) | st.binary(max_size=2),
)
def test_hostile_input_only_raises_ledger_errors(
    a: int, b: int, proof: list[bytes], h1: bytes, h2: bytes
) -> None:
    # Verification either accepts or raises ProofError: nothing else escapes.
    with contextlib.suppress(ProofError):
        verify_inclusion(a, b, h1, proof, h2)
    with contextlib.suppress(ProofError):
        verify_consistency(a, b, proof, h1, h2)
    # Generation refuses bad arguments before reading anything.
    if not 0 <= a < b < 1 << 64:
        with pytest.raises(MalformedError):
            inclusion_proof(a, b, _never)
    if not 0 <= a <= b < 1 << 64:
        with pytest.raises(MalformedError):
            consistency_proof(a, b, _never)
