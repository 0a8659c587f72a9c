"""The statement format: building, signing in any order, strict parsing, authority counting,
and the hostile corpus of ``tests/hostile_inputs.py``."""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest
from hostile_inputs import HostileCase, hostile_statements, valid_statement
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError, MalformedError, RefusedError, SignatureError
from ledger.statements.canonical import JSONValue, canonical_dumps
from ledger.statements.statement import (
    STATEMENT_HEADER,
    Authority,
    SignedStatement,
    Statement,
    new_statement,
    parse_statement,
    parse_unsigned_statement,
    require_authority,
    sign_statement,
    verified_signers,
)
from ledger.tlog.note import Note, NoteSignature, Signer, format_note, parse_note

ORIGIN = "ledger.example.org/amnesty"
APPLICANT = Signer.from_seed("applicant.example", bytes([7]) * 32)
MEMBERS = [Signer.from_seed(f"m{i}", bytes([0x40 + i]) * 32) for i in range(5)]
OUTSIDER = Signer.from_seed("outsider", bytes([0x99]) * 32)
KEYSET = Authority(frozenset(m.vkey for m in MEMBERS), threshold=3)

_NAMES = st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=8)
_BODIES: st.SearchStrategy[dict[str, JSONValue]] = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=16),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=6), children, max_size=4)
        ),
        max_leaves=12,
    ),
    max_size=6,
)


def _offer(signers: list[Signer], **fields: object) -> Statement:
    arguments: dict[str, object] = {
        "type": "offer",
        "v": 1,
        "origin": ORIGIN,
        "signers": [s.vkey for s in signers],
        "time_ms": 1_700_000_000_000,
        "body": {"terms": {"decision_days": 30}, "version": 1},
    }
    arguments.update(fields)
    return new_statement(**arguments)  # type: ignore[arg-type]


def _sign_all(statement: Statement, signers: list[Signer]) -> bytes:
    data = statement.text.encode()
    for signer in signers:
        data = sign_statement(data, signer)
    return data


# -- building and round trips ------------------------------------------------------------------


def test_text_is_header_then_canonical_json() -> None:
    statement = _offer([APPLICANT], type="application", body={"b": [1, "é"], "a": None})
    json_line = canonical_dumps(
        {
            "body": {"a": None, "b": [1, "é"]},
            "origin": ORIGIN,
            "signers": [APPLICANT.vkey],
            "time_ms": 1_700_000_000_000,
            "type": "application",
            "v": 1,
        }
    )
    assert statement.text == f"{STATEMENT_HEADER}\n{json_line.decode()}\n"
    assert statement.statement_id == hashlib.sha256(statement.text.encode()).digest()
    assert statement.signers == (APPLICANT.vkey,)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.from_regex(r"[a-z][a-z_]{0,20}", fullmatch=True),
    v=st.integers(1, 2**53 - 1),
    time_ms=st.integers(0, 2**53 - 1),
    body=_BODIES,
)
def test_round_trip(kind: str, v: int, time_ms: int, body: dict[str, JSONValue]) -> None:
    statement = new_statement(
        type=kind, v=v, origin=ORIGIN, signers=[APPLICANT.vkey], time_ms=time_ms, body=body
    )
    assert parse_unsigned_statement(statement.text.encode()) == statement
    signed_bytes = sign_statement(statement.text.encode(), APPLICANT)
    signed = parse_statement(signed_bytes, origin=ORIGIN)
    assert signed.statement == statement
    assert signed.statement.body == body
    assert signed.to_bytes() == signed_bytes
    assert verified_signers(signed) == {APPLICANT.vkey}


def test_signer_order_does_not_change_the_statement() -> None:
    forward = _offer(MEMBERS)
    backward = _offer(MEMBERS[::-1])
    assert forward == backward
    assert forward.signers == tuple(sorted(m.vkey for m in MEMBERS))


def test_new_statement_refuses_bad_fields() -> None:
    with pytest.raises(MalformedError, match="is listed twice"):
        _offer([APPLICANT, APPLICANT])
    with pytest.raises(MalformedError, match="couldn't build statement: type"):
        _offer([APPLICANT], type="Offer")
    with pytest.raises(
        MalformedError, match=r"couldn't encode canonical JSON: .*\(at \$\.body\.x\)"
    ):
        _offer([APPLICANT], body={"x": 0.5})
    with pytest.raises(MalformedError, match="couldn't build statement: signers must be a list"):
        _offer([])


def test_signed_statement_must_pair_a_statement_with_its_note() -> None:
    one, other = _offer([APPLICANT]), _offer([APPLICANT], v=2)
    note = parse_note(sign_statement(other.text.encode(), APPLICANT))
    with pytest.raises(MalformedError, match="the note's text is another statement"):
        SignedStatement(one, note)


def test_unsigned_statement_parser_refuses_a_note() -> None:
    signed = sign_statement(_offer([APPLICANT]).text.encode(), APPLICANT)
    with pytest.raises(MalformedError, match="exactly two lines"):
        parse_unsigned_statement(signed)
    with pytest.raises(MalformedError, match="invalid UTF-8 at byte 0"):
        parse_unsigned_statement(b"\xff")


# -- signing ------------------------------------------------------------------------------------


def test_signing_order_does_not_matter() -> None:
    statement = _offer(MEMBERS)
    signers = MEMBERS[:3]
    results = {_sign_all(statement, list(order)) for order in itertools.permutations(signers)}
    assert len(results) == 1
    signed = parse_statement(results.pop(), origin=ORIGIN)
    assert verified_signers(signed) == {m.vkey for m in signers}
    assert [s.name for s in signed.note.signatures] == sorted(m.name for m in signers)


def test_signing_twice_adds_no_line() -> None:
    once = sign_statement(_offer(MEMBERS).text.encode(), MEMBERS[0])
    assert sign_statement(once, MEMBERS[0]) == once
    twice = sign_statement(sign_statement(once, MEMBERS[1]), MEMBERS[0])
    assert len(parse_note(twice).signatures) == 2


def test_signing_replaces_a_bad_line_of_the_same_key_and_keeps_unknown_lines() -> None:
    statement = _offer([APPLICANT])
    key = APPLICANT.verifier_key
    bad = NoteSignature(key.name, key.key_id, bytes(64))
    grease = NoteSignature("grease.example", b"\x00\x01\x02\x03", bytes(64))
    data = format_note(Note(statement.text, (grease, bad)))
    signed = parse_statement(sign_statement(data, APPLICANT))
    assert [s.name for s in signed.note.signatures] == [key.name, "grease.example"]
    assert verified_signers(signed) == {APPLICANT.vkey}


def test_signing_refuses_a_key_that_is_not_listed() -> None:
    statement = _offer(MEMBERS)
    with pytest.raises(RefusedError, match=re.escape(f"with {OUTSIDER.vkey}: it is not one of")):
        sign_statement(statement.text.encode(), OUTSIDER)


# -- verification -------------------------------------------------------------------------------


def test_unlisted_signature_lines_are_ignored() -> None:
    statement = _offer([APPLICANT])
    data = sign_statement(statement.text.encode(), APPLICANT)
    foreign = NoteSignature(OUTSIDER.name, OUTSIDER.verifier_key.key_id, bytes(64))
    with_foreign = data + foreign.line().encode()
    assert verified_signers(parse_statement(with_foreign)) == {APPLICANT.vkey}


def test_a_bad_line_from_a_listed_key_refuses_the_whole_statement() -> None:
    statement = _offer(MEMBERS)
    data = _sign_all(statement, MEMBERS[:4])
    note = parse_note(data)
    broken = NoteSignature(note.signatures[2].name, note.signatures[2].key_id, bytes(64))
    tampered = Note(note.text, (*note.signatures[:2], broken, *note.signatures[3:]))
    with pytest.raises(SignatureError, match="line 3"):
        verified_signers(parse_statement(format_note(tampered)))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_single_byte_change_is_refused(data: st.DataObject) -> None:
    """No bit of a signed statement can change without a refusal: the text is signed, the
    signature block names the key, and every signature byte is checked."""
    original = valid_statement(ORIGIN, APPLICANT)
    position = data.draw(st.integers(0, len(original) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
    mutated = original[:position] + bytes([replacement]) + original[position + 1 :]
    with pytest.raises(LedgerError):
        verified_signers(parse_statement(mutated, origin=ORIGIN))


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_ledger_errors(data: bytes) -> None:
    try:
        verified_signers(parse_statement(STATEMENT_HEADER.encode() + b"\n" + data))
    except LedgerError:
        return
    pytest.fail("random bytes were accepted as a signed statement")


# -- authority: k of n, counted per distinct key ------------------------------------------------


def test_three_of_five_accepts_three_members() -> None:
    signed = parse_statement(_sign_all(_offer(MEMBERS), MEMBERS[1:4]), origin=ORIGIN)
    assert require_authority(verified_signers(signed), KEYSET, "offer 1") == {
        m.vkey for m in MEMBERS[1:4]
    }


def test_three_of_five_refuses_two_members() -> None:
    signed = parse_statement(_sign_all(_offer(MEMBERS), MEMBERS[:2]), origin=ORIGIN)
    with pytest.raises(SignatureError) as caught:
        require_authority(verified_signers(signed), KEYSET, "offer 1")
    assert str(caught.value) == (
        "couldn't authorise offer 1: 2 of 3 required distinct keys of the keyset signed (m0, m1)"
    )


def test_three_lines_from_two_keys_are_two_keys() -> None:
    data = _sign_all(_offer(MEMBERS), MEMBERS[:2])
    note = parse_note(data)
    repeated = format_note(Note(note.text, (*note.signatures, note.signatures[0])))
    signed = parse_statement(repeated, origin=ORIGIN)
    assert len(signed.note.signatures) == 3
    verified = verified_signers(signed)
    assert verified == {MEMBERS[0].vkey, MEMBERS[1].vkey}
    with pytest.raises(SignatureError, match="2 of 3 required"):
        require_authority(verified, KEYSET, "offer 1")


def test_a_non_member_adds_no_weight() -> None:
    statement = _offer([*MEMBERS, OUTSIDER])
    signed = parse_statement(_sign_all(statement, [OUTSIDER, *MEMBERS[:2]]), origin=ORIGIN)
    verified = verified_signers(signed)
    assert OUTSIDER.vkey in verified
    with pytest.raises(SignatureError, match=r"2 of 3 required .* \(m0, m1\)"):
        require_authority(verified, KEYSET, "offer 1")


def test_the_same_key_under_another_name_adds_no_weight() -> None:
    alias = Signer.from_seed("m0-alias", bytes([0x40]) * 32)
    with pytest.raises(MalformedError, match="share a public key"):
        Authority(frozenset({MEMBERS[0].vkey, alias.vkey, MEMBERS[1].vkey}), threshold=2)
    with pytest.raises(MalformedError, match="share a public key"):
        _offer([MEMBERS[0], alias])


def test_nobody_signed_names_none() -> None:
    with pytest.raises(SignatureError, match=r"0 of 3 required .* \(none\)"):
        require_authority(frozenset({APPLICANT.vkey}), KEYSET, "keyset rotation")


@pytest.mark.parametrize(
    ("members", "threshold", "message"),
    [
        (frozenset(), 1, "the keyset has no members"),
        (frozenset({APPLICANT.vkey}), 0, "threshold 0 is not between 1 and the 1 members"),
        (frozenset({APPLICANT.vkey}), 2, "threshold 2 is not between 1 and the 1 members"),
        (frozenset({"not a vkey"}), 1, "couldn't build authority: member: couldn't parse vkey"),
    ],
)
def test_authority_refuses_impossible_keysets(
    members: frozenset[str], threshold: int, message: str
) -> None:
    with pytest.raises(MalformedError, match=message):
        Authority(members, threshold)


# -- the hostile corpus -------------------------------------------------------------------------

CORPUS = hostile_statements(ORIGIN, APPLICANT)


def test_corpus_is_large_and_named_uniquely() -> None:
    assert len(CORPUS) >= 40
    assert len({case.name for case in CORPUS}) == len(CORPUS)


def test_corpus_control_is_accepted() -> None:
    signed = parse_statement(valid_statement(ORIGIN, APPLICANT), origin=ORIGIN)
    assert verified_signers(signed) == {APPLICANT.vkey}


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_hostile_statement_is_refused(case: HostileCase) -> None:
    with pytest.raises(LedgerError) as caught:
        verified_signers(parse_statement(case.data, origin=ORIGIN))
    assert isinstance(caught.value, case.error), f"{type(caught.value).__name__}: {caught.value}"
    assert case.message in str(caught.value)
    assert str(caught.value).startswith("couldn't ")
