"""Hybrid checkpoints: the log's Ed25519 and ML-DSA-44 lines, and the pinned key policy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ledger.errors import MalformedError, RefusedError, SignatureError
from ledger.tlog.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    KeyPolicy,
    LogKeys,
    LogSigners,
    open_checkpoint,
    sign_checkpoint,
)
from ledger.tlog.merkle import EMPTY_ROOT
from ledger.tlog.note import (
    ALG_MLDSA44,
    Note,
    NoteSignature,
    Signer,
    format_note,
    parse_note,
)
from ledger.witness.witness import JsonFileWitnessState, Witness, parse_add_checkpoint

ORIGIN = "example.org/hybrid"
ED = Signer.generate(ORIGIN)
PQ = Signer.generate(ORIGIN, ALG_MLDSA44)
CHECKPOINT = Checkpoint(ORIGIN, 42, hashlib.sha256(b"tree").digest())


def _keys(policy: KeyPolicy | None = None) -> LogKeys:
    return LogKeys(ED.verifier_key, PQ.verifier_key, policy)


def _hybrid() -> bytes:
    return sign_checkpoint(CHECKPOINT, ED, [PQ])


def _corrupt(note_bytes: bytes, line_index: int) -> bytes:
    note = parse_note(note_bytes)
    line = note.signatures[line_index]
    flipped = line.signature[:20] + bytes([line.signature[20] ^ 0x80]) + line.signature[21:]
    return format_note(note.with_signature(NoteSignature(line.name, line.key_id, flipped)))


def _drop(note_bytes: bytes, line_index: int) -> bytes:
    note = parse_note(note_bytes)
    kept = tuple(s for i, s in enumerate(note.signatures) if i != line_index)
    return format_note(Note(note.text, kept))


def test_a_hybrid_checkpoint_has_both_lines_ed25519_first() -> None:
    note = parse_note(_hybrid())
    assert [s.key_id for s in note.signatures] == [
        ED.verifier_key.key_id,
        PQ.verifier_key.key_id,
    ]
    assert note.signatures[1].signature[:8] == bytes(8)  # the log's timestamp is 0


@pytest.mark.parametrize("policy", [None, *KeyPolicy])
def test_each_policy_accepts_the_hybrid_checkpoint(policy: KeyPolicy | None) -> None:
    assert open_checkpoint(_hybrid(), _keys(policy)) == CHECKPOINT


def test_each_key_alone_verifies_the_hybrid_checkpoint() -> None:
    assert open_checkpoint(_hybrid(), ED.verifier_key) == CHECKPOINT
    assert open_checkpoint(_hybrid(), _keys(KeyPolicy.MLDSA44)) == CHECKPOINT
    assert _keys().policy is KeyPolicy.BOTH
    assert LogKeys(ED.verifier_key).policy is KeyPolicy.ED25519


@pytest.mark.parametrize(
    ("line", "policy"),
    [
        (0, KeyPolicy.ED25519),
        (0, KeyPolicy.BOTH),
        (1, KeyPolicy.MLDSA44),
        (1, KeyPolicy.BOTH),
        # A pinned key's bad line rejects even where the policy does not require that key.
        (0, KeyPolicy.MLDSA44),
        (1, KeyPolicy.ED25519),
    ],
)
def test_a_one_byte_change_in_either_signature_is_refused(line: int, policy: KeyPolicy) -> None:
    with pytest.raises(SignatureError):
        open_checkpoint(_corrupt(_hybrid(), line), _keys(policy))


def test_a_missing_required_line_is_refused_and_an_optional_one_is_not() -> None:
    without_pq = _drop(_hybrid(), 1)
    without_ed = _drop(_hybrid(), 0)
    assert open_checkpoint(without_pq, _keys(KeyPolicy.ED25519)) == CHECKPOINT
    assert open_checkpoint(without_ed, _keys(KeyPolicy.MLDSA44)) == CHECKPOINT
    with pytest.raises(SignatureError, match="ML-DSA-44"):
        open_checkpoint(without_pq, _keys(KeyPolicy.BOTH))
    with pytest.raises(SignatureError, match="ML-DSA-44"):
        open_checkpoint(without_pq, _keys(KeyPolicy.MLDSA44))
    with pytest.raises(SignatureError):
        open_checkpoint(without_ed, _keys(KeyPolicy.BOTH))


def test_extension_lines_are_never_accepted_on_the_ml_dsa_signature_alone() -> None:
    extended = Checkpoint(ORIGIN, 1, bytes(32), ("ext",))
    with pytest.raises(RefusedError, match="extension"):
        sign_checkpoint(extended, ED, [PQ])
    # A forger with only the ML-DSA line of the plain checkpoint adds an extension line.
    plain = Checkpoint(ORIGIN, 1, bytes(32))
    pq_line = parse_note(sign_checkpoint(plain, ED, [PQ])).signatures[1]
    forged = format_note(Note(extended.body(), (pq_line,)))
    with pytest.raises(RefusedError, match="extension"):
        open_checkpoint(forged, _keys(KeyPolicy.MLDSA44))


def test_log_keys_are_checked() -> None:
    other = Signer.generate("example.org/other", ALG_MLDSA44)
    with pytest.raises(MalformedError, match="named after the origin"):
        LogKeys(ED.verifier_key, other.verifier_key)
    with pytest.raises(MalformedError, match="requires an ML-DSA-44 key"):
        LogKeys(ED.verifier_key, None, KeyPolicy.BOTH)
    with pytest.raises(MalformedError, match="0x01"):
        LogKeys(PQ.verifier_key)
    with pytest.raises(MalformedError, match="not one of"):
        LogKeys.parse([ED.vkey, PQ.vkey], "either")
    with pytest.raises(MalformedError, match="at most one ML-DSA-44"):
        LogKeys.parse([ED.vkey, PQ.vkey, PQ.vkey])
    keys = LogKeys.parse([PQ.vkey, ED.vkey], "mldsa44")
    assert keys.vkeys() == [ED.vkey, PQ.vkey]
    assert keys.vkey() == ED.vkey and keys.name == ORIGIN


def test_the_ml_dsa_key_is_named_after_the_origin() -> None:
    stranger = Signer.generate("example.org/other", ALG_MLDSA44)
    with pytest.raises(RefusedError, match="origin"):
        sign_checkpoint(CHECKPOINT, ED, [stranger])


def test_a_log_key_file_holds_exactly_the_keys_the_log_was_created_with() -> None:
    signers = LogSigners(ED, PQ)
    again = LogSigners.parse(signers.text())
    assert again.keys() == signers.keys() and again.text() == signers.text()
    pinned = signers.keys()
    assert pinned.mldsa44 is not None
    signers.check_identity(ED.vkey, pinned.mldsa44.vkey())
    ed_only = LogSigners(ED)
    ed_only.check_identity(ED.vkey, None)
    with pytest.raises(RefusedError, match="no ML-DSA-44 key"):
        ed_only.check_identity(ED.vkey, pinned.mldsa44.vkey())
    with pytest.raises(RefusedError, match="created with none"):
        signers.check_identity(ED.vkey, None)
    with pytest.raises(RefusedError, match="is not this log's"):
        LogSigners(Signer.generate(ORIGIN)).check_identity(ED.vkey, None)
    with pytest.raises(MalformedError, match="lines"):
        LogSigners.parse(signers.text() * 2)
    with pytest.raises(MalformedError, match="0x01"):
        LogSigners.parse(PQ.private_key_text())


def test_a_witness_may_know_the_log_by_its_ml_dsa_key_alone(tmp_path: Path) -> None:
    """A witness configured with the log's 0x06 key checks the log's subtree/v1 line; a bad
    line is refused (403's error), and a checkpoint with extension lines vouched for by
    ML-DSA-44 alone is refused."""
    witness_key = CosignatureSigner.generate("witness.example/pq")
    state = JsonFileWitnessState(
        tmp_path / "state.json", witness_key.verifier_key, create_missing=True
    )
    witness = Witness(witness_key, [PQ.verifier_key], state)
    small = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    (line,) = witness.add_checkpoint(
        parse_add_checkpoint(b"old 0\n\n" + sign_checkpoint(small, ED, [PQ])), 1
    )
    assert line.is_from(witness_key.verifier_key)
    with pytest.raises(SignatureError):
        witness.add_checkpoint(
            parse_add_checkpoint(b"old 0\n\n" + _corrupt(sign_checkpoint(small, ED, [PQ]), 1)), 2
        )
    with pytest.raises(SignatureError, match="no signature from a configured key"):
        witness.add_checkpoint(parse_add_checkpoint(b"old 0\n\n" + sign_checkpoint(small, ED)), 2)
    extended = Checkpoint(ORIGIN, 0, EMPTY_ROOT, ("ext",))
    pq_line = parse_note(sign_checkpoint(small, ED, [PQ])).signatures[1]
    forged = format_note(Note(extended.body(), (pq_line,)))
    with pytest.raises(SignatureError, match="extension lines"):
        witness.add_checkpoint(parse_add_checkpoint(b"old 0\n\n" + forged), 3)
