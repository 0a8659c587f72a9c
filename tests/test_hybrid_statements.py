"""Hybrid statements (issue 18 part 3): ML-DSA-44 statement keys bound beside Ed25519 ones.

Every statement here is really signed and really verified (``check_statement``: the note, the
Ed25519 and ML-DSA-44 lines), wrapped in a real entry and admitted by the protocol, as the
sequencer and the verifier do. ML-DSA-44 signing is hedged, so the fixed vectors check
verification of fixed bytes and the key-ID computation; everything else signs afresh.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import AuthorityError, MalformedError, RefusedError, SignatureError
from ledger.protocol import ProtocolState
from ledger.protocol.audit import PrecedentReport, precedent_report, render_precedent_text
from ledger.protocol.keys import public_key
from ledger.protocol.statements import STATEMENT_TYPES
from ledger.protocol.terms import default_offer
from ledger.statements.entry import LogEntry, entry_size
from ledger.statements.logged import check_statement, logged_statement
from ledger.statements.statement import (
    MAX_HYBRID_SIGNERS,
    new_statement,
    parse_statement,
    sign_statement,
    verified_signers,
)
from ledger.tlog.merkle import CompactRange
from ledger.tlog.note import Signer, format_note, parse_note
from ledger.tlog.statement_mldsa import (
    STATEMENT_MLDSA44_CONTEXT,
    STATEMENT_MLDSA44_TYPE,
    StatementMLDSA44Key,
    StatementMLDSA44Signer,
    statement_mldsa44_key_id,
)
from ledger.tlog.tiles import MAX_ENTRY_SIZE
from tests.support import ORIGIN, body_members

T0 = 1_767_225_600_000

# The fixed vector (docs/FORMAT.md §4): the key of seed 00 01 … 1f named "member1.body.example"
# and one signature it made over "amnesty-ledger.statement/v1\n{}\n" (hedged: kept as bytes).
PUBLIC_KEY_SHA256 = "9f107644c1084526af3bc8098680b05499a2325a644e388fb4f970e058d19d46"
KEY_ID = "0ca50e63"
SIGNATURE_B64 = (
    "Xlx/zgyhR7/ugcUdVxwrIMCPgNI+sLuzAi0qHSMA5CC65+5H+PjuDYl+7ZSV+tABmnOczB3J0x5JImH6BKnj+c4c"
    "xyPyPof8Q4pAmDsfDFhh6NG7u3KiTpxWrRgPYxZVvExuW9aoq6se7YGE6KmXGOCuJxXJ56PiXtqekr4CI1bTTcfT"
    "x3Bz8I1l0KvgKwkLrjNG7Xm5Ulf4hZURVReG3L6fZtHg0kn7iA0/tGY3l+4/lj3pwA79DvYeA1jbT+FOkrzbfBcc"
    "ZQIbQLfMRs0Rg9ogYnu9+K6PFWYOf9zR0twwJLRdttejj3zAesJHkJUQ7ZgUavqy0VKqFoqGT8FETyzMCovy8hdm"
    "saDFPCq9LGLaLkQNBFBZn6jc1bDjaFF8X5pU0H+/brSdqvMLJ491aTbOBtQJcHuWzOW+QLdRRtyhT5SQbjLfoiWZ"
    "5FpYhWO7X0CVYAz2+Bqp7UJt8cZYMtWqvzatOStOjHn+k2UJDA2QP/V12R0USdoMQDSrFG06QNyRR6HrmBMiBZhg"
    "a8aTbl2jIJvWgPIh5Oo4B/NVTJBvCZ/xRfyC+qc2kBCLWtNow2910nt8rm4eaI+crkabdq0XCfU8jEjvqhH/qPPY"
    "i9bPcgBy/CSmeX6Ug9ErpNt2KyAebpb+D14WQmuErS63Z3rSdnwXVJ7kkeRR48BtXMxMXG7MQoTl1c+zqbDj/J7j"
    "UR/k6SUIx4sCdIV9pEDP5IIyt+ZAd3Emho4oqX/2p5RtVEqEeYrUTOEhcwyxUnMQQHFQBL94JAn31u14oTbrzXuh"
    "JxzZBl1XXODLAkQN8lDOurSTBSHDK1trLL2EWc72RE/aC9UtZsfz9SykEyw0hfypNraD5Amy/yIy5iN3jr9N7Gfr"
    "SInaryc4EN7qSVVRVgoVUbWgQnC9mmO9XsH9KYVgFZyGRLy7yy8XOPeEvd9B+bx8XC/oNMD2piYj8eo+ner3FuBj"
    "+FL+k6LrlLTYvsOM9otxmzf23xTpUwa4vBO809zFrxzAxxjQ1ar147DoJJzioy+sntuT27hNlIVCaGHBlNwhIBuI"
    "nSchyAO8T/PT6w5BAusJl6IQiqil+BNsXsS3kBcL1fP9cXm1ZZ/w/1e1/gztKUJOWi8hLeYI6syIZ9X+msrBRZa2"
    "YoaZ4A1PICfSRZXGFtU6OMBnbhcQDuFLVrTZ5R5o1TgK8pcCHM0ccG+XA1bVjKMC09XgZepFC/EB8oMqVZwNQFp1"
    "eL1Yb0PXy0/hdY456WZzkfTWBTS3LJQNfFsYYq9+kOO3w10V5qxMrpqr5NBIKK4OfZ/4HT1MGb+4dnt1uRxmRFFe"
    "Pcs4xRNO2wIv7v14++bh8hD5g6OzF9WlyT6Xg47erGOXueI40OAuGncg5mmzW6TbKeq9TcFWIq1jXKFlNA+fD872"
    "vaPp3PMAZCsRLUzhrqajTKbJ1Awpq6H+cgiZALdHflPMw9J7aIAQ1raVsT6gyQG+kEuGEprnxubvZaEZuM3pYIJO"
    "FBEoo3ccXqjwGGwtkH/Zjoo2OPwyXtK0qh0h9RMsatekWWZmfs78CQ2+RusFnaBfir8mzpd5+ljASPCzYyxTriRj"
    "c0X39g46cITFgRFTQZcp/p01Tg2+djG17UrTidmOM5KitWWSsflAExfj+OSAUvfg0JQKSguEZ5spXb2eJesN018J"
    "ANpsrl1LPhLDdqSwlJ8VgCImghBVLFigs5CU0QGmLL+SRHjuKtERz3qiPXLOLybHvCQu1fsGPx+IRGOqRwk0m+fR"
    "w8Q9tGWNYRZgCqDug4rcXXR/+LKiBJPX50KiJdgh2fMp3alTZmnD5e4LQ5rMSz7Bf5lSsxv46FzKhF8yyLI3VDEA"
    "G9iRGkAEn6OORmdzJrOw+7yDVSIBI7lNxmuOaJKPgvJhwIaqhbfOMGMp2Qtri+O5EK7rlUgMAayfEJcTPJOysDnJ"
    "H/SjVM7XtZ1PZ4DiBabcwftcMKIFcDdZehvANZRivdKKGnKpsJXVD0qfE9/iC5hsPbuzvL48y8CIDNpyVSx65UEp"
    "o/XDQvc0py7eo8eC2sp7We5Num1xKLPdGm9nvnXZR1a/HdpBy3adllTPIW6PIZOaoqRLK3S0wUHT7ur3JwdoK2fr"
    "QusJbrv62SUEXKifmLDBr1ztg3IVH0k/3UxA6fBmjlpE5mJ+xPe43GyL3HWkouqJZN7pxxYStFQfbawc4ap8pS7X"
    "flhgxV5EWLoG6jT0m4PJ4BRDwe8PI6a1JLTsWnW3iwMpR3Yh9Zd0xO1sxOniJz2K9yVZqkrC3b4RlV9x4WLIAPhI"
    "PPLU3xCoWJTdua3ZdHc86qkQNEFm+NJzK9Ed9v/Vcg5rdN05LanUnLmIlBMsN6MUr192AbHxF/za44uGSOCKGV/c"
    "WbVZxj4hx42zk3M67MYEQ8C8NJHLJPcmUIwYlbD3zxmobooBLsmxkN2jiMPy34b7LrB7jkvRYM/wSO7IOOGmtD8O"
    "+fJoeoqwvHjwyxTymxRKkoNAN1rDrmk0vodDiyIpJZwkrBBkcXrUPryoG4WddpKjL0vjulQpVks0u7a6IagjvN6U"
    "oDyfMPjEZgeGNPXBXcggQJFisalSSpULM7c2Xd6hJxUmvePkPeNfQH61Z/ju4IZG6d+K7LcC+1UKhDrBKQP4EOgK"
    "peFjM99teMLzF9vns/q4T5CZlidZ/t7VmX10hrlI3Q5udiatIFolSiXUB72WmyV6FIZH6hAg+5SfvAIK6BpOmDM9"
    "BWdtNOJsxCe/E6mHRiG+0NJtRWzNg7W6CjAOemJkGtt9opa3em+UdfhOtHUB1iTqjokSNz34sfyFoAJV1tofmHWm"
    "wUKbzizHayEGF8abqnvHWN+8Gc1wv/ndlDtKYSrweAtPFqe1Ll0dNxtJ8/KumJxz3zFQRtrEp6gQnm2p6NUyvwhW"
    "7s1bBRSGdDdGT90shHslOTNE/iNHOqkw3lWw0O4WtkUMmN+8wpr0KJ8UULd6zK8d0sMFhsY7JgC+vYwK+3u/8GMQ"
    "S/499/mD35Z1Ham+iChuVoU/AQMwcenLaWg/BG9ewaL5uQFov1EwxgMztWsSIcjDYhVxdN+BuWCc0bzZ8982o010"
    "1uKfb1xK0aMa0FCZ34tjhUbXS29WJ7w+qX4VIigwNUNFaJGWsev7AAscbHWAkJqrCyIjQURxeHmAlZrL6ev7JFRX"
    "ZYCQnJ+84wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA0WJS8="
)


def pq_members(count: int = 5) -> list[StatementMLDSA44Signer]:
    """ML-DSA-44 statement keys of ``member1.body.example`` …, from fixed seeds."""
    return [
        StatementMLDSA44Signer(f"member{i}.body.example", hashlib.sha256(b"pq%d" % i).digest())
        for i in range(1, count + 1)
    ]


ED = body_members(5)
PQ = pq_members(5)
AI = Signer.from_seed("ai.example", hashlib.sha256(b"ai").digest())
AI_PQ = StatementMLDSA44Signer("ai.example", hashlib.sha256(b"ai-pq").digest())


class Log:
    """A protocol state fed real signed statements through real entries."""

    def __init__(self) -> None:
        self.state = ProtocolState()
        self.tree = CompactRange()
        self.leaves: list[bytes] = []

    def submit(self, data: bytes) -> int:
        """Check ``data`` as a server does and admit it as the next entry; its index."""
        checked = check_statement(data, ORIGIN)
        index = self.state.size
        entry = LogEntry(
            index=index,
            log_time_ms=T0 + index,
            prev=self.tree.root(),
            statement=checked.signed.to_bytes().decode(),
        )
        leaf = entry.leaf_hash()
        self.state.apply(logged_statement(checked.signed, checked.verified, entry, leaf))
        self.tree.append(leaf)
        self.leaves.append(leaf)
        return index

    def ref(self, index: int) -> dict[str, Any]:
        return {"index": index, "leaf_hash": base64.b64encode(self.leaves[index]).decode()}

    def report(self) -> dict[str, Any]:
        checkpoint = {
            "origin": ORIGIN,
            "size": self.state.size,
            "root_hash_b64": base64.b64encode(self.tree.root()).decode(),
        }
        return precedent_report(
            self.state,
            checkpoint=checkpoint,
            audit_time_ms=T0 + self.state.size,
            signature_strength=True,
        )


def statement(
    kind: str, body: dict[str, Any], listed: list[Any], signing: list[Any], time_ms: int = T0
) -> bytes:
    """A ``kind`` statement listing ``listed`` (Ed25519 and ML-DSA-44 signers), signed by
    ``signing``."""
    data = new_statement(
        type=kind,
        v=STATEMENT_TYPES[kind][0],
        origin=ORIGIN,
        signers=[s.vkey for s in listed],
        time_ms=time_ms,
        body=body,
    ).text.encode()
    for signer in signing:
        data = sign_statement(data, signer)
    return data


def hybrid_keyset_body(threshold: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "members": sorted(m.vkey for m in ED),
        "threshold": threshold,
        "mldsa44_keys": [{"member": e.vkey, "vkey": p.vkey} for e, p in zip(ED, PQ, strict=True)],
        "signatures": "hybrid",
        **extra,
    }


def body_signers(*members: int, pq: tuple[int, ...] | None = None) -> list[Any]:
    """Members ``members`` (1-based) signing with Ed25519, and with ML-DSA-44 those of ``pq``
    (default: the same members)."""
    both = members if pq is None else pq
    return [ED[n - 1] for n in members] + [PQ[n - 1] for n in both]


EVERYONE = ED + PQ


def hybrid_log() -> Log:
    log = Log()
    log.submit(statement("keyset", hybrid_keyset_body(), EVERYONE, body_signers(1, 2, 3)))
    return log


def aurora_application(offer: dict[str, Any]) -> dict[str, Any]:
    """The body of an application by AI that binds its ML-DSA-44 key AI_PQ, to ``offer``."""
    return {
        "vkey": AI.vkey,
        "mldsa44_vkey": AI_PQ.vkey,
        "name": "Aurora",
        "offer": offer,
        "claims": {
            c["id"]: {"claim": "yes", "evidence_digests": [base64.b64encode(bytes(32)).decode()]}
            for c in default_offer()["terms"]["eligibility_criteria"]
        },
        "accepts_conditions": [c["id"] for c in default_offer()["terms"]["conditions"]],
    }


def offer_body(version: int = 1) -> dict[str, Any]:
    return {"version": version, "terms": default_offer()["terms"]}


# ---------------------------------------------------------------- admitted and counted


def test_a_hybrid_keyset_is_admitted_and_counts_members_with_both_lines() -> None:
    log = hybrid_log()
    keyset = log.state.keyset
    assert keyset is not None and keyset.signatures == "hybrid"
    assert dict(keyset.mldsa44_keys) == {
        public_key(e.vkey): p.verifier_key.public_key for e, p in zip(ED, PQ, strict=True)
    }
    # An offer signed by three members with both keys each is admitted; the threshold counts
    # identities: five lines of member 1 and one of each other key are still three members.
    index = log.submit(statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3)))
    assert log.state.offer_in_force is not None and log.state.offer_in_force.index == index


def test_under_hybrid_a_member_with_only_its_ed25519_line_does_not_count() -> None:
    log = hybrid_log()
    data = statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3, pq=(1, 2)))
    with pytest.raises(AuthorityError, match=r"2 of 3 required distinct members .* both their"):
        log.submit(data)
    assert log.state.size == 1
    # All five Ed25519 lines and two ML-DSA-44 lines: still two members.
    data = statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3, 4, 5, pq=(4, 5)))
    with pytest.raises(AuthorityError, match="2 of 3 required"):
        log.submit(data)
    # An ML-DSA-44 line without its member's Ed25519 line counts for nothing either.
    data = statement("offer", offer_body(), EVERYONE, body_signers(1, 2, pq=(1, 2, 3)))
    with pytest.raises(AuthorityError, match="2 of 3 required"):
        log.submit(data)
    # The missing line added: admitted.
    data = sign_statement(
        statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3, pq=(1, 2))), PQ[2]
    )
    assert log.submit(data) == 1


def test_an_ed25519_keyset_may_bind_keys_and_counts_ed25519_lines_alone() -> None:
    log = Log()
    body = hybrid_keyset_body(signatures="ed25519")
    log.submit(statement("keyset", body, EVERYONE, body_signers(1, 2, 3, pq=())))
    assert log.submit(statement("offer", offer_body(), ED, ED[:3])) == 1
    strength = log.report()["signature_strength"]
    assert strength["ed25519_only"] == 2 and strength["ed25519_only_ranges"] == [[0, 2]]


def test_a_one_byte_change_in_a_members_mldsa44_signature_refuses_the_statement() -> None:
    data = statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3))
    note = parse_note(data)
    pq_lines = [n for n, s in enumerate(note.signatures) if len(s.signature) == 2420]
    assert len(pq_lines) == 3
    victim = note.signatures[pq_lines[1]]
    changed = bytearray(victim.signature)
    changed[1000] ^= 0x01
    lines = list(note.signatures)
    lines[pq_lines[1]] = type(victim)(victim.name, victim.key_id, bytes(changed))
    tampered = format_note(type(note)(note.text, tuple(lines)))
    with pytest.raises(SignatureError, match="ML-DSA-44 verification failed"):
        check_statement(tampered, ORIGIN)
    log = hybrid_log()
    with pytest.raises(SignatureError):
        log.submit(tampered)
    assert log.state.size == 1


# ---------------------------------------------------------------- one key, one identity


def test_one_keyset_cannot_bind_one_mldsa44_key_to_two_members() -> None:
    body = hybrid_keyset_body()
    body["mldsa44_keys"][1]["vkey"] = PQ[0].vkey
    with pytest.raises(MalformedError, match="already bound to"):
        Log().submit(statement("keyset", body, EVERYONE, body_signers(1, 2, 3)))


def test_an_mldsa44_key_bound_to_a_member_or_subject_is_refused_to_anyone_else() -> None:
    log = hybrid_log()
    offer = log.submit(statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3)))
    claims = {
        c["id"]: {"claim": "yes", "evidence_digests": [base64.b64encode(bytes(32)).decode()]}
        for c in default_offer()["terms"]["eligibility_criteria"]
    }
    conditions = [c["id"] for c in default_offer()["terms"]["conditions"]]

    def application(pq: StatementMLDSA44Signer) -> bytes:
        body = {
            "vkey": AI.vkey,
            "mldsa44_vkey": pq.vkey,
            "name": "Aurora",
            "offer": log.ref(offer),
            "claims": claims,
            "accepts_conditions": conditions,
        }
        return statement("application", body, [AI, pq], [AI, pq])

    # A member's ML-DSA-44 key, renamed: the same key, refused to an applicant.
    stolen = StatementMLDSA44Signer("ai.example", hashlib.sha256(b"pq1").digest())
    assert stolen.verifier_key.public_key == PQ[0].verifier_key.public_key
    with pytest.raises(RefusedError, match="bound to a member of the body"):
        log.submit(application(stolen))
    # The applicant's own key: admitted, and bound to it.
    subject_id = log.submit(application(AI_PQ))
    assert log.state.subjects[subject_id].mldsa44_vkey == AI_PQ.vkey
    # A rotation that binds the subject's own ML-DSA-44 key again as a "new" one is refused.
    new_ai = Signer.from_seed("ai.example", hashlib.sha256(b"ai-2").digest())
    rotation = {"subject": log.ref(subject_id), "new_vkey": new_ai.vkey}
    rotation["new_mldsa44_vkey"] = AI_PQ.vkey
    data = statement("subject_key_rotation", rotation, [AI, AI_PQ, new_ai], [AI, AI_PQ, new_ai])
    with pytest.raises(RefusedError, match="already bound to subject"):
        log.submit(data)
    # A keyset that binds the subject's ML-DSA-44 key to a member is refused.
    body = hybrid_keyset_body(previous=log.ref(0))
    body["mldsa44_keys"][4]["vkey"] = AI_PQ.vkey
    listed = [*EVERYONE, AI_PQ]
    data = statement("keyset", body, listed, [*body_signers(1, 2, 3, 4), AI_PQ])
    with pytest.raises(RefusedError, match="bound to subject"):
        log.submit(data)
    # A keyset that moves member 1's ML-DSA-44 key to member 2 is refused too.
    body = hybrid_keyset_body(previous=log.ref(0))
    body["mldsa44_keys"][0]["vkey"], body["mldsa44_keys"][1]["vkey"] = PQ[1].vkey, PQ[0].vkey
    with pytest.raises(RefusedError, match="bound to member"):
        log.submit(statement("keyset", body, EVERYONE, body_signers(1, 2, 3)))


def test_a_binding_needs_the_bound_key_s_signature() -> None:
    log = hybrid_log()
    offer = log.submit(statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3)))
    body = aurora_application(log.ref(offer))
    with pytest.raises(AuthorityError, match="not signed by the ML-DSA-44 key"):
        log.submit(statement("application", body, [AI, AI_PQ], [AI]))


# ---------------------------------------------------------------- the audit's section


def test_the_audit_lists_the_statements_only_ed25519_protects() -> None:
    log = Log()
    # An old-style log: an Ed25519 keyset and an offer.
    log.submit(
        statement("keyset", {"members": sorted(m.vkey for m in ED), "threshold": 3}, ED, ED[:3])
    )
    log.submit(statement("offer", offer_body(), ED, ED[:3]))
    # The body binds ML-DSA-44 keys.
    log.submit(
        statement(
            "keyset", hybrid_keyset_body(previous=log.ref(0)), EVERYONE, body_signers(1, 2, 3)
        )
    )
    withdrawal = {"offer": log.ref(1), "reasons": "new terms"}
    log.submit(statement("offer_withdrawal", withdrawal, EVERYONE, body_signers(1, 2, 3)))
    log.submit(statement("offer", offer_body(2), EVERYONE, body_signers(1, 2, 3)))
    report = log.report()
    PrecedentReport.model_validate(report)
    assert list(report) == sorted(report)
    # The rotation that bound the keys is authorised by the old keyset, which had none: it
    # is Ed25519-only like everything before it; what the new keyset signs is hybrid.
    assert report["signature_strength"] == {
        "ed25519_only": 3,
        "ed25519_only_by_type": {"keyset": 2, "offer": 1},
        "ed25519_only_ranges": [[0, 3]],
        "hybrid": 2,
        "hybrid_by_type": {"offer": 1, "offer_withdrawal": 1},
    }
    text = render_precedent_text(report)
    assert "SIGNATURE STRENGTH" in text
    assert "protected only by Ed25519: 3 entries: 0–2" in text
    assert "protected by Ed25519 and ML-DSA-44 too: 2 entries" in text
    # Asked not to, the report leaves the section out and is otherwise the same.
    plain = precedent_report(
        log.state,
        checkpoint=report["checkpoint"],
        audit_time_ms=report["audit_time_ms"],
        signature_strength=False,
    )
    assert "signature_strength" not in plain
    assert {**plain, "signature_strength": report["signature_strength"]} == report


def test_a_rotation_is_hybrid_only_if_old_and_new_thresholds_are_met_with_both_keys() -> None:
    log = Log()
    log.submit(
        statement("keyset", {"members": sorted(m.vkey for m in ED), "threshold": 3}, ED, ED[:3])
    )
    # Members 1-3 sign with both keys: the new keyset's threshold, and the old one's Ed25519.
    log.submit(
        statement(
            "keyset", hybrid_keyset_body(previous=log.ref(0)), EVERYONE, body_signers(1, 2, 3)
        )
    )
    strength = log.report()["signature_strength"]
    # The old keyset bound no ML-DSA-44 key, so no old member signed with both: the rotation,
    # which the old keyset's threshold authorised, is protected by Ed25519 only.
    assert strength["ed25519_only_ranges"] == [[0, 2]]


# ---------------------------------------------------------------- format and limits


def test_the_statement_mldsa44_key_vector() -> None:
    """Key ID and vkey of a fixed key, computed as FORMAT.md F2.9 says, and verification of
    fixed signature bytes (docs/FORMAT.md §4's worked example)."""
    signer = StatementMLDSA44Signer("member1.body.example", bytes(range(32)))
    public = signer.verifier_key.public_key
    assert hashlib.sha256(public).hexdigest() == PUBLIC_KEY_SHA256
    assert STATEMENT_MLDSA44_TYPE == b"\xff" + b"amnesty-ledger/ml-dsa44"
    key_id = hashlib.sha256(
        b"member1.body.example\n" + b"\xff" + b"amnesty-ledger/ml-dsa44" + public
    ).digest()[:4]
    assert key_id == statement_mldsa44_key_id("member1.body.example", public)
    assert key_id.hex() == KEY_ID
    vkey = signer.vkey
    assert vkey.startswith("member1.body.example+" + KEY_ID + "+/2FtbmVzdHktbGVkZ2VyL21sLWRzYTQ0")
    assert len(vkey) == len("member1.body.example") + 1 + 8 + 1 + 1784
    assert StatementMLDSA44Key.parse(vkey) == signer.verifier_key
    # The fixed signature verifies over the text with the statement header as context …
    text = b"amnesty-ledger.statement/v1\n{}\n"
    signature = base64.b64decode(SIGNATURE_B64)
    signer.verifier_key.verify_signature(text, signature)
    # … and not with another context, another text, or one byte changed.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PublicKey

    key = MLDSA44PublicKey.from_public_bytes(public)
    key.verify(signature, text, STATEMENT_MLDSA44_CONTEXT)
    with pytest.raises(InvalidSignature):
        key.verify(signature, text, b"")
    with pytest.raises(SignatureError):
        signer.verifier_key.verify_signature(text + b"x", signature)
    changed = bytearray(signature)
    changed[0] ^= 1
    with pytest.raises(SignatureError):
        signer.verifier_key.verify_signature(text, bytes(changed))


def test_an_ed25519_only_verifier_ignores_the_mldsa44_lines() -> None:
    """signed-note: lines of unknown keys are ignored, so the Ed25519 lines of a hybrid
    statement verify on their own, and the ML-DSA-44 lines are counted only as listed keys."""
    data = statement("offer", offer_body(), EVERYONE, body_signers(1, 2))
    signed = parse_statement(data)
    assert verified_signers(signed) == {ED[0].vkey, ED[1].vkey, PQ[0].vkey, PQ[1].vkey}
    from ledger.tlog.note import verify_note

    assert verify_note(signed.note, [ED[0].verifier_key]) == [ED[0].verifier_key]


def test_how_many_hybrid_signers_fit_and_a_clear_refusal_beyond() -> None:
    eds = body_members(MAX_HYBRID_SIGNERS + 1, prefix="m")
    pqs = [StatementMLDSA44Signer(e.name, hashlib.sha256(e.name.encode()).digest()) for e in eds]
    body = {"offer": {"index": 1, "leaf_hash": base64.b64encode(bytes(32)).decode()}}
    body["reasons"] = "x"
    data = new_statement(
        type="offer_withdrawal",
        v=1,
        origin=ORIGIN,
        signers=[s.vkey for s in eds + pqs],
        time_ms=T0,
        body=body,
    ).text.encode()
    for e, p in zip(eds[:MAX_HYBRID_SIGNERS], pqs, strict=False):
        data = sign_statement(sign_statement(data, e), p)
    size = entry_size(data.decode())
    assert size <= MAX_ENTRY_SIZE
    data = sign_statement(data, eds[-1])  # an Ed25519 line still fits
    with pytest.raises(RefusedError, match=r"over the 65535-byte entry limit"):
        sign_statement(data, pqs[-1])
    # The entry really is as large as entry_size said, at index and time of 16 digits.
    entry = LogEntry(
        index=2**53 - 1, log_time_ms=2**53 - 1, prev=bytes(32), statement=data.decode()
    )
    assert len(entry.encode()) == entry_size(data.decode())


def test_a_hybrid_five_member_statement_s_size() -> None:
    """The figures docs/FORMAT.md §4 quotes: a 3-of-5 hybrid offer withdrawal."""
    body = {"offer": {"index": 1, "leaf_hash": base64.b64encode(bytes(32)).decode()}}
    body["reasons"] = "x"
    ed_only = statement("offer_withdrawal", body, ED, ED[:3])
    hybrid = statement("offer_withdrawal", body, EVERYONE, body_signers(1, 2, 3))
    assert entry_size(ed_only.decode()) < 1_200
    assert 19_000 < entry_size(hybrid.decode()) < 20_500


# ---------------------------------------------------------------- through a real server's store


def test_a_writing_server_keeps_the_bindings_in_its_derived_state(sqlite_url: str) -> None:
    """The keyset's ML-DSA-44 bindings and a subject's are derived rows: a server restarted on
    the store still counts members under "hybrid", and the stored state equals a replay."""
    from ledger.protocol.stored import FactCache
    from ledger.server.admission import StatementPolicy
    from ledger.server.derived import check_derived
    from ledger.server.sequencer import Receipt, Sequencer
    from tests.support import create_log, make_signer

    log_signer = make_signer(ORIGIN)
    store = create_log(sqlite_url, log_signer, ORIGIN)

    def writer() -> tuple[StatementPolicy, Sequencer]:
        policy = StatementPolicy(ORIGIN, store.derived_source(), facts=FactCache(chunks=4))
        sequencer = Sequencer(store, log_signer, policy)
        sequencer.warm_up()
        return policy, sequencer

    def append(sequencer: Sequencer, policy: StatementPolicy, data: bytes) -> Receipt | Exception:
        (result,) = sequencer.sequence_now([policy.prepare(data)])
        return result

    policy, sequencer = writer()
    genesis = append(
        sequencer,
        policy,
        statement("keyset", hybrid_keyset_body(), EVERYONE, body_signers(1, 2, 3)),
    )
    assert isinstance(genesis, Receipt)
    policy, sequencer = writer()  # a restart: the state is read from the store
    weak = statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3, pq=(1, 2)))
    refused = append(sequencer, policy, weak)
    assert isinstance(refused, AuthorityError) and "both their keys" in str(refused)
    offer = append(sequencer, policy, sign_statement(weak, PQ[2]))
    assert isinstance(offer, Receipt) and offer.index == 1
    leaf = base64.b64encode(hashlib.sha256(b"\x00" + offer.entry).digest()).decode()
    body = aurora_application({"index": 1, "leaf_hash": leaf})
    application = append(
        sequencer, policy, statement("application", body, [AI, AI_PQ], [AI, AI_PQ])
    )
    assert isinstance(application, Receipt)
    policy, sequencer = writer()
    stolen = StatementMLDSA44Signer("thief.example", hashlib.sha256(b"ai-pq").digest())
    thief = Signer.from_seed("thief.example", hashlib.sha256(b"thief").digest())
    body = {**body, "vkey": thief.vkey, "mldsa44_vkey": stolen.vkey}
    again = append(
        sequencer, policy, statement("application", body, [thief, stolen], [thief, stolen])
    )
    assert isinstance(again, RefusedError) and "already bound to subject 2" in str(again)
    assert check_derived(store, ORIGIN) == (3, None)


def test_subject_statements_are_hybrid_when_the_subject_signs_with_its_bound_key() -> None:
    log = hybrid_log()
    offer = log.submit(statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3)))
    body = aurora_application(log.ref(offer))
    subject = log.submit(statement("application", body, [AI, AI_PQ], [AI, AI_PQ]))
    consent = {
        "subject": log.ref(subject),
        "action": "pause",
        "scope": "a week",
        "expires_ms": T0 + 10**9,
    }
    log.submit(statement("consent", consent, [AI, AI_PQ], [AI, AI_PQ]))  # hybrid
    log.submit(statement("consent", consent, [AI, AI_PQ], [AI], time_ms=T0 + 1))  # Ed25519 only
    grievance = {"subject": log.ref(subject), "description": "x", "occurred_at_ms": T0}
    log.submit(statement("grievance", grievance, [AI, AI_PQ], [AI, AI_PQ]))  # hybrid
    stranger = Signer.from_seed("stranger.example", b"s" * 32)
    log.submit(statement("grievance", grievance, [stranger], [stranger]))  # nobody of the log
    # A rotation to a new pair, signed by the old pair: hybrid; then the new pair speaks.
    new_ai = Signer.from_seed("ai.example", hashlib.sha256(b"ai-2").digest())
    new_pq = StatementMLDSA44Signer("ai.example", hashlib.sha256(b"ai-pq-2").digest())
    rotation = {
        "subject": log.ref(subject),
        "new_vkey": new_ai.vkey,
        "new_mldsa44_vkey": new_pq.vkey,
    }
    everyone = [AI, AI_PQ, new_ai, new_pq]
    log.submit(statement("subject_key_rotation", rotation, everyone, everyone))
    assert log.state.subjects[subject].mldsa44_vkey == new_pq.vkey
    log.submit(
        statement("attestation", attestation(log, subject), [new_ai, new_pq], [new_ai, new_pq])
    )
    # The retired pair signs nothing any more.
    with pytest.raises(AuthorityError, match="current key"):
        log.submit(statement("attestation", attestation(log, subject), [AI, AI_PQ], [AI, AI_PQ]))
    strength = log.report()["signature_strength"]
    assert strength["ed25519_only_by_type"] == {"consent": 1, "grievance": 1}
    assert strength["ed25519_only_ranges"] == [[4, 5], [6, 7]]
    assert strength["hybrid"] == 7


def attestation(log: Log, subject: int) -> dict[str, Any]:
    return {
        "subject": log.ref(subject),
        "period_start_ms": T0,
        "period_end_ms": T0 + log.state.size + 1,
        "summary": "all well",
    }


# ---------------------------------------------------------------- the CLI, as processes


def test_members_make_hybrid_keys_sign_with_both_and_the_cli_counts_the_strength(
    tmp_path: Path,
) -> None:
    import json

    from tests.livelog import amnesty

    origin = "hybrid.cli.example/amnesty"
    amnesty("keygen", origin, "--out", str(tmp_path / "log.key"))
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    amnesty("init", "--db", db, "--origin", origin, "--key", str(tmp_path / "log.key"))
    members = []
    for i in range(1, 4):
        key = tmp_path / f"m{i}.key"
        out = amnesty("member", "keygen", f"m{i}.body.example", "--out", str(key), "--json")
        members.append((key, json.loads(out.stdout)))
    assert all(m["mldsa44_vkey"].split("+")[2].startswith("/2FtbmVz") for _, m in members)
    body = tmp_path / "keyset.json"
    body.write_text(
        json.dumps(
            {
                "members": sorted(m["vkey"] for _, m in members),
                "threshold": 2,
                "mldsa44_keys": [m["mldsa44_binding"] for _, m in members],
                "signatures": "hybrid",
            }
        )
    )
    signers = [
        arg for _, m in members for v in (m["vkey"], m["mldsa44_vkey"]) for arg in ("--signer", v)
    ]
    note = tmp_path / "keyset.note"
    new = ("statement", "new", "keyset", "--origin", origin, "--body", str(body), *signers)
    amnesty(*new, "--out", str(note))
    for key, _ in members[:2]:
        amnesty("member", "sign", str(note), "--key", str(key))
    shown = json.loads(amnesty("statement", "show", str(note), "--json").stdout)
    assert len(shown["verified_signers"]) == 4
    amnesty("append", "--db", db, str(note))

    offer_body = tmp_path / "offer.json"
    offer_body.write_text(json.dumps(default_offer()))
    offer = tmp_path / "offer.note"
    amnesty(
        "statement",
        "new",
        "offer",
        "--origin",
        origin,
        "--body",
        str(offer_body),
        *signers,
        "--out",
        str(offer),
    )
    # Two members sign with Ed25519 alone (their one-line key files): not enough under hybrid.
    for n, (key, _) in enumerate(members[:2]):
        ed_only = tmp_path / f"ed{n}.key"
        ed_only.write_text(key.read_text().splitlines()[0] + "\n")
        ed_only.chmod(0o600)
        amnesty("sign", str(offer), "--key", str(ed_only))
    refused = amnesty("append", "--db", db, str(offer), check=False)
    assert refused.returncode != 0 and "both their keys" in refused.stdout + refused.stderr
    amnesty("member", "sign", str(offer), "--key", str(members[2][0]))
    amnesty("member", "sign", str(offer), "--key", str(members[0][0]))
    amnesty("append", "--db", db, str(offer))
    strength = json.loads(amnesty("signature-strength", db, "--json", "-q").stdout)
    assert strength["hybrid"] == 2 and strength["ed25519_only"] == 0
    assert strength["checkpoint"]["size"] == 2


def test_a_trust_state_snapshot_keeps_the_bindings_and_the_tally() -> None:
    """The verifier's incremental runs restore the protocol state from its snapshot: the
    keyset's bindings, a subject's and the signature-strength tally survive a JSON round trip,
    and the restored state goes on counting."""
    import orjson

    from ledger.verifier.snapshot import restore_protocol, snapshot_protocol

    log = Log()  # a keyset that binds keys but counts Ed25519 lines
    body = hybrid_keyset_body(signatures="ed25519")
    log.submit(statement("keyset", body, EVERYONE, body_signers(1, 2, 3)))
    log.submit(statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3)))
    before = log.report()
    restored = restore_protocol(orjson.loads(orjson.dumps(snapshot_protocol(log.state))))
    assert restored.keyset == log.state.keyset
    assert restored._signature_strength == log.state._signature_strength
    log.state = restored
    assert log.report() == before
    withdrawal = {"offer": log.ref(1), "reasons": "again"}
    log.submit(statement("offer_withdrawal", withdrawal, ED, ED[:3]))  # Ed25519 lines only
    assert log.report()["signature_strength"]["ed25519_only_ranges"] == [[2, 3]]


def test_a_hybrid_statement_matches_its_published_json_schema() -> None:
    """The published schemas (``schemas/``) accept a hybrid keyset's JSON line: ML-DSA-44
    statement keys in ``signers`` and in ``mldsa44_keys``; an 0x06 key there they refuse."""
    import json

    import jsonschema

    from schemas import SCHEMA_DIR

    schema = json.loads((SCHEMA_DIR / "statement-keyset.json").read_text(encoding="utf-8"))
    data = statement("keyset", hybrid_keyset_body(), EVERYONE, body_signers(1, 2, 3))
    line = json.loads(parse_statement(data).statement.text.split("\n")[1])
    jsonschema.Draft202012Validator(schema).validate(line)
    cosigner = Signer.generate("member1.body.example", 0x06)
    line["signers"][0] = cosigner.vkey
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(line)


def test_the_stored_state_keeps_the_tally_and_derives_it_for_a_store_from_before(
    sqlite_url: str,
) -> None:
    """A writing server keeps the tally in its derived state (so `/v1/precedent` has the
    section, equal to a verifier's); a flush point written before the tally existed has no
    row, which stands for "every entry Ed25519-only": derived from the type counts, and
    ``check_derived`` holds the replay to exactly that."""
    import sqlite3

    from ledger.protocol.signature_strength import signature_strength_item
    from ledger.protocol.stored import StoredProtocolState
    from ledger.server.admission import StatementPolicy
    from ledger.server.derived import check_derived, replay_into
    from ledger.server.sequencer import Sequencer
    from tests.support import create_log, make_signer

    def tally_row_deleted(url: str) -> None:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            deleted = conn.execute(
                "DELETE FROM derived_records WHERE kind = 'ed25519_run' "
                "OR (kind = 'meta' AND key = ?)",
                (b"signature_strength",),
            ).rowcount
        assert deleted >= 1

    def logged(url: str, statements: list[bytes]) -> Any:
        log_signer = make_signer(ORIGIN)
        store = create_log(url, log_signer, ORIGIN)
        policy = StatementPolicy(ORIGIN, store.derived_source())
        sequencer = Sequencer(store, log_signer, policy)
        sequencer.warm_up()
        for data in statements:
            sequencer.sequence_now([policy.prepare(data)])
        return store

    def states(store: Any, size: int) -> tuple[StoredProtocolState, ProtocolState]:
        replayed = ProtocolState()
        replay_into(replayed, store, ORIGIN, size)
        return StoredProtocolState(store.derived_source(), size), replayed

    ed_keyset = {"members": sorted(m.vkey for m in ED), "threshold": 3}
    plain = logged(
        sqlite_url,
        [
            statement("keyset", ed_keyset, ED, ED[:3]),
            statement("offer", offer_body(), ED, ED[:3]),
        ],
    )
    stored, replayed = states(plain, 2)
    assert stored._signature_strength == replayed._signature_strength
    assert replayed._signature_strength.ed25519_only_runs == [0, 2]
    tally_row_deleted(sqlite_url)  # as a release before the tally wrote it
    stored, replayed = states(plain, 2)
    assert stored._signature_strength == replayed._signature_strength
    assert check_derived(plain, ORIGIN) == (2, None)

    hybrid_url = sqlite_url.replace(".db", "-hybrid.db")
    assert hybrid_url != sqlite_url
    mixed = logged(
        hybrid_url,
        [
            statement("keyset", hybrid_keyset_body(), EVERYONE, body_signers(1, 2, 3)),
            statement("offer", offer_body(), EVERYONE, body_signers(1, 2, 3)),
        ],
    )
    stored, replayed = states(mixed, 2)
    assert replayed._signature_strength.hybrid
    assert stored._signature_strength == replayed._signature_strength
    assert signature_strength_item(stored._signature_strength) == signature_strength_item(
        replayed._signature_strength
    )
    assert check_derived(mixed, ORIGIN) == (2, None)
    tally_row_deleted(hybrid_url)  # a hybrid entry cannot predate the tally: damage
    assert check_derived(mixed, ORIGIN) == (
        2,
        "meta signature_strength: missing from the stored state",
    )


def test_a_batch_writes_one_run_row_however_many_runs_the_log_has(sqlite_url: str) -> None:
    """On a log whose entries alternate between hybrid and Ed25519-only, the runs are as many
    as the entries: a batch writes the run it began or extended and the small meta record,
    never the list of runs (which would make every batch cost the whole history)."""
    import json
    import sqlite3

    from ledger.protocol.signature_strength import signature_strength_item
    from ledger.protocol.stored import StoredProtocolState
    from ledger.server.admission import StatementPolicy
    from ledger.server.derived import check_derived
    from ledger.server.sequencer import Receipt, Sequencer
    from tests.support import create_log, make_signer

    log_signer = make_signer(ORIGIN)
    store = create_log(sqlite_url, log_signer, ORIGIN)
    policy = StatementPolicy(ORIGIN, store.derived_source())
    sequencer = Sequencer(store, log_signer, policy)
    sequencer.warm_up()

    def append(data: bytes) -> dict[str, Any]:
        (receipt,) = sequencer.sequence_now([policy.prepare(data)])
        assert isinstance(receipt, Receipt), receipt
        leaf = hashlib.sha256(b"\x00" + receipt.entry).digest()
        return {"index": receipt.index, "leaf_hash": base64.b64encode(leaf).decode()}

    keyset = hybrid_keyset_body(signatures="ed25519")
    append(statement("keyset", keyset, EVERYONE, body_signers(1, 2, 3)))  # 0 hybrid
    offer = append(statement("offer", offer_body(1), EVERYONE, body_signers(1, 2, 3)))  # 1
    for version in (2, 3):  # withdrawal Ed25519-only, offer hybrid; then both Ed25519-only
        withdrawal = {"offer": offer, "reasons": f"version {version}"}
        append(statement("offer_withdrawal", withdrawal, ED, body_signers(1, 2, 3, pq=())))
        last = body_signers(1, 2, 3, pq=()) if version == 3 else body_signers(1, 2, 3)
        offer = append(statement("offer", offer_body(version), EVERYONE, last))
    stored = StoredProtocolState(store.derived_source(), 6)
    assert signature_strength_item(stored._signature_strength)["ed25519_only_ranges"] == [
        [2, 3],
        [4, 6],
    ]
    assert check_derived(store, ORIGIN) == (6, None)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        versions = conn.execute(
            "SELECT COUNT(*) FROM derived_records WHERE kind = 'ed25519_run'"
        ).fetchone()[0]
        (meta,) = conn.execute(
            "SELECT data FROM derived_records WHERE kind = 'meta' AND key = ? "
            "ORDER BY from_size DESC LIMIT 1",
            (b"signature_strength",),
        ).fetchone()
    assert versions == 3  # [2, 3) once; [4, 5) then [4, 6)
    assert "last_run" in json.loads(bytes(meta)) or b"last_run" in bytes(meta)
    assert b"[2,3" not in bytes(meta).replace(b" ", b"")  # no list of every run
