"""JSON Schemas (draft 2020-12) for the log entry, the statement envelope, every statement
type's body, the precedent report and the due report — generated from the code's models.

The files in this folder are the published form (served at ``/v1/schemas/<name>.json`` and
exported with every mirror); ``tests/test_schemas.py`` fails if they are not current.
Regenerate with ``python -m schemas``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.protocol.audit import PrecedentReport
from ledger.protocol.due import DueReport
from ledger.protocol.statements import STATEMENT_TYPES, VKEY_PATTERN
from ledger.statements.canonical import MAX_DOCUMENT_BYTES
from ledger.statements.statement import (
    MAX_ORIGIN_LENGTH,
    MAX_SIGNERS,
    STATEMENT_HEADER,
)
from ledger.tlog.statement_mldsa import STATEMENT_MLDSA44_VKEY_PATTERN

SCHEMA_DIR = Path(__file__).resolve().parent
DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://amnesty-ledger.invalid/schemas/"

_B64_HASH_PATTERN = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"
_INT53 = {"type": "integer", "minimum": 0, "maximum": 2**53 - 1}


def _entry_schema() -> dict[str, Any]:
    return {
        "$schema": DIALECT,
        "$id": BASE_ID + "entry.json",
        "title": "Log entry (the Merkle leaf data)",
        "description": (
            "RFC 8785 canonical JSON; at most 65,535 bytes encoded. `prev` is the RFC 6962 root "
            "of all earlier entries; `statement` is the signed statement note verbatim."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": ["index", "log_time_ms", "prev", "statement"],
        "properties": {
            "index": _INT53,
            "log_time_ms": _INT53,
            "prev": {"type": "string", "pattern": _B64_HASH_PATTERN},
            "statement": {
                "type": "string",
                "minLength": len(STATEMENT_HEADER) + 1,
                "maxLength": MAX_DOCUMENT_BYTES,
                "pattern": f"^{STATEMENT_HEADER}\n",
                "description": (
                    f"a C2SP signed note whose first line is {STATEMENT_HEADER}; at most "
                    f"{MAX_DOCUMENT_BYTES:,} bytes of UTF-8 (FORMAT.md F4.1; a schema can bound "
                    "only its characters)"
                ),
            },
        },
    }


def _statement_schema(type_name: str, version: int, body: dict[str, Any]) -> dict[str, Any]:
    defs = body.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": BASE_ID + f"statement-{type_name}.json",
        "title": f"{type_name} statement (the JSON line of the note, v{version})",
        "type": "object",
        "additionalProperties": False,
        "required": ["body", "origin", "signers", "time_ms", "type", "v"],
        "properties": {
            "type": {"const": type_name},
            "v": {"const": version},
            "origin": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_ORIGIN_LENGTH,
                "description": (
                    "no character of Unicode general category C or Z (FORMAT.md F4.7); equal to "
                    "the log's origin"
                ),
            },
            "signers": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SIGNERS,
                "uniqueItems": True,
                "description": (
                    "strictly ascending by code point, no two sharing a public key or a (name, "
                    "key ID) pair, each a real Ed25519 key or a real ML-DSA-44 statement key "
                    "(FORMAT.md F4.8, F2.9)"
                ),
                "items": {
                    "type": "string",
                    "anyOf": [
                        {"pattern": VKEY_PATTERN},
                        {"pattern": STATEMENT_MLDSA44_VKEY_PATTERN},
                    ],
                },
            },
            "time_ms": _INT53,
            "body": body,
        },
    }
    if defs:
        schema["$defs"] = defs
    return schema


def generate_schemas() -> dict[str, dict[str, Any]]:
    """Every published schema, by file name, generated from the models."""
    out: dict[str, dict[str, Any]] = {"entry.json": _entry_schema()}
    for type_name, (version, model) in sorted(STATEMENT_TYPES.items()):
        body = model.model_json_schema(ref_template="#/$defs/{model}")
        out[f"statement-{type_name}.json"] = _statement_schema(type_name, version, body)
    report = PrecedentReport.model_json_schema(ref_template="#/$defs/{model}")
    report.update({"$schema": DIALECT, "$id": BASE_ID + "precedent-report.json"})
    out["precedent-report.json"] = report
    due = DueReport.model_json_schema(ref_template="#/$defs/{model}")
    due.update({"$schema": DIALECT, "$id": BASE_ID + "due-report.json"})
    out["due-report.json"] = due
    out["index.json"] = {
        "$schema": DIALECT,
        "$id": BASE_ID + "index.json",
        "title": "amnesty-ledger schemas",
        "description": (
            "The index of the published schemas (FORMAT.md, 'Schemas'): statement_header is the "
            "first line of every statement; statement_types maps each statement type to its "
            "version v and the file of its schema; entry, precedent_report and due_report name "
            "the schemas of the log entry, the precedent report and the due report."
        ),
        "statement_header": STATEMENT_HEADER,
        "statement_types": {
            name: {"v": version, "schema": f"statement-{name}.json"}
            for name, (version, _) in sorted(STATEMENT_TYPES.items())
        },
        "entry": "entry.json",
        "precedent_report": "precedent-report.json",
        "due_report": "due-report.json",
    }
    return out


def render(schema: dict[str, Any]) -> str:
    """The file form of a schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file into ``directory``; returns the paths written."""
    written = []
    for name, schema in generate_schemas().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def published_schemas(directory: Path = SCHEMA_DIR) -> dict[str, str]:
    """The schema files as published (name -> text)."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.json"))}
