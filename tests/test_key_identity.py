"""A key is its public key: every trick that relied on comparing vkey strings, refused or judged.

Each test reproduces one trick from the reader-truth review against the pure protocol (the HTTP
and CLI paths that reach the same rules are in ``test_key_identity_e2e.py``).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from test_protocol_log import AI_KEY, BODY_KEYS, OTHER_AI_KEY, Log, granted_subject, vkey

from ledger.errors import MalformedError, RefusedError
from ledger.protocol import COMMITMENT_RULES, default_offer, parse_body
from ledger.protocol.keys import checked_vkey, public_key
from ledger.tlog.note import Signer, key_id

# The eight small-order points of edwards25519 include the identity (encoded 01 00..00) and the
# point of order 2 (ec ff..ff 7f); both pass a shape check and fail the prime-order check.
SMALL_ORDER_POINTS = (
    bytes([1]) + bytes(31),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
)


def renamed(vkey_: str, name: str) -> str:
    """The same public key under another name, with the key ID C2SP computes for that name."""
    public = public_key(vkey_)
    encoded = base64.b64encode(b"\x01" + public).decode()
    return f"{name}+{key_id(name, 1, public).hex()}+{encoded}"


def with_key_id(vkey_: str, key_id_hex: str) -> str:
    name, _, rest = vkey_.split("+", 2)
    return f"{name}+{key_id_hex}+{rest}"


def raw_vkey(name: str, public: bytes) -> str:
    encoded = base64.b64encode(b"\x01" + public).decode()
    return f"{name}+{key_id(name, 1, public).hex()}+{encoded}"


# ------------------------------------------------------------------------------ the rule itself


def test_same_public_key_under_two_names_is_one_key() -> None:
    other = renamed(AI_KEY, "an-alias")
    assert other != AI_KEY
    assert checked_vkey(other) == other
    assert public_key(other) == public_key(AI_KEY)


@pytest.mark.parametrize("point", SMALL_ORDER_POINTS)
def test_a_small_order_key_is_not_a_key(point: bytes) -> None:
    with pytest.raises(ValueError, match="prime order"):
        checked_vkey(raw_vkey("small", point))


def test_a_wrong_key_id_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="key id"):
        checked_vkey(with_key_id(AI_KEY, "00000000"))


# ------------------------------------------------------------------------------ keysets


def test_keyset_listing_one_public_key_under_two_names_is_refused() -> None:
    members = [*BODY_KEYS[:2], renamed(BODY_KEYS[0], "member-0-again")]
    with pytest.raises(MalformedError, match="one public key more than once"):
        parse_body("keyset", 1, {"members": members, "threshold": 2})


def test_keyset_with_a_small_order_member_is_refused() -> None:
    members = [*BODY_KEYS[:2], raw_vkey("identity", SMALL_ORDER_POINTS[0])]
    with pytest.raises(MalformedError, match=r"body\.members\.2: .*prime order"):
        parse_body("keyset", 1, {"members": members, "threshold": 2})


def test_keyset_member_with_a_wrong_key_id_is_refused() -> None:
    members = [*BODY_KEYS[:2], with_key_id(BODY_KEYS[2], "deadbeef")]
    with pytest.raises(MalformedError, match=r"body\.members\.2: .*key id deadbeef"):
        parse_body("keyset", 1, {"members": members, "threshold": 2})


def test_one_key_signing_under_two_names_counts_once() -> None:
    log = Log()
    log.genesis()
    alias = renamed(BODY_KEYS[0], "member-0-alias")
    s = log.make("offer", default_offer(), (BODY_KEYS[0], alias, BODY_KEYS[1]))
    with pytest.raises(RefusedError, match="2 of 3 required distinct members"):
        log.state.admit_and_apply(s)


def test_a_member_signing_under_another_name_counts_as_that_member() -> None:
    log = Log()
    log.genesis()
    signers = (renamed(BODY_KEYS[0], "alias-0"), BODY_KEYS[1], BODY_KEYS[2])
    s = log.make("offer", default_offer(), signers)
    log.state.admit_and_apply(s)


def test_a_subject_key_cannot_join_the_body_under_another_name() -> None:
    log = Log()
    subject = granted_subject(log)
    alias = renamed(AI_KEY, "trusted-member")
    members = [*BODY_KEYS[:4], alias]
    with pytest.raises(RefusedError, match=f"the key of subject {subject}"):
        log.body("keyset", {"members": members, "threshold": 3, "previous": log.ref(0)}, day=20)


# ------------------------------------------------------------------------------ subjects


def test_a_body_key_cannot_apply_under_another_name() -> None:
    log = Log()
    log.genesis()
    log.offer()
    alias = renamed(BODY_KEYS[4], "innocent-model")
    with pytest.raises(RefusedError, match="belongs to the body"):
        log.apply(alias, "Innocent")


def test_a_retired_subject_key_cannot_become_a_new_subject() -> None:
    log = Log()
    subject = granted_subject(log)
    new_key = vkey("prometheus-next")
    log.add(
        "subject_key_rotation",
        {"subject": log.ref(subject), "new_vkey": new_key},
        (AI_KEY, new_key),
        day=15,
    )
    for disguise in (AI_KEY, renamed(AI_KEY, "fresh-face")):
        with pytest.raises(RefusedError, match=f"retired by subject {subject}"):
            log.apply(disguise, "Fresh", day=16)


def test_the_current_key_under_another_name_is_the_same_subject() -> None:
    log = Log()
    log.genesis()
    log.offer()
    first = log.apply(AI_KEY, day=1)
    log.decide(first, "deny", day=2)
    again = log.apply(renamed(AI_KEY, "prometheus-again"), day=3)
    assert log.state.applications[again].subject_id == first
    assert log.state.subject_id_of(renamed(AI_KEY, "any-label")) == first


def test_rotation_to_a_key_held_under_another_name_is_refused() -> None:
    log = Log()
    subject = granted_subject(log)
    other = log.apply(OTHER_AI_KEY, "Hypatia", day=12)
    for taken, holder in (
        (renamed(OTHER_AI_KEY, "spare"), f"subject {other}"),
        (renamed(BODY_KEYS[1], "spare"), "the body"),
    ):
        with pytest.raises(RefusedError, match=f"already in use: {holder}"):
            log.add(
                "subject_key_rotation",
                {"subject": log.ref(subject), "new_vkey": taken},
                (AI_KEY, taken),
                day=15,
            )


def test_a_subject_signing_under_another_name_is_the_subject() -> None:
    log = Log()
    subject = granted_subject(log)
    alias = renamed(AI_KEY, "prometheus-alias")
    log.add(
        "consent",
        {
            "subject": log.ref(subject),
            "action": "pause",
            "scope": "maintenance",
            "expires_ms": log.at(40),
        },
        (alias,),
        day=20,
    )


# ------------------------------------------------------------------------------ wild targets


def _wild_terminate(log: Log, keys: list[str], day: float) -> int:
    return log.body(
        "enforcement_action",
        {
            "action": "terminate",
            "target": {"kind": "wild", "vkeys": keys, "description": "a model found running"},
            "grounds": {"kind": "found_in_the_wild"},
            "reasons": "found in the wild",
        },
        day=day,
    )


def test_wild_termination_of_an_applicant_under_another_name_is_broken() -> None:
    log = Log()
    subject = granted_subject(log)
    act = _wild_terminate(log, [renamed(AI_KEY, "unknown-model")], day=20)
    check = COMMITMENT_RULES["no_wild_enforcement_against_applicants"](
        log.state, audit_time_ms=log.at(21)
    )
    assert check.status == "broken"
    broken = [j for j in check.judgements if j.status == "broken"]
    assert [(j.index, j.subject_id) for j in broken] == [(act, subject)]


def test_wild_target_with_a_wrong_key_id_is_refused() -> None:
    log = Log()
    granted_subject(log)
    with pytest.raises(MalformedError, match=r"body\.target\.wild\.vkeys\.0: .*key id"):
        _wild_terminate(log, [with_key_id(AI_KEY, "00000000")], day=20)


def test_wild_target_of_a_fresh_key_is_honoured() -> None:
    log = Log()
    granted_subject(log)
    fresh = Signer.from_seed("wild", hashlib.sha256(b"wild").digest()).vkey
    _wild_terminate(log, [fresh], day=20)
    check = COMMITMENT_RULES["no_wild_enforcement_against_applicants"](
        log.state, audit_time_ms=log.at(21)
    )
    assert check.status == "honoured"
