"""Tests for ledger.tlog.checkpoint: checkpoint bodies, log signatures, cosignatures and policies.

Vector 3 (a cosigned checkpoint) is read from ``shared/vectors/README.md`` at test time.
"""

from __future__ import annotations

import base64
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import MalformedError, RefusedError, SignatureError
from ledger.tlog.checkpoint import (
    MAX_INT63,
    Checkpoint,
    CosignatureSigner,
    Policy,
    cosignature_message,
    open_checkpoint,
    open_witnessed_checkpoint,
    parse_decimal,
    parse_policy,
    sign_checkpoint,
    verify_cosignatures,
)
from ledger.tlog.note import (
    ALG_COSIGNATURE_V1,
    Note,
    NoteSignature,
    Signer,
    format_note,
    parse_note,
    sign_note,
)
from tests.support import vector_readme

_readme = vector_readme


# README "Signed notes" 3: a cosigned checkpoint (log seed 00..1f, witness seed 20..3f).
V3_LOG_VKEY = _readme(r"log vkey\s+(\S+)")
V3_WITNESS_VKEY = _readme(r"witness vkey\s+(\S+)")
V3_NOTE = "\n".join(
    line[3:] for line in _readme(r"   ```\n(   example\.com/testlog\n(?:.*\n)*?)   ```").split("\n")
).encode()
V3_TIME = int(_readme(r"`cosignature/v1\\ntime (\d+)\\n`"))

LOG = Signer.from_seed("example.com/testlog", bytes(range(32)))
WITNESS = CosignatureSigner.from_seed("witness.example.com/w1", bytes(range(32, 64)))
ROOT = bytes(range(32))


def _checkpoint(size: int = 8, origin: str = LOG.name) -> Checkpoint:
    return Checkpoint(origin, size, ROOT)


def _with(note_bytes: bytes, *lines: NoteSignature) -> bytes:
    note = parse_note(note_bytes)
    for line in lines:
        note = note.with_signature(line)
    return format_note(note)


# --- vector 3 -------------------------------------------------------------------------------------


def test_vector3_log_and_witness_signing_is_byte_exact() -> None:
    assert LOG.vkey == V3_LOG_VKEY
    assert WITNESS.vkey == V3_WITNESS_VKEY
    note = parse_note(V3_NOTE)
    checkpoint = Checkpoint.parse(note.text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/testlog", 8)
    signed = sign_checkpoint(checkpoint, LOG)
    cosigned = _with(signed, WITNESS.cosign(checkpoint, V3_TIME))
    assert cosigned == V3_NOTE
    assert WITNESS.cosign(checkpoint, V3_TIME).signature[:8].hex() == "000000006553f100"


def test_vector3_opens_and_its_cosignature_verifies() -> None:
    from ledger.tlog.note import VerifierKey

    log_key = VerifierKey.parse(V3_LOG_VKEY)
    witness_key = VerifierKey.parse(V3_WITNESS_VKEY)
    checkpoint = open_checkpoint(V3_NOTE, log_key)
    assert checkpoint.root_hash == base64.b64decode("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")
    assert verify_cosignatures(V3_NOTE, [witness_key, log_key]) == {witness_key: V3_TIME}
    assert cosignature_message(checkpoint, V3_TIME) == (
        f"cosignature/v1\ntime {V3_TIME}\n{checkpoint.body()}".encode()
    )


# --- checkpoint bodies ----------------------------------------------------------------------------

ROOT64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"o\n8\n{ROOT64}",  # no final newline
        "o\n8\n",
        f"\n8\n{ROOT64}\n",  # empty origin
        f"o\n08\n{ROOT64}\n",
        f"o\n+8\n{ROOT64}\n",
        f"o\n-1\n{ROOT64}\n",
        f"o\n 8\n{ROOT64}\n",
        f"o\n8 \n{ROOT64}\n",
        f"o\n\u0668\n{ROOT64}\n",  # ARABIC-INDIC DIGIT EIGHT: int() would take it
        f"o\n8_0\n{ROOT64}\n",
        f"o\n{2**63}\n{ROOT64}\n",
        f"o\n{'9' * 5000}\n{ROOT64}\n",
        f"o\n\n{ROOT64}\n",
        f"o\n8\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"o\n8\n{base64.b64encode(ROOT + b'x').decode()}\n",
        f"o\n8\n{ROOT64.rstrip('=')}\n",
        f"o\n8\n{ROOT64[:-2]}B=\n",  # non-zero padding bits
        f"o\n8\n{ROOT64}\n\n",  # empty extension line
        f"o\n8\n{ROOT64}\next\n\n",
        f"o\n8\n{ROOT64}\r\n",
        f"o\r\n8\n{ROOT64}\n",
        f"o\x00\n8\n{ROOT64}\n",
        f"o\n8\n{ROOT64}\nex\x01t\n",
    ],
)
def test_malformed_checkpoint_bodies_are_refused(text: str) -> None:
    with pytest.raises(MalformedError, match=r"^couldn't "):
        Checkpoint.parse(text)


def test_checkpoint_body_format() -> None:
    checkpoint = Checkpoint("example.com/log", 0, ROOT, ("ext one", "ext+two"))
    assert checkpoint.body() == f"example.com/log\n0\n{ROOT64}\next one\next+two\n"
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


def test_checkpoint_construction_validates() -> None:
    with pytest.raises(MalformedError):
        Checkpoint("o", -1, ROOT)
    with pytest.raises(MalformedError):
        Checkpoint("o", MAX_INT63 + 1, ROOT)
    with pytest.raises(MalformedError):
        Checkpoint("o", True, ROOT)
    with pytest.raises(MalformedError):
        Checkpoint("o\nx", 1, ROOT)
    with pytest.raises(MalformedError):
        Checkpoint("o", 1, ROOT, ("",))
    assert Checkpoint("o", MAX_INT63, ROOT).size == MAX_INT63


@given(st.integers(0, MAX_INT63))
def test_decimal_round_trip(value: int) -> None:
    assert parse_decimal(str(value), "n") == value


_LINES = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"), min_size=1).filter(
    lambda s: not any(c < " " for c in s)
)


@given(_LINES, st.integers(0, MAX_INT63), st.binary(min_size=32, max_size=32), st.lists(_LINES))
def test_body_then_parse_is_identity(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


# --- log signatures -------------------------------------------------------------------------------


def test_grease_and_unknown_signatures_are_ignored() -> None:
    signed = sign_checkpoint(_checkpoint(), LOG)
    greased = _with(
        signed,
        NoteSignature("grease.invalid", b"\x01\x02\x03\x04", b"\x00" * 70),
        NoteSignature(LOG.name, b"\xff\xff\xff\xff", b"wrong id, same name"),
        WITNESS.cosign(_checkpoint(), 1),
    )
    assert open_checkpoint(greased, LOG.verifier_key) == _checkpoint()


def test_extra_signers_follow_the_log_signature() -> None:
    other = Signer.from_seed("mirror.example", bytes(32))
    note = parse_note(sign_checkpoint(_checkpoint(), LOG, [other]))
    assert [s.name for s in note.signatures] == [LOG.name, other.name]


def test_a_bad_log_signature_rejects_the_checkpoint() -> None:
    signed = parse_note(sign_checkpoint(_checkpoint(), LOG))
    line = signed.signatures[0]
    forged = NoteSignature(line.name, line.key_id, LOG.sign(_checkpoint(9).body().encode()))
    with pytest.raises(SignatureError):
        open_checkpoint(format_note(Note(signed.text, (forged,))), LOG.verifier_key)
    # A good line does not rescue a bad one from the same key.
    both = format_note(Note(signed.text, (line, forged)))
    with pytest.raises(SignatureError):
        open_checkpoint(both, LOG.verifier_key)


def test_a_tampered_checkpoint_does_not_open() -> None:
    signed = sign_checkpoint(_checkpoint(8), LOG)
    tampered = signed.replace(b"\n8\n", b"\n9\n", 1)
    with pytest.raises(SignatureError):
        open_checkpoint(tampered, LOG.verifier_key)


def test_a_checkpoint_signed_by_someone_else_does_not_open() -> None:
    other = Signer.from_seed(LOG.name, bytes(32))  # same name, different key
    with pytest.raises(SignatureError, match="no signature from a known key"):
        open_checkpoint(sign_checkpoint(_checkpoint(), other), LOG.verifier_key)


def test_origin_must_be_the_log_key_name() -> None:
    foreign = _checkpoint(origin="example.com/other-log")
    with pytest.raises(RefusedError, match="not the origin"):
        sign_checkpoint(foreign, LOG)
    note = sign_note(foreign.body(), [LOG])  # signed anyway, by a raw note signer
    with pytest.raises(RefusedError, match="not the origin"):
        open_checkpoint(note, LOG.verifier_key)


def test_open_checkpoint_refuses_cosignature_keys_and_non_checkpoints() -> None:
    signed = sign_checkpoint(_checkpoint(), LOG)
    with pytest.raises(MalformedError, match="0x01"):
        open_checkpoint(signed, WITNESS.verifier_key)
    with pytest.raises(MalformedError):
        open_checkpoint(sign_note("not\na checkpoint\n", [LOG]), LOG.verifier_key)


# --- cosignatures ---------------------------------------------------------------------------------


def test_cosignatures_cover_extension_lines() -> None:
    checkpoint = Checkpoint(LOG.name, 8, ROOT, ("ext",))
    cosigned = _with(sign_checkpoint(checkpoint, LOG), WITNESS.cosign(checkpoint, 5))
    assert verify_cosignatures(cosigned, [WITNESS.verifier_key]) == {WITNESS.verifier_key: 5}
    other = Checkpoint(LOG.name, 8, ROOT, ("exu",))
    moved = _with(sign_checkpoint(other, LOG), WITNESS.cosign(checkpoint, 5))
    with pytest.raises(SignatureError):
        verify_cosignatures(moved, [WITNESS.verifier_key])


def test_bad_cosignatures_are_rejected() -> None:
    checkpoint = _checkpoint()
    good = WITNESS.cosign(checkpoint, 100)
    key_id = WITNESS.verifier_key.key_id
    name = WITNESS.verifier_key.name
    signature = good.signature[8:]
    cases = [
        (101).to_bytes(8, "big") + signature,  # timestamp changed
        good.signature[:-1],  # too short
        good.signature + b"\x00",  # too long
        good.signature[:8] + LOG.sign(cosignature_message(checkpoint, 100)),  # wrong key
    ]
    for raw in cases:
        bad = _with(sign_checkpoint(checkpoint, LOG), NoteSignature(name, key_id, raw))
        with pytest.raises(SignatureError, match="line 2"):
            verify_cosignatures(bad, [WITNESS.verifier_key])


def test_cosignature_timestamps_beyond_int63_are_rejected() -> None:
    # Validly signed by the witness's key, but over a timestamp Go verifiers cannot represent.
    checkpoint = _checkpoint()
    raw_signer = Signer.from_seed(
        WITNESS.verifier_key.name, bytes(range(32, 64)), ALG_COSIGNATURE_V1
    )
    timestamp = 2**63
    signature = raw_signer.sign(cosignature_message(checkpoint, timestamp))
    line = NoteSignature(
        raw_signer.name, raw_signer.verifier_key.key_id, timestamp.to_bytes(8, "big") + signature
    )
    bad = _with(sign_checkpoint(checkpoint, LOG), line)
    with pytest.raises(SignatureError, match="exceeds"):
        verify_cosignatures(bad, [WITNESS.verifier_key])


def test_unknown_witnesses_and_plain_keys_are_ignored() -> None:
    checkpoint = _checkpoint()
    other = CosignatureSigner.from_seed("w2.example", bytes(32))
    cosigned = _with(
        sign_checkpoint(checkpoint, LOG), other.cosign(checkpoint, 7), WITNESS.cosign(checkpoint, 9)
    )
    assert verify_cosignatures(cosigned, [WITNESS.verifier_key, LOG.verifier_key]) == {
        WITNESS.verifier_key: 9
    }
    assert verify_cosignatures(cosigned, [LOG.verifier_key]) == {}


def test_several_lines_from_one_witness_report_the_latest() -> None:
    checkpoint = _checkpoint()
    note = parse_note(sign_checkpoint(checkpoint, LOG))
    lines = (*note.signatures, WITNESS.cosign(checkpoint, 50), WITNESS.cosign(checkpoint, 40))
    cosigned = format_note(Note(note.text, lines))
    assert verify_cosignatures(cosigned, [WITNESS.verifier_key]) == {WITNESS.verifier_key: 50}


def test_recosigning_replaces_the_witness_line() -> None:
    checkpoint = _checkpoint()
    first = _with(sign_checkpoint(checkpoint, LOG), WITNESS.cosign(checkpoint, 1))
    second = _with(first, WITNESS.cosign(checkpoint, 2))
    assert len(parse_note(second).signatures) == 2
    assert verify_cosignatures(second, [WITNESS.verifier_key]) == {WITNESS.verifier_key: 2}


def test_cosigner_keys() -> None:
    assert WITNESS.verifier_key.alg == ALG_COSIGNATURE_V1
    again = CosignatureSigner.parse_private_key(WITNESS.private_key_text())
    assert again.vkey == WITNESS.vkey
    assert WITNESS.private_key_text().split("+")[3] == WITNESS.verifier_key.key_id.hex()
    with pytest.raises(MalformedError, match="0x04"):
        CosignatureSigner(LOG)
    with pytest.raises(MalformedError, match="0x04"):
        CosignatureSigner.parse_private_key(LOG.private_key_text())
    assert "PRIVATE" not in repr(WITNESS)
    assert CosignatureSigner.generate("w.example").vkey != WITNESS.vkey


@pytest.mark.parametrize("timestamp", [-1, 2**63, True])
def test_cosign_refuses_out_of_range_timestamps(timestamp: int) -> None:
    with pytest.raises(MalformedError, match="timestamp"):
        WITNESS.cosign(_checkpoint(), timestamp)


# --- policies -------------------------------------------------------------------------------------

WITNESSES = {
    name: CosignatureSigner.from_seed(f"{name.lower()}.example", bytes([i + 100]) * 32)
    for i, name in enumerate(["X1", "X2", "X3", "Y1", "Y2", "Y3"])
}
# The example policy of c2sp.org/tlog-policy, with real keys.
EXAMPLE_POLICY = f"""log {LOG.vkey}

witness X1 {WITNESSES["X1"].vkey}
witness X2 {WITNESSES["X2"].vkey}
witness X3 {WITNESSES["X3"].vkey}
group X-witnesses 2 X1 X2 X3

witness Y1 {WITNESSES["Y1"].vkey}
witness Y2 {WITNESSES["Y2"].vkey}
witness Y3 {WITNESSES["Y3"].vkey}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


def test_example_policy_parses() -> None:
    policy = parse_policy(EXAMPLE_POLICY)
    assert [log.key for log in policy.logs] == [LOG.verifier_key]
    assert [w.name for w in policy.witnesses] == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    assert [(g.name, g.threshold) for g in policy.groups] == [
        ("X-witnesses", 2),
        ("Y-witnesses", 1),
        ("X-and-Y", 2),
    ]
    assert policy.quorum == "X-and-Y"
    assert parse_policy(EXAMPLE_POLICY.encode()) == policy


def test_example_policy_quorum_on_every_subset() -> None:
    policy = parse_policy(EXAMPLE_POLICY)
    names = list(WITNESSES)
    for count in range(len(names) + 1):
        for subset in combinations(names, count):
            xs = sum(name.startswith("X") for name in subset)
            ys = sum(name.startswith("Y") for name in subset)
            keys = [WITNESSES[name].verifier_key for name in subset]
            if xs >= 2 and ys >= 1:
                policy.verify_quorum(keys)
            else:
                with pytest.raises(SignatureError, match="quorum 'X-and-Y' is not met"):
                    policy.verify_quorum(keys)


@settings(max_examples=50)
@given(st.integers(1, 6), st.data())
def test_threshold_groups_count_distinct_witnesses(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, n))
    members = list(WITNESSES)[:n]
    text = "".join(f"witness {m} {WITNESSES[m].vkey}\n" for m in members)
    text += f"group g {k} {' '.join(members)}\nquorum g\n"
    policy = parse_policy(text)
    signed = data.draw(st.lists(st.sampled_from(list(WITNESSES)), max_size=8))
    keys = [WITNESSES[m].verifier_key for m in signed]
    if len(set(signed) & set(members)) >= k:
        policy.verify_quorum(keys)
    else:
        with pytest.raises(SignatureError):
            policy.verify_quorum(keys)


def test_policy_syntax_details() -> None:
    x1 = WITNESSES["X1"].vkey
    policy = parse_policy(
        f"# a comment\n  \t# indented comment\n\t\nlog\t{LOG.vkey}  https://log.example/\n"
        f"  witness  X1 {x1} https://w.example/#frag  \nquorum none"
    )
    assert policy.logs[0].url == "https://log.example/"
    assert policy.witnesses[0].url == "https://w.example/#frag"
    assert policy.quorum == "none"
    policy.verify_quorum([])
    # Octets with the high bit set are opaque name characters.
    raw = parse_policy(f"witness K\xe2\x84\xaa {x1}\nquorum K\xe2\x84\xaa\n".encode("latin-1"))
    raw.verify_quorum([WITNESSES["X1"].verifier_key])
    with pytest.raises(SignatureError):
        raw.verify_quorum([])


def _policy(*lines: str) -> str:
    return "\n".join(lines) + "\n"


X1, X2 = WITNESSES["X1"].vkey, WITNESSES["X2"].vkey
X1_RENAMED = CosignatureSigner.from_seed("renamed.example", bytes([100]) * 32).vkey
LOG_RENAMED = Signer.from_seed("renamed.example", bytes(range(32))).vkey
MALFORMED_POLICIES = [
    _policy(f"log {LOG.vkey}"),  # no quorum
    _policy("quorum none", "quorum none"),
    _policy("quorum X1"),  # undefined
    _policy("quorum X1", f"witness X1 {X1}"),  # defined after use
    _policy(f"witness X1 {X1}", f"witness X1 {X2}", "quorum X1"),
    _policy(f"witness none {X1}", "quorum none"),
    _policy(f"witness X1 {X1}", f"witness X2 {X1_RENAMED}", "quorum X1"),  # same public key
    _policy(f"log {LOG.vkey}", f"log {LOG_RENAMED}", "quorum none"),  # same log key
    _policy(f"log {X1}", "quorum none"),  # cosignature key as a log key
    _policy(f"witness X1 {LOG.vkey}", "quorum X1"),  # log key as a witness key
    _policy(f"witness X1 {X1}", "group g 1 X1 X1", "quorum g"),
    _policy(f"witness X1 {X1}", "group g 1 X1", "group h 1 X1", "quorum h"),
    _policy(f"witness X1 {X1}", "group g 1 X1 none", "quorum g"),
    _policy(f"witness X1 {X1}", "group g 0 X1", "quorum g"),
    _policy(f"witness X1 {X1}", "group g 2 X1", "quorum g"),
    _policy(f"witness X1 {X1}", f"witness X2 {X2}", "group g 02 X1 X2", "quorum g"),
    _policy(f"witness X1 {X1}", "group g some X1", "quorum g"),
    _policy(f"witness X1 {X1}", "group g any", "quorum g"),
    _policy(f"witness X1 {X1}", "group g any g", "quorum g"),  # self-reference
    _policy(f"witness X1 {X1}", "group X1 any X1", "quorum X1"),
    _policy("witness X1", "quorum none"),
    _policy(f"witness X1 {X1} url extra", "quorum none"),
    _policy(f"log {LOG.vkey} url extra", "quorum none"),
    _policy("quorum none extra"),
    _policy("quorum none # trailing comments are not comments"),
    _policy("logs x", "quorum none"),
    _policy(f"witness X1 {X1}", "quorum X1\r"),
    _policy(f"witness X1\x0b{X1}", "quorum X1"),
    _policy("quorum none\x7f"),
    _policy("log not-a-vkey", "quorum none"),
]


@pytest.mark.parametrize("text", MALFORMED_POLICIES)
def test_malformed_policies_are_refused(text: str) -> None:
    with pytest.raises(MalformedError, match=r"^couldn't parse policy"):
        parse_policy(text)


def _witnessed(checkpoint: Checkpoint, *names: str) -> bytes:
    note = sign_checkpoint(checkpoint, LOG)
    return _with(note, *(WITNESSES[n].cosign(checkpoint, 1000) for n in names))


def test_open_witnessed_checkpoint() -> None:
    policy = parse_policy(EXAMPLE_POLICY)
    checkpoint = _checkpoint()
    assert open_witnessed_checkpoint(_witnessed(checkpoint, "X1", "X3", "Y2"), policy) == checkpoint
    with pytest.raises(SignatureError, match="quorum"):
        open_witnessed_checkpoint(_witnessed(checkpoint, "X1", "Y1", "Y2"), policy)
    unsigned_by_log = _with(
        sign_checkpoint(checkpoint, Signer.from_seed(LOG.name, bytes(32))),
        *(WITNESSES[n].cosign(checkpoint, 1) for n in ("X1", "X2", "Y1")),
    )
    with pytest.raises(SignatureError, match="no signature from a known key"):
        open_witnessed_checkpoint(unsigned_by_log, policy)


def test_open_witnessed_checkpoint_rejects_a_bad_witness_line() -> None:
    policy = parse_policy(EXAMPLE_POLICY)
    checkpoint = _checkpoint()
    good = _witnessed(checkpoint, "X1", "X2", "Y1")
    bad = _with(good, WITNESSES["Y2"].cosign(_checkpoint(9), 5))
    with pytest.raises(SignatureError, match="line 5"):
        open_witnessed_checkpoint(bad, policy)


def test_policy_without_logs_opens_nothing() -> None:
    policy = parse_policy(f"witness X1 {X1}\nquorum X1\n")
    assert isinstance(policy, Policy)
    with pytest.raises(SignatureError):
        open_witnessed_checkpoint(_witnessed(_checkpoint(), "X1"), policy)
