"""ML-DSA-44 in the note layer: type 0x06 keys, the ``subtree/v1`` message, cosignatures.

The known answer comes from an independent implementation (FiloSottile/torchwood), read at test
time from ``shared/vectors/mldsa44/torchwood-kat.txt``; the message layout is also rebuilt here
with :mod:`struct` straight from the C2SP tlog-cosignature v1.1.0-rc.1 text, independently of
``ledger.tlog.checkpoint``.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PublicKey

from ledger.errors import MalformedError, SignatureError
from ledger.tlog.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    checkpoint_subtree_message,
    parse_policy,
    subtree_message,
    verify_cosignatures,
)
from ledger.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_MLDSA44,
    MLDSA44_PUBLIC_KEY_SIZE,
    MLDSA44_SIGNATURE_SIZE,
    NoteSignature,
    Signer,
    VerifierKey,
    format_note,
    parse_note,
    parse_signature_line,
    sign_note,
    verify_note,
)
from tests.support import VECTORS


def _kat() -> tuple[dict[str, str], list[str]]:
    fields: dict[str, str] = {}
    lines: list[str] = []
    path = VECTORS / "mldsa44" / "torchwood-kat.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.split(" ", 1)
        if key == "checkpoint-line":
            lines.append(value)
        else:
            fields[key] = value
    return fields, lines


def _spec_message(name: bytes, timestamp: int, origin: bytes, end: int, root: bytes) -> bytes:
    """tlog-cosignature's ``cosigned_message``, written from the spec's struct with ``struct``."""
    return (
        b"subtree/v1\n\x00"
        + struct.pack(">B", len(name))
        + name
        + struct.pack(">Q", timestamp)
        + struct.pack(">B", len(origin))
        + origin
        + struct.pack(">QQ", 0, end)
        + root
    )


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_torchwood_vector_key_and_key_id() -> None:
    fields, _ = _kat()
    signer = Signer.from_seed("example.com/mldsa-log", bytes.fromhex(fields["seed"]), ALG_MLDSA44)
    assert signer.vkey == fields["vkey"]
    key = VerifierKey.parse(fields["vkey"])
    assert key.alg == ALG_MLDSA44
    assert len(key.public_key) == MLDSA44_PUBLIC_KEY_SIZE
    expected_id = hashlib.sha256(b"example.com/mldsa-log\n\x06" + key.public_key).digest()[:4]
    assert key.key_id == expected_id
    assert key.vkey() == fields["vkey"]


def test_torchwood_vector_signature_verifies_and_one_byte_change_fails() -> None:
    fields, lines = _kat()
    key = VerifierKey.parse(fields["vkey"])
    checkpoint = Checkpoint.parse("\n".join(lines) + "\n")
    note_bytes = (checkpoint.body() + "\n" + fields["signature"] + "\n").encode()
    assert verify_cosignatures(note_bytes, [key]) == {key: 0}
    line = parse_signature_line(fields["signature"])
    assert len(line.signature) == 8 + MLDSA44_SIGNATURE_SIZE
    spec = _spec_message(
        key.name.encode(), 0, checkpoint.origin.encode(), checkpoint.size, checkpoint.root_hash
    )
    assert checkpoint_subtree_message(key.name, checkpoint, 0) == spec
    key.verify_signature(spec, line.signature[8:])
    for at in (0, 8, 100, len(line.signature) - 1):
        bad = NoteSignature(line.name, line.key_id, _flip(line.signature, at))
        bad_note = format_note(parse_note(note_bytes).with_signature(bad))
        with pytest.raises(SignatureError):
            verify_cosignatures(bad_note, [key])
    other_root = Checkpoint(checkpoint.origin, checkpoint.size, _flip(checkpoint.root_hash, 3))
    with pytest.raises(SignatureError):
        verify_cosignatures((other_root.body() + "\n" + fields["signature"] + "\n").encode(), [key])


def test_private_key_text_round_trips_and_keeps_the_seed_form() -> None:
    signer = Signer.generate("example.org/log", ALG_MLDSA44)
    text = signer.private_key_text()
    raw = base64.b64decode(text.split("+", 4)[4])  # PRIVATE+KEY+name+hex8+base64
    assert raw[0] == ALG_MLDSA44 and len(raw) == 33
    again = Signer.parse_private_key(text)
    assert again.vkey == signer.vkey
    message = b"any bytes"
    signature = again.sign(message)
    assert len(signature) == MLDSA44_SIGNATURE_SIZE
    signer.verifier_key.verify_signature(message, signature)
    with pytest.raises(SignatureError):
        signer.verifier_key.verify_signature(b"other bytes", signature)


def test_malformed_mldsa_keys_are_refused() -> None:
    key = Signer.generate("n", ALG_MLDSA44).verifier_key
    raw = bytes([ALG_MLDSA44]) + key.public_key
    short = base64.b64encode(raw[:-1]).decode()
    with pytest.raises(MalformedError, match="1313"):
        VerifierKey.parse(f"n+{key.key_id.hex()}+{short}")
    wrong_id = f"n+{bytes(4).hex()}+{base64.b64encode(raw).decode()}"
    with pytest.raises(MalformedError, match="key id"):
        VerifierKey.parse(wrong_id)
    ed_sized = base64.b64encode(bytes([ALG_MLDSA44]) + bytes(32)).decode()
    with pytest.raises(MalformedError):
        VerifierKey.parse(f"n+{key.key_id.hex()}+{ed_sized}")
    with pytest.raises(MalformedError, match="seed"):
        Signer("n", bytes(31), ALG_MLDSA44)
    with pytest.raises(SignatureError, match="2420"):
        key.verify_signature(b"m", bytes(64))


def test_notes_are_never_signed_or_verified_as_mldsa_text() -> None:
    mldsa = Signer.generate("n", ALG_MLDSA44)
    with pytest.raises(MalformedError, match="0x01"):
        sign_note("text\n", [mldsa])
    ed = Signer.generate("n")
    note = parse_note(sign_note("text\n", [ed]))
    with pytest.raises(SignatureError, match="no signature from a known key"):
        verify_note(note, [mldsa.verifier_key])


def test_subtree_message_bounds() -> None:
    root = bytes(32)
    assert subtree_message("w", 5, "o", 0, 9, root) == _spec_message(b"w", 5, b"o", 9, root)
    with pytest.raises(MalformedError, match="1 to 255"):
        subtree_message("w" * 256, 0, "o", 0, 1, root)
    with pytest.raises(MalformedError, match="1 to 255"):
        subtree_message("w", 0, "", 0, 1, root)
    with pytest.raises(MalformedError, match="timestamp 0"):
        subtree_message("w", 1, "o", 2, 3, root)
    with pytest.raises(MalformedError, match="start is after end"):
        subtree_message("w", 0, "o", 4, 3, root)
    with pytest.raises(MalformedError, match="32"):
        subtree_message("w", 0, "o", 0, 1, bytes(31))


def test_witness_cosigns_with_both_key_types_under_one_name() -> None:
    checkpoint = Checkpoint("example.org/log", 8, hashlib.sha256(b"root").digest())
    ed = CosignatureSigner.generate("witness.example/w1")
    pq = CosignatureSigner.generate("witness.example/w1", ALG_MLDSA44)
    log = Signer.generate("example.org/log")
    note = parse_note(sign_note(checkpoint.body(), [log]))
    note = note.with_signature(ed.cosign(checkpoint, 1_700_000_000))
    note = note.with_signature(pq.cosign(checkpoint, 1_700_000_001))
    signed = format_note(note)
    assert verify_cosignatures(signed, [ed.verifier_key, pq.verifier_key]) == {
        ed.verifier_key: 1_700_000_000,
        pq.verifier_key: 1_700_000_001,
    }
    # The 0x06 line, checked against the message rebuilt from the spec's struct alone.
    pq_line = note.signatures[-1]
    spec = _spec_message(
        b"witness.example/w1", 1_700_000_001, b"example.org/log", 8, checkpoint.root_hash
    )
    assert pq_line.signature[:8] == (1_700_000_001).to_bytes(8, "big")
    MLDSA44PublicKey.from_public_bytes(pq.verifier_key.public_key).verify(
        pq_line.signature[8:], spec, b""
    )
    # The subtree/v1 message commits to the cosigner's name: the same key under another name
    # is another key ID, and a line re-labelled with it does not verify.
    renamed = VerifierKey.from_public_key(
        "witness.example/w2", ALG_MLDSA44, pq.verifier_key.public_key
    )
    forged = NoteSignature(renamed.name, renamed.key_id, pq_line.signature)
    with pytest.raises(SignatureError):
        verify_cosignatures(format_note(note.with_signature(forged)), [renamed])


def test_policy_names_mldsa_witness_keys() -> None:
    pq = CosignatureSigner.generate("witness.example/pq", ALG_MLDSA44)
    ed = CosignatureSigner.generate("witness.example/ed", ALG_COSIGNATURE_V1)
    log = Signer.generate("example.org/log")
    policy = parse_policy(
        f"log {log.vkey}\nwitness pq {pq.vkey}\nwitness ed {ed.vkey}\n"
        "group both all pq ed\nquorum both\n"
    )
    assert [w.key.alg for w in policy.witnesses] == [ALG_MLDSA44, ALG_COSIGNATURE_V1]
    with pytest.raises(MalformedError, match="not 0x04 or 0x06"):
        parse_policy(f"witness w {log.vkey}\nquorum w\n")
    mldsa_log = Signer.generate("example.org/log", ALG_MLDSA44)
    with pytest.raises(MalformedError, match="not 0x01"):
        parse_policy(f"log {mldsa_log.vkey}\nquorum none\n")


def test_statements_refuse_mldsa_keys_as_signers_and_in_bodies() -> None:
    """F2.8: post-quantum statements are not part of this edition; a 0x06 key parses as a key
    but is refused where a statement names a key."""
    from ledger.protocol.keys import checked_vkey
    from ledger.statements.statement import _signer_key

    vkey = Signer.generate("model.ai.example", ALG_MLDSA44).vkey
    with pytest.raises(ValueError, match="0x06"):
        checked_vkey(vkey)
    with pytest.raises(MalformedError, match="0x06"):
        _signer_key(vkey)
