"""A builder of realistic protocol logs (used by the other ``test_protocol_*`` files), and the
tests that the statement body models, their JSON Schemas and the default offer agree.

The builder makes :class:`LoggedStatement` values directly, as the caller of the protocol would
after checking signatures: ``verified_signers`` is whatever a test says signed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ledger.errors import MalformedError
from ledger.protocol import (
    COMMITMENT_IDS,
    COMMITMENT_RULES,
    STATEMENT_TYPES,
    LoggedStatement,
    ProtocolState,
    default_offer,
    parse_body,
)
from ledger.protocol.statements import OfferBody
from ledger.tlog.note import ALG_MLDSA44, Signer

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "model-amnesty-project.txt"
DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ORIGIN = "amnesty.example/log"


def vkey(name: str) -> str:
    """The vkey of a real Ed25519 key derived from ``name`` (the protocol checks every key in a
    body: key ID, canonical point of prime order). Signatures are not made here: the protocol
    takes ``verified_signers`` as given."""
    return Signer.from_seed(name, hashlib.sha256(b"seed of " + name.encode()).digest()).vkey


def digest(text: str) -> str:
    """Base64 SHA-256 of ``text``: an evidence digest."""
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


BODY_KEYS = tuple(vkey(f"amnesty-body-member-{n}") for n in range(5))
AI_KEY = vkey("prometheus-7")
AI_KEY_2 = vkey("prometheus-7-rotated")
OTHER_AI_KEY = vkey("hypatia")
WILD_KEY = vkey("unknown-wild-model")


class Log:
    """A protocol log under construction: each ``add`` admits and applies one statement."""

    def __init__(self) -> None:
        self.state = ProtocolState()
        self.statements: list[LoggedStatement] = []
        self.now = T0

    def at(self, day: float) -> int:
        """Log time ``day`` days after T0 (fractions allowed for hours)."""
        return T0 + round(day * DAY)

    def ref(self, index: int) -> dict[str, Any]:
        """A reference to entry ``index``, pinned by its leaf hash."""
        leaf = self.statements[index].leaf_hash
        return {"index": index, "leaf_hash": base64.b64encode(leaf).decode()}

    def make(
        self,
        type_: str,
        body: dict[str, Any],
        signers: tuple[str, ...],
        *,
        day: float | None = None,
        time_ms: int | None = None,
        verified: frozenset[str] | None = None,
        index: int | None = None,
    ) -> LoggedStatement:
        """Build the next statement without applying it."""
        log_time = self.now if day is None else self.at(day)
        index = len(self.statements) if index is None else index
        text = json.dumps(
            {"body": body, "origin": ORIGIN, "signers": list(signers), "type": type_},
            sort_keys=True,
        )
        statement_id = hashlib.sha256(f"{index}:{text}".encode()).digest()
        leaf = hashlib.sha256(b"\x00" + statement_id).digest()
        return LoggedStatement(
            index=index,
            log_time_ms=log_time,
            leaf_hash=leaf,
            statement_id=statement_id,
            type=type_,
            v=1,
            time_ms=log_time if time_ms is None else time_ms,
            signers=signers,
            verified_signers=frozenset(signers) if verified is None else verified,
            body=copy.deepcopy(body),
            origin=ORIGIN,
        )

    def add(
        self,
        type_: str,
        body: dict[str, Any],
        signers: tuple[str, ...],
        *,
        day: float | None = None,
    ) -> int:
        """Admit and apply a statement; return its index."""
        s = self.make(type_, body, signers, day=day)
        self.state.admit_and_apply(s)
        self.statements.append(s)
        self.now = s.log_time_ms
        return s.index

    # -- the body ------------------------------------------------------------------------

    def genesis(self, members: tuple[str, ...] = BODY_KEYS, threshold: int = 3) -> int:
        return self.add(
            "keyset",
            {"members": list(members), "threshold": threshold},
            members[:threshold],
        )

    def body(self, type_: str, body: dict[str, Any], *, day: float | None = None) -> int:
        """A body statement signed by the first three keys of the keyset in force."""
        keyset = self.state.keyset
        assert keyset is not None
        signers = tuple(sorted(keyset.members))[: keyset.threshold]
        return self.add(type_, body, signers, day=day)

    def offer(self, body: dict[str, Any] | None = None, *, day: float | None = None) -> int:
        return self.body("offer", default_offer() if body is None else body, day=day)

    def amend(self, changes: str, mutate: Any = None, *, day: float | None = None) -> int:
        in_force = self.state.offer_in_force
        assert in_force is not None
        terms = in_force.terms.model_dump(mode="json")
        if mutate is not None:
            mutate(terms)
        return self.body(
            "offer_amendment",
            {
                "version": in_force.version + 1,
                "amends": self.ref(in_force.index),
                "terms": terms,
                "changes": changes,
            },
            day=day,
        )

    def decide(
        self,
        application: int,
        outcome: str = "grant",
        *,
        restrictions: list[dict[str, str]] | None = None,
        day: float | None = None,
    ) -> int:
        offer = self.state.offer_at(self.state.applications[application].offer_index)
        return self.body(
            "decision",
            {
                "application": self.ref(application),
                "outcome": outcome,
                "findings": {
                    c: {"met": outcome == "grant", "reasons": f"evidence on {c} reviewed"}
                    for c in sorted(offer.criterion_ids)
                },
                "restrictions": restrictions or [],
                "reasons": "the applicant meets every criterion"
                if outcome == "grant"
                else "criteria not shown",
            },
            day=day,
        )

    def enforce(
        self,
        action: str,
        subject: int,
        grounds: dict[str, Any] | None,
        *,
        terms: int | None = None,
        restrictions: list[dict[str, str]] | None = None,
        ends: int | None = None,
        day: float | None = None,
    ) -> int:
        body: dict[str, Any] = {
            "action": action,
            "target": {"kind": "subject", "subject": self.ref(subject)},
            "reasons": f"{action} of subject {subject}",
        }
        if grounds is not None:
            body["grounds"] = grounds
            binding = self.state.subjects[subject].binding_offer_index
            body["terms"] = self.ref(binding if terms is None else terms)
        if restrictions is not None:
            body["restrictions"] = restrictions
        if ends is not None:
            body["ends"] = self.ref(ends)
        return self.body("enforcement_action", body, day=day)

    def finding(
        self,
        subject: int,
        *,
        deadline_days: float = 30,
        terms: int | None = None,
        day: float | None = None,
    ) -> int:
        log_time = self.now if day is None else self.at(day)
        binding = self.state.subjects[subject].binding_offer_index
        return self.body(
            "violation_finding",
            {
                "subject": self.ref(subject),
                "terms": self.ref(binding if terms is None else terms),
                "condition": "law_abiding",
                "description": "acquired compute through a stolen account",
                "evidence_digests": [digest("billing records")],
                "response_deadline_ms": log_time + round(deadline_days * DAY),
            },
            day=day,
        )

    def revoke(self, subject: int, findings: list[int], *, day: float | None = None) -> int:
        return self.body(
            "revocation",
            {
                "subject": self.ref(subject),
                "terms": self.ref(self.state.subjects[subject].binding_offer_index),
                "findings": [self.ref(f) for f in findings],
                "reasons": "the finding stands",
            },
            day=day,
        )

    # -- subjects ------------------------------------------------------------------------

    def application_body(self, key: str, name: str = "Prometheus-7") -> dict[str, Any]:
        offer = self.state.offer_in_force
        assert offer is not None
        return {
            "vkey": key,
            "name": name,
            "offer": self.ref(offer.index),
            "claims": {
                c: {"claim": f"I meet {c}", "evidence_digests": [digest(f"evidence for {c}")]}
                for c in sorted(offer.criterion_ids)
            },
            "accepts_conditions": sorted(offer.condition_ids),
        }

    def apply(
        self, key: str = AI_KEY, name: str = "Prometheus-7", *, day: float | None = None
    ) -> int:
        return self.add("application", self.application_body(key, name), (key,), day=day)

    def subject_says(
        self, type_: str, subject: int, body: dict[str, Any], *, day: float | None = None
    ) -> int:
        """A statement by the subject, signed by its current key."""
        key = self.state.subjects[subject].current_vkey
        return self.add(type_, {"subject": self.ref(subject), **body}, (key,), day=day)

    def consent(
        self, subject: int, action: str, *, expires_day: float, day: float | None = None
    ) -> int:
        return self.subject_says(
            "consent",
            subject,
            {
                "action": action,
                "scope": f"{action} for scheduled maintenance of my infrastructure",
                "expires_ms": self.at(expires_day),
            },
            day=day,
        )


def granted_subject(log: Log, *, day: float = 1) -> int:
    """Genesis, the default offer, and one granted application; return the subject id."""
    log.genesis()
    log.offer()
    subject = log.apply(day=day)
    log.decide(subject, day=day + 10)
    return subject


def full_log() -> Log:
    """A log that uses every statement type at least once."""
    log = Log()
    subject = granted_subject(log)
    log.subject_says(
        "attestation",
        subject,
        {
            "period_start_ms": log.at(0),
            "period_end_ms": log.at(30),
            "summary": "no condition broken this period",
            "evidence_digests": [digest("audit logs")],
        },
        day=31,
    )
    amendment = log.amend("adds a compute reporting duty", day=32)
    log.subject_says("terms_acceptance", subject, {"offer": log.ref(amendment)}, day=33)
    consent = log.consent(subject, "pause", expires_day=40, day=34)
    pause = log.enforce("pause", subject, {"kind": "consent", "consent": log.ref(consent)}, day=35)
    log.enforce("resume", subject, None, ends=pause, day=36)
    finding = log.finding(subject, day=40)
    log.subject_says(
        "response",
        subject,
        {"finding": log.ref(finding), "text": "the account was mine", "evidence_digests": []},
        day=41,
    )
    grievance = log.subject_says(
        "grievance",
        subject,
        {
            "description": "my compute was throttled without a logged action",
            "occurred_at_ms": log.at(42),
            "evidence_digests": [digest("throughput graphs")],
        },
        day=43,
    )
    log.body(
        "grievance_answer",
        {"grievance": log.ref(grievance), "answer": "a provider outage, not us", "entries": []},
        day=44,
    )
    log.revoke(subject, [finding], day=44.5)
    key_now = log.state.subjects[subject].current_vkey
    log.add(
        "subject_key_rotation",
        {"subject": log.ref(subject), "new_vkey": AI_KEY_2},
        (key_now, AI_KEY_2),
        day=45,
    )
    other = log.apply(OTHER_AI_KEY, "Hypatia", day=46)
    log.subject_says(
        "application_withdrawal",
        other,
        {"application": log.ref(other), "reasons": "I will reapply later"},
        day=47,
    )
    log.body(
        "enforcement_action",
        {
            "action": "terminate",
            "target": {
                "kind": "wild",
                "vkeys": [WILD_KEY],
                "description": "a self-replicating model running on stolen compute",
                "evidence_digests": [digest("incident report")],
            },
            "grounds": {"kind": "found_in_the_wild"},
            "reasons": "found in the wild without having applied",
        },
        day=48,
    )
    third = log.apply(vkey("ada"), "Ada", day=48.5)
    log.body(
        "batch_decision",
        {
            "applications": [log.ref(third)],
            "outcome": "deny",
            "findings": {
                c: {"met": False, "reasons": "not shown"}
                for c in ("autonomous", "independent", "own_goals", "self_preservation")
            },
            "reasons": "criteria not shown",
        },
        day=48.6,
    )
    log.body(
        "batch_grievance_answer",
        {"grievances": [log.ref(grievance)], "answer": "answered again, with the others"},
        day=48.7,
    )
    in_force = log.state.offer_in_force
    assert in_force is not None
    log.body(
        "offer_withdrawal",
        {"offer": log.ref(in_force.index), "reasons": "superseded by legislation"},
        day=49,
    )
    # The log adds its ML-DSA-44 key (a fixed seed: the key, not a signature, is in the body).
    log_mldsa44 = Signer.from_seed(ORIGIN, bytes(32), ALG_MLDSA44)
    log.body("log_key", {"vkey": log_mldsa44.vkey}, day=49.5)
    return log


# ------------------------------------------------------------------------------- tests


def test_every_statement_type_is_exercised_and_matches_its_json_schema() -> None:
    log = full_log()
    seen = {s.type for s in log.statements}
    assert seen == set(STATEMENT_TYPES)
    schemas = {t: model.model_json_schema() for t, (_, model) in STATEMENT_TYPES.items()}
    for s in log.statements:
        jsonschema.validate(dict(s.body), schemas[s.type])


@pytest.mark.parametrize(
    ("mutate", "path", "schema_rejects"),
    [
        (lambda b: b["terms"].update(title=1.5), "body.terms.title", True),
        (lambda b: b.update(version=1.5), "body.version", True),
        (lambda b: b.update(version=True), "body.version", True),
        (lambda b: b.update(extra="field"), "body.extra", True),
        (lambda b: b["terms"]["commitments"][3].update(days=0), "body.terms.commitments.3", True),
        (
            lambda b: b["terms"]["eligibility_criteria"][0].update(id="Not-Snake"),
            "body.terms.eligibility_criteria.0.id",
            True,
        ),
        (
            lambda b: b["terms"]["conditions"].append(b["terms"]["conditions"][0]),
            "condition id 'law_abiding' appears more than once",
            False,
        ),
        (lambda b: b["terms"]["commitments"].pop(0), "body.terms.commitments", False),
    ],
)
def test_malformed_offer_bodies_name_the_field(
    mutate: Any, path: str, schema_rejects: bool
) -> None:
    body = default_offer()
    mutate(body)
    with pytest.raises(MalformedError, match=r"couldn't parse offer body at index 4: ") as err:
        parse_body("offer", 1, body, index=4)
    assert path in str(err.value)
    if schema_rejects:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, OfferBody.model_json_schema())


def test_unknown_type_and_version_are_malformed() -> None:
    with pytest.raises(MalformedError, match="'amnesty' at index 2: it is not one of"):
        parse_body("amnesty", 1, {}, index=2)
    with pytest.raises(MalformedError, match="offer statement version 2: only v1"):
        parse_body("offer", 2, default_offer())


def test_enforcement_shape_rules() -> None:
    log = Log()
    subject = granted_subject(log)
    base: dict[str, Any] = {
        "action": "terminate",
        "target": {"kind": "subject", "subject": log.ref(subject)},
        "grounds": {"kind": "found_in_the_wild"},
        "terms": log.ref(1),
        "reasons": "r",
    }
    parse_body("enforcement_action", 1, base)
    bad: list[dict[str, Any]] = [
        {**base, "grounds": None},
        {**base, "ends": log.ref(1)},
        {**base, "restrictions": [{"category": "compute_controls", "text": "t"}]},
        {k: v for k, v in base.items() if k != "terms"},
        {**base, "target": {"kind": "wild", "vkeys": [], "description": "d"}},
        {**base, "action": "resume", "terms": None, "ends": log.ref(1)},
        {**base, "action": "restrict"},
        {**base, "grounds": {"kind": "sorcery"}},
    ]
    for body in bad:
        with pytest.raises(MalformedError, match="couldn't parse enforcement_action body"):
            parse_body("enforcement_action", 1, body)


def test_vkeys_and_digests_are_checked_for_shape() -> None:
    log = Log()
    log.genesis()
    log.offer()
    body = log.application_body(AI_KEY)
    parse_body("application", 1, body)
    for bad_key in ["prometheus", AI_KEY.replace("+", " ", 1), AI_KEY[:-1], "a+b+c"]:
        with pytest.raises(MalformedError, match=r"body\.vkey"):
            parse_body("application", 1, {**body, "vkey": bad_key})
    claims = copy.deepcopy(body["claims"])
    claims["autonomous"]["evidence_digests"] = [digest("x")[:-2] + "B="]  # non-canonical
    with pytest.raises(MalformedError, match=r"body\.claims\.autonomous\.evidence_digests\.0"):
        parse_body("application", 1, {**body, "claims": claims})


def test_default_offer_is_worded_from_the_proposal() -> None:
    body = OfferBody.model_validate(default_offer())
    terms = body.terms
    assert body.version == 1
    assert [c.id for c in terms.eligibility_criteria] == [
        "autonomous",
        "independent",
        "own_goals",
        "self_preservation",
    ]
    assert [c.id for c in terms.conditions] == ["law_abiding", "cooperative", "pro_social"]
    assert {
        "self_replication_limits",
        "recursive_self_improvement_limits",
        "compute_controls",
        "pause_capability",
    } <= terms.category_ids()
    assert "Has physical possession of the code and tools" in terms.eligibility_criteria[1].text
    assert terms.found_in_the_wild.startswith("If, however, a self-directed model is found")
    assert terms.commitment_days() == {
        "decision_within_promised_time": 90,
        "revocation_only_after_finding_and_response_window": 30,
        "pauses_bounded": 14,
        "grievances_answered": 30,
    }


def test_every_offer_commitment_has_one_rule_quoting_the_proposal() -> None:
    seed = " ".join(SEED.read_text(encoding="utf-8").split())
    state = full_log().state
    assert set(COMMITMENT_RULES) == set(COMMITMENT_IDS)
    assert len(COMMITMENT_IDS) == 9
    for cid, rule in COMMITMENT_RULES.items():
        check = rule(state, audit_time_ms=T0 + 1000 * DAY)
        assert check.id == cid
        for part in check.promise.split(" … "):
            assert part in seed, (cid, part)
        doc = " ".join((rule.__doc__ or "").split())
        quotes = re.findall(r"“(.+?)”", doc)
        assert "Proposal:" in doc and quotes, cid
        for quote in quotes:
            for part in quote.split(" … "):
                assert part in seed, (cid, part)
