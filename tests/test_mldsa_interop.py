"""ML-DSA-44 against a second, independent implementation: dilithium-py (pure Python FIPS 204,
by Giacomo Pope; this project signs and verifies with OpenSSL through pyca/cryptography).

Each byte layout is rebuilt here with :mod:`struct` from docs/FORMAT.md (F2.6, F2.9–F2.11,
F7.2) and C2SP tlog-cosignature v1.1.0-rc.1, not taken from ``ledger``: the project's lines must
verify under the other implementation, and lines the other implementation made from the
documented layout must verify under the project's verifiers. Both derive the same public key
from one FIPS 204 seed, so the key IDs and vkeys are checked too.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from dilithium_py.ml_dsa import ML_DSA_44

from ledger.errors import SignatureError
from ledger.statements.statement import (
    new_statement,
    parse_statement,
    sign_statement,
    verified_signers,
)
from ledger.tlog.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    LogKeys,
    open_checkpoint,
    sign_checkpoint,
    verify_cosignatures,
)
from ledger.tlog.note import ALG_MLDSA44, Signer, VerifierKey, parse_note
from ledger.tlog.statement_mldsa import StatementMLDSA44Signer

ORIGIN = "interop.example/log"
SEED = bytes(range(32))
STATEMENT_TYPE = b"\xffamnesty-ledger/ml-dsa44"
STATEMENT_CONTEXT = b"amnesty-ledger.statement/v1"
LOG_MLDSA_TYPE = b"\x06"
"""Type byte of tlog-cosignature's ML-DSA-44 keys (signed-note)."""


def other_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """dilithium-py's (public key, secret key) for the FIPS 204 seed ξ."""
    public, secret = ML_DSA_44.key_derive(seed)
    return public, secret


def opaque8(value: str) -> bytes:
    raw = value.encode("utf-8")
    return bytes([len(raw)]) + raw


def subtree_v1(name: str, timestamp: int, origin: str, size: int, root: bytes) -> bytes:
    """tlog-cosignature's cosigned_message for a checkpoint (start 0, end = size)."""
    return (
        b"subtree/v1\n\x00"
        + opaque8(name)
        + struct.pack(">Q", timestamp)
        + opaque8(origin)
        + struct.pack(">QQ", 0, size)
        + root
    )


def key_id(name: str, type_bytes: bytes, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + type_bytes + public).digest()[:4]


def line_bytes(line: str) -> tuple[str, bytes]:
    """A signature line's key name and decoded bytes."""
    assert line.startswith("\u2014 ")
    name, data = line[2:].rsplit(" ", 1)
    return name, base64.b64decode(data, validate=True)


def test_both_implementations_derive_the_same_key_from_a_seed() -> None:
    ours = Signer(ORIGIN, SEED, alg=ALG_MLDSA44).verifier_key
    public, _ = other_keypair(SEED)
    assert ours.public_key == public
    assert ours.key_id == key_id(ORIGIN, LOG_MLDSA_TYPE, public)
    statement_key = StatementMLDSA44Signer("member.example", SEED).verifier_key
    assert statement_key.public_key == public
    assert statement_key.key_id == key_id("member.example", STATEMENT_TYPE, public)
    expected = base64.b64encode(STATEMENT_TYPE + public).decode()
    assert statement_key.vkey() == f"member.example+{statement_key.key_id.hex()}+{expected}"


def test_the_logs_checkpoint_line_verifies_under_the_other_implementation() -> None:
    ed = Signer.from_seed(ORIGIN, b"e" * 32)
    pq = Signer(ORIGIN, SEED, alg=ALG_MLDSA44)
    tree = Checkpoint(ORIGIN, 7, hashlib.sha256(b"root").digest())
    note = parse_note(sign_checkpoint(tree, ed, [pq]))
    (pq_line,) = [s for s in note.signatures if s.key_id == pq.verifier_key.key_id]
    blob = pq_line.signature
    timestamp, signature = struct.unpack(">Q", blob[:8])[0], blob[8:]
    assert timestamp == 0 and len(signature) == 2420
    public, _ = other_keypair(SEED)
    message = subtree_v1(ORIGIN, timestamp, ORIGIN, 7, tree.root_hash)
    assert ML_DSA_44.verify(public, message, signature)
    assert not ML_DSA_44.verify(public, message[:-1] + b"\x00", signature)


def test_a_line_the_other_implementation_made_opens_under_the_hybrid_policy() -> None:
    ed = Signer.from_seed(ORIGIN, b"e" * 32)
    public, secret = other_keypair(SEED)
    tree = Checkpoint(ORIGIN, 9, hashlib.sha256(b"nine").digest())
    text_note = sign_checkpoint(tree, ed).decode()
    signature = ML_DSA_44.sign(secret, subtree_v1(ORIGIN, 0, ORIGIN, 9, tree.root_hash))
    blob = key_id(ORIGIN, LOG_MLDSA_TYPE, public) + struct.pack(">Q", 0) + signature
    line = f"\u2014 {ORIGIN} {base64.b64encode(blob).decode()}\n"
    hybrid = (text_note + line).encode()
    pq_id = key_id(ORIGIN, LOG_MLDSA_TYPE, public).hex()
    pq_vkey = f"{ORIGIN}+{pq_id}+" + base64.b64encode(LOG_MLDSA_TYPE + public).decode()
    keys = LogKeys.parse([ed.vkey, pq_vkey], "both")
    assert open_checkpoint(hybrid, keys) == tree
    flipped = bytearray(blob)
    flipped[-100] ^= 1
    bad = (text_note + f"\u2014 {ORIGIN} {base64.b64encode(bytes(flipped)).decode()}\n").encode()
    with pytest.raises(SignatureError):
        open_checkpoint(bad, keys)


def test_a_witness_cosignature_verifies_both_ways() -> None:
    witness = "witness.example/w"
    cosigner = CosignatureSigner(Signer(witness, SEED, alg=ALG_MLDSA44))
    tree = Checkpoint(ORIGIN, 11, hashlib.sha256(b"eleven").digest())
    line = cosigner.cosign(tree, 1_767_225_600)
    public, secret = other_keypair(SEED)
    stamp, signature = struct.unpack(">Q", line.signature[:8])[0], line.signature[8:]
    assert stamp == 1_767_225_600
    assert ML_DSA_44.verify(
        public, subtree_v1(witness, stamp, ORIGIN, 11, tree.root_hash), signature
    )
    # And a cosignature made by the other implementation is counted by ours.
    ed = Signer.from_seed(ORIGIN, b"e" * 32)
    theirs = ML_DSA_44.sign(secret, subtree_v1(witness, 1_767_225_601, ORIGIN, 11, tree.root_hash))
    blob = key_id(witness, LOG_MLDSA_TYPE, public) + struct.pack(">Q", 1_767_225_601) + theirs
    note = (
        sign_checkpoint(tree, ed).decode() + f"\u2014 {witness} {base64.b64encode(blob).decode()}\n"
    ).encode()
    witness_key = VerifierKey.parse(cosigner.verifier_key.vkey())
    assert verify_cosignatures(note, [witness_key])


def test_a_statement_signature_verifies_both_ways() -> None:
    member_ed = Signer.from_seed("member.example", b"m" * 32)
    member_pq = StatementMLDSA44Signer("member.example", SEED)
    statement = new_statement(
        type="note_for_test",
        v=1,
        origin=ORIGIN,
        signers=[member_ed.vkey, member_pq.vkey],
        time_ms=1_767_225_600_000,
        body={"text": "interop"},
    )
    signed = sign_statement(sign_statement(statement.text.encode(), member_ed), member_pq)
    note = parse_note(signed)
    public, secret = other_keypair(SEED)
    (pq_line,) = [s for s in note.signatures if s.key_id == member_pq.verifier_key.key_id]
    text = note.text.encode()
    assert len(pq_line.signature) == 2420
    assert ML_DSA_44.verify(public, text, pq_line.signature, ctx=STATEMENT_CONTEXT)
    assert not ML_DSA_44.verify(public, text, pq_line.signature)  # the context is bound
    # A line the other implementation made over the note text is accepted by ours...
    theirs = ML_DSA_44.sign(secret, text, ctx=STATEMENT_CONTEXT)
    blob = key_id("member.example", STATEMENT_TYPE, public) + theirs
    head, lines = signed.decode().split("\n\n", 1)
    kept = [line for line in lines.splitlines() if line_bytes(line)[1][:4] != pq_line.key_id]
    assert len(kept) == 1  # the Ed25519 line
    ours_replaced = f"\u2014 member.example {base64.b64encode(blob).decode()}"
    rebuilt = head + "\n\n" + "".join(line + "\n" for line in [*kept, ours_replaced])
    parsed = parse_statement(rebuilt.encode())
    assert verified_signers(parsed) == {member_ed.vkey, member_pq.vkey}
    # ...and one made without the context is refused.
    wrong = key_id("member.example", STATEMENT_TYPE, public) + ML_DSA_44.sign(secret, text)
    forged = rebuilt.replace(base64.b64encode(blob).decode(), base64.b64encode(wrong).decode())
    with pytest.raises(SignatureError):
        verified_signers(parse_statement(forged.encode()))
