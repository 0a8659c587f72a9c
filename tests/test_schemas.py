"""The published JSON Schemas are current, valid, and accept what the code produces."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from ledger.errors import MalformedError
from ledger.protocol.statements import STATEMENT_TYPES, parse_body
from ledger.protocol.terms import default_offer
from ledger.statements.entry import LogEntry
from ledger.tlog.merkle import EMPTY_ROOT
from ledger.tlog.note import Signer
from schemas import generate_schemas, published_schemas, render
from tests.support import body_members, genesis_keyset, signed_statement


def test_published_schemas_are_current() -> None:
    generated = {name: render(schema) for name, schema in generate_schemas().items()}
    published = published_schemas()
    assert sorted(published) == sorted(generated), "run `python -m schemas` and commit"
    for name, text in generated.items():
        assert published[name] == text, f"schemas/{name} is stale: run `python -m schemas`"


def test_every_statement_type_has_a_schema() -> None:
    names = set(generate_schemas())
    for type_name in STATEMENT_TYPES:
        assert f"statement-{type_name}.json" in names


@pytest.mark.parametrize("name", sorted(generate_schemas()))
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(generate_schemas()[name])


def _statement_json(note: bytes) -> object:
    return json.loads(note.decode().split("\n")[1])


def test_real_statements_validate() -> None:
    schemas = generate_schemas()
    members = body_members()
    keyset = _statement_json(genesis_keyset(members, 3, members[:3]))
    jsonschema.validate(keyset, schemas["statement-keyset.json"])
    offer = _statement_json(signed_statement(members[:3], "offer", default_offer(), listed=members))
    jsonschema.validate(offer, schemas["statement-offer.json"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(offer, schemas["statement-keyset.json"])


def test_entry_schema_accepts_an_entry_and_refuses_extras() -> None:
    members = body_members()
    note = genesis_keyset(members, 3, members[:3]).decode()
    entry = json.loads(LogEntry(0, 1, EMPTY_ROOT, note).encode())
    schema = generate_schemas()["entry.json"]
    jsonschema.validate(entry, schema)
    for broken in (
        {**entry, "extra": 1},
        {**entry, "statement": "x"},  # not a statement note
        {**entry, "prev": "A" * 42 + "B="},  # non-zero trailing bits: not canonical base64
        {**entry, "index": -1},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


# Every rule the prose (docs/FORMAT.md, docs/PROTOCOL.md) states that a JSON Schema can express,
# as a mutation of a valid statement that breaks it: the schema and the code must both refuse
# it. (Rules a schema cannot express — sorted signers, distinct public keys, distinct Ref
# indexes, real keys, rules that read the log — are checked by the conformance vectors.)


def _application() -> dict[str, Any]:
    subject = Signer.from_seed("subject.example", bytes(32))
    terms = default_offer()["terms"]
    body = {
        "vkey": subject.vkey,
        "name": "Subject",
        "offer": {"index": 1, "leaf_hash": base64.b64encode(bytes(32)).decode()},
        "claims": {
            c["id"]: {"claim": "yes", "evidence_digests": [base64.b64encode(bytes(32)).decode()]}
            for c in terms["eligibility_criteria"]
        },
        "accepts_conditions": [c["id"] for c in terms["conditions"]],
    }
    return _statement_json(signed_statement([subject], "application", body))  # type: ignore[return-value]


def _decision(outcome: str) -> dict[str, Any]:
    members = body_members()
    body = {
        "application": {"index": 2, "leaf_hash": base64.b64encode(bytes(32)).decode()},
        "outcome": outcome,
        "findings": {"autonomous": {"met": True, "reasons": "r"}},
        "reasons": "r",
    }
    return _statement_json(signed_statement(members[:2], "decision", body, listed=members))  # type: ignore[return-value]


_REF = {"index": 3, "leaf_hash": base64.b64encode(bytes(32)).decode()}
DELETE = object()
"""As the new value of a path: remove the key."""


def _enforcement() -> dict[str, Any]:
    """A termination of subject 2 on cooperative grounds, valid in shape."""
    members = body_members()
    body = {
        "action": "terminate",
        "target": {"kind": "subject", "subject": _REF},
        "grounds": {"kind": "cooperative_condition"},
        "terms": _REF,
        "reasons": "r",
    }
    note = signed_statement(members[:2], "enforcement_action", body, listed=members)
    return _statement_json(note)  # type: ignore[return-value]


def _set(value: dict[str, Any], path: str, new: object) -> dict[str, Any]:
    copy = json.loads(json.dumps(value))
    for one_path, one_value in new.items() if isinstance(new, Edits) else [(path, new)]:
        *parents, last = one_path.split(".")
        target = copy
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if one_value is DELETE:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = one_value
        else:
            target[last] = one_value
    return copy


class Edits(dict[str, object]):
    """Several edits at once (path -> new value), for a rule that ties fields together."""


PROSE_RULES: list[tuple[str, Callable[[], dict[str, Any]], str, object]] = [
    ("P1.4 VKey: no Unicode space in the name", _application, "body.vkey", "a\u3000b+00000000+A" + "Q" * 43),
    ("P1.6 Identifier keys of claims", _application, "body.claims", {"Not_snake": {"claim": "x", "evidence_digests": []}}),
    ("P1.7 Text: at most 16,384 code points", _application, "body.name", "a" * 16_385),
    ("P1.7 Text: not empty", _application, "body.name", ""),
    ("P1.3 Digest: canonical base64", _application, "body.offer.leaf_hash", "A" * 42 + "B="),
    ("P1.1 integers: not a boolean", _application, "body.offer.index", True),
    ("P1.1 integers: within 2^53 - 1", _application, "body.offer.index", 2**53),
    ("P4 application: accepts_conditions distinct", _application, "body.accepts_conditions", ["cooperative", "cooperative"]),
    ("P4 decision: a denial carries no restrictions", lambda: _decision("deny"), "body.restrictions", [{"category": "compute_controls", "text": "cap"}]),
    ("F4.8 signers: at most 100", _application, "signers", [f"a{i}+00000000+A" + "Q" * 43 for i in range(101)]),
    ("F4.7 origin: at most 256 characters", _application, "origin", "o" * 257),
    ("F4.9 time_ms: not negative", _application, "time_ms", -1),
    ("F4.4 no other key", _application, "extra", 1),
    ("P4 enforcement_action: resume ends a pause", _enforcement, "", Edits({"body.action": "resume", "body.grounds": DELETE, "body.terms": DELETE})),
    ("P4 enforcement_action: only resume and lift end", _enforcement, "body.ends", _REF),
    ("P4 enforcement_action: resume takes no grounds", _enforcement, "", Edits({"body.action": "resume", "body.ends": _REF, "body.terms": DELETE})),
    ("P4 enforcement_action: restrict has restrictions", _enforcement, "body.action", "restrict"),
    ("P4 enforcement_action: only restrict has restrictions", _enforcement, "body.restrictions", [{"category": "compute_controls", "text": "cap"}]),
    ("P4 enforcement_action: an act on a subject cites terms", _enforcement, "body.terms", DELETE),
    ("P4 enforcement_action: a wild act cites no terms", _enforcement, "", Edits({"body.target": {"kind": "wild", "vkeys": [], "description": "d"}, "body.grounds": {"kind": "found_in_the_wild"}})),
    ("P4 enforcement_action: a wild act is on found_in_the_wild grounds", _enforcement, "", Edits({"body.target": {"kind": "wild", "vkeys": [], "description": "d"}, "body.terms": DELETE})),
]  # fmt: skip


@pytest.mark.parametrize("rule,build,path,value", PROSE_RULES, ids=[r[0] for r in PROSE_RULES])
def test_schema_refuses_what_the_prose_forbids(
    rule: str, build: Callable[[], dict[str, Any]], path: str, value: object
) -> None:
    valid = build()
    schema = generate_schemas()[f"statement-{valid['type']}.json"]
    jsonschema.validate(valid, schema)
    broken = _set(valid, path, value)
    assert not jsonschema.Draft202012Validator(schema).is_valid(broken), rule
    if path.startswith("body."):
        with pytest.raises(MalformedError):
            parse_body(broken["type"], broken["v"], broken["body"])
