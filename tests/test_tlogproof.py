"""Tests for ledger.tlog.tlogproof: the C2SP tlog-proof file format and its verification.

Trees and audit paths come from a tiny recursive RFC 6962 reference kept here (MTH and PATH of
RFC 6962 §2.1), independent of ``ledger.tlog.merkle``.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import MalformedError, ProofError, RefusedError, SignatureError
from ledger.tlog.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    parse_policy,
    sign_checkpoint,
)
from ledger.tlog.note import Signer, format_note, parse_note, sign_note
from ledger.tlog.tlogproof import (
    HEADER,
    MAX_PROOF_HASHES,
    TlogProof,
    format_tlog_proof,
    open_tlog_proof,
    parse_tlog_proof,
)

LOG = Signer.from_seed("example.com/proof-log", bytes(range(32)))
WITNESS = CosignatureSigner.from_seed("witness.example/w", bytes(range(32, 64)))


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return _leaf(leaves[0])
    k = _split(len(leaves))
    return _node(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def _signed_checkpoint(leaves: list[bytes], *, witnessed: bool = False) -> bytes:
    checkpoint = Checkpoint(LOG.name, len(leaves), _mth(leaves))
    note = sign_checkpoint(checkpoint, LOG)
    if witnessed:
        note = format_note(parse_note(note).with_signature(WITNESS.cosign(checkpoint, 1234)))
    return note


def _proof(leaves: list[bytes], index: int, **kwargs: bool) -> TlogProof:
    return TlogProof(index, tuple(_path(index, leaves)), _signed_checkpoint(leaves, **kwargs))


# --- the minimal trees ----------------------------------------------------------------------------


def test_one_leaf_tree() -> None:
    leaves = [b"only"]
    proof = _proof(leaves, 0)
    assert proof.hashes == ()
    data = format_tlog_proof(proof)
    assert data == f"{HEADER}\nindex 0\n\n".encode() + proof.checkpoint
    assert parse_tlog_proof(data) == proof
    checkpoint = open_tlog_proof(proof, _leaf(b"only"), LOG.verifier_key)
    assert (checkpoint.size, checkpoint.root_hash) == (1, _leaf(b"only"))


def test_two_leaf_tree() -> None:
    leaves = [b"left", b"right"]
    root = hashlib.sha256(b"\x01" + _leaf(b"left") + _leaf(b"right")).digest()
    for index, (mine, sibling) in enumerate([(b"left", b"right"), (b"right", b"left")]):
        proof = TlogProof(index, (_leaf(sibling),), _signed_checkpoint(leaves))
        data = format_tlog_proof(proof)
        want_head = f"{HEADER}\nindex {index}\n{base64.b64encode(_leaf(sibling)).decode()}\n\n"
        assert data == want_head.encode() + proof.checkpoint
        parsed = parse_tlog_proof(data)
        assert open_tlog_proof(parsed, _leaf(mine), LOG.verifier_key).root_hash == root
        with pytest.raises(ProofError):
            open_tlog_proof(parsed, _leaf(sibling), LOG.verifier_key)


def test_extra_data_round_trips_and_is_not_authenticated() -> None:
    leaves = _entries(3)
    proof = _proof(leaves, 2)
    with_extra = TlogProof(proof.index, proof.hashes, proof.checkpoint, b"\x00opaque\xff")
    data = format_tlog_proof(with_extra)
    assert data.split(b"\n")[1] == b"extra " + base64.b64encode(b"\x00opaque\xff")
    assert parse_tlog_proof(data) == with_extra
    assert open_tlog_proof(with_extra, _leaf(leaves[2]), LOG.verifier_key).size == 3


# --- verification failures ------------------------------------------------------------------------


def test_wrong_index_leaf_or_hashes_do_not_verify() -> None:
    leaves = _entries(5)
    proof = _proof(leaves, 3)
    key = LOG.verifier_key
    assert open_tlog_proof(proof, _leaf(leaves[3]), key).size == 5
    with pytest.raises(ProofError):
        open_tlog_proof(proof, _leaf(leaves[2]), key)
    with pytest.raises(ProofError):
        open_tlog_proof(TlogProof(2, proof.hashes, proof.checkpoint), _leaf(leaves[3]), key)
    with pytest.raises(ProofError, match="index < size"):
        open_tlog_proof(TlogProof(5, proof.hashes, proof.checkpoint), _leaf(leaves[3]), key)
    flipped = (bytes([proof.hashes[0][0] ^ 1]) + proof.hashes[0][1:], *proof.hashes[1:])
    with pytest.raises(ProofError):
        open_tlog_proof(TlogProof(3, flipped, proof.checkpoint), _leaf(leaves[3]), key)
    with pytest.raises(ProofError, match="hashes"):
        open_tlog_proof(TlogProof(3, proof.hashes[:-1], proof.checkpoint), _leaf(leaves[3]), key)


def test_the_checkpoint_must_open_under_the_trusted_key() -> None:
    leaves = _entries(4)
    proof = _proof(leaves, 1)
    stranger = Signer.from_seed(LOG.name, bytes(32))
    with pytest.raises(SignatureError):
        open_tlog_proof(proof, _leaf(leaves[1]), stranger.verifier_key)
    foreign = Checkpoint("example.com/elsewhere", 4, _mth(leaves))
    relabelled = TlogProof(1, proof.hashes, sign_note(foreign.body(), [LOG]))
    with pytest.raises(RefusedError):
        open_tlog_proof(relabelled, _leaf(leaves[1]), LOG.verifier_key)


def test_policy_trust_requires_the_quorum() -> None:
    policy = parse_policy(f"log {LOG.vkey}\nwitness w {WITNESS.vkey}\nquorum w\n")
    leaves = _entries(6)
    unwitnessed = _proof(leaves, 4)
    with pytest.raises(SignatureError, match="quorum"):
        open_tlog_proof(unwitnessed, _leaf(leaves[4]), policy)
    witnessed = _proof(leaves, 4, witnessed=True)
    assert parse_tlog_proof(format_tlog_proof(witnessed)) == witnessed
    assert open_tlog_proof(witnessed, _leaf(leaves[4]), policy).size == 6
    # The log key alone ignores the cosignature.
    assert open_tlog_proof(witnessed, _leaf(leaves[4]), LOG.verifier_key).size == 6


# --- strict parsing -------------------------------------------------------------------------------

CHECKPOINT = _signed_checkpoint(_entries(3))
H = base64.b64encode(bytes(32)).decode()
MALFORMED_PROOFS: list[bytes] = [
    b"",
    CHECKPOINT,
    f"{HEADER}\nindex 0\n".encode() + CHECKPOINT,  # no blank line before the checkpoint
    b"c2sp.org/tlog-proof@v2\nindex 0\n\n" + CHECKPOINT,
    f"{HEADER} \nindex 0\n\n".encode() + CHECKPOINT,
    f"\n{HEADER}\nindex 0\n\n".encode() + CHECKPOINT,
    f"{HEADER}\r\nindex 0\n\n".encode() + CHECKPOINT,
    f"{HEADER}\n\n".encode() + CHECKPOINT,  # no index
    f"{HEADER}\nindex 01\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex -1\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex +1\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex  1\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex {2**63}\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nIndex 0\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nextra \nindex 0\n\n".encode() + CHECKPOINT,  # empty extra is written as none
    f"{HEADER}\nextra !!\nindex 0\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nextra AA==\nextra AA==\nindex 0\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex 0\nextra AA==\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex 0\n{H[:-2]}\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex 0\n{base64.b64encode(bytes(31)).decode()}\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex 0\n{base64.b64encode(bytes(33)).decode()}\n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex 0\n{H[:-2]}B=\n\n".encode() + CHECKPOINT,  # non-zero padding bits
    f"{HEADER}\nindex 0\n{H} \n\n".encode() + CHECKPOINT,
    f"{HEADER}\nindex 0\n".encode()
    + f"{H}\n".encode() * (MAX_PROOF_HASHES + 1)
    + b"\n"
    + CHECKPOINT,
    f"{HEADER}\nindex 0\n\n".encode(),  # no checkpoint
    f"{HEADER}\nindex 0\n\nnot a note\n".encode(),
    f"{HEADER}\nindex 0\n\n".encode() + sign_note("not a\ncheckpoint\n", [LOG]),
    f"{HEADER}\nindex 0\n\n\n".encode() + CHECKPOINT,  # extra blank line
    f"{HEADER}\nindex 0\n\n".encode() + CHECKPOINT + b"\n",
    f"{HEADER}\nindex \u0661\n\n".encode() + CHECKPOINT,  # a non-ASCII digit
]


@pytest.mark.parametrize("data", MALFORMED_PROOFS)
def test_malformed_proofs_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedError, match=r"^couldn't "):
        parse_tlog_proof(data)


def test_construction_validates() -> None:
    with pytest.raises(MalformedError, match="index"):
        TlogProof(-1, (), CHECKPOINT)
    with pytest.raises(MalformedError, match="31 bytes"):
        TlogProof(0, (bytes(31),), CHECKPOINT)
    with pytest.raises(MalformedError, match="more than"):
        TlogProof(0, (bytes(32),) * (MAX_PROOF_HASHES + 1), CHECKPOINT)
    with pytest.raises(MalformedError, match="checkpoint"):
        TlogProof(0, (), b"garbage")


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.data())
def test_every_leaf_of_small_trees_round_trips_and_verifies(n: int, data: st.DataObject) -> None:
    leaves = _entries(n)
    index = data.draw(st.integers(0, n - 1))
    extra = data.draw(st.binary(max_size=8))
    proof = TlogProof(index, tuple(_path(index, leaves)), _signed_checkpoint(leaves), extra)
    parsed = parse_tlog_proof(format_tlog_proof(proof))
    assert parsed == proof
    assert open_tlog_proof(parsed, _leaf(leaves[index]), LOG.verifier_key).size == n
    other = data.draw(st.integers(0, n - 1))
    if other != index:
        with pytest.raises(ProofError):
            open_tlog_proof(parsed, _leaf(leaves[other]), LOG.verifier_key)


@given(st.binary(max_size=120))
def test_hostile_prefixes_raise_only_malformed(head: bytes) -> None:
    data = head + b"\n\n" + CHECKPOINT
    try:
        proof = parse_tlog_proof(data)
    except MalformedError:
        return
    assert format_tlog_proof(proof) == data
