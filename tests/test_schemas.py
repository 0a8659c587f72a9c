"""The published JSON Schemas are current, valid, and accept what the code produces."""

from __future__ import annotations

import json

import jsonschema
import pytest

from ledger.protocol.statements import STATEMENT_TYPES
from ledger.protocol.terms import default_offer
from ledger.statements.entry import LogEntry
from ledger.tlog.merkle import EMPTY_ROOT
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
    entry = json.loads(LogEntry(0, 1, EMPTY_ROOT, "x").encode())
    schema = generate_schemas()["entry.json"]
    jsonschema.validate(entry, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**entry, "extra": 1}, schema)
