"""docs/FORMAT.md's worked examples are exactly what the code produces, and they verify."""

from __future__ import annotations

import base64
import json
import re

import pytest

from ledger.statements.entry import LogEntry
from ledger.statements.statement import parse_statement, verified_signers
from ledger.tlog.checkpoint import open_checkpoint
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import VerifierKey
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof
from tests.format_examples import SPEC, generate_examples, spec_blocks


def test_every_example_in_the_spec_is_current() -> None:
    generated = generate_examples()
    in_spec = spec_blocks()
    assert sorted(in_spec) == sorted(generated), "run `python tests/format_examples.py`"
    for name, text in generated.items():
        assert in_spec[name] == text, f"example {name} in docs/FORMAT.md is stale"


def test_the_examples_verify_as_the_spec_says() -> None:
    ex = generate_examples()
    log_key = VerifierKey.parse(ex["vkeys"].split("\n")[0])
    signed = parse_statement(ex["statement-signed"].encode(), origin=log_key.name)
    assert signed.statement.statement_id.hex() == ex["statement-id"].strip()
    assert len(verified_signers(signed)) == 2
    entry0 = ex["entry-0"].rstrip("\n").encode()
    assert LogEntry.decode(entry0).statement == ex["statement-signed"]
    assert leaf_hash(entry0).hex() == ex["leaf-hash-0"].strip()
    cp2 = open_checkpoint(ex["checkpoint-2"].encode(), log_key)
    proof = parse_tlog_proof(ex["tlog-proof-0"].encode())
    assert open_tlog_proof(proof, leaf_hash(entry0), log_key) == cp2
    entry1 = json.loads(ex["entry-1"])
    assert base64.b64decode(entry1["prev"]) == leaf_hash(entry0)


DOCS = {name: SPEC.parent / name for name in ("FORMAT.md", "PROTOCOL.md")}


@pytest.mark.parametrize("name", sorted(DOCS))
def test_rules_are_numbered_without_gaps(name: str) -> None:
    """Each section's rules run 1, 2, 3… (P6 from 0) with none missing, so an implementer can
    cite every rule by number and a conformance vector can name it."""
    text = DOCS[name].read_text(encoding="utf-8")
    prefix = name[0]
    numbers: dict[int, set[int]] = {}
    for section, number in re.findall(rf"\*\*{prefix}(\d+)\.(\d+)\b", text):
        numbers.setdefault(int(section), set()).add(int(number))
    assert numbers, f"{name} numbers no rules"
    for section, found in numbers.items():
        start = min(found)
        assert start in (0, 1) and found == set(range(start, max(found) + 1)), (section, found)


@pytest.mark.parametrize("name", sorted(DOCS))
def test_the_spec_stands_alone(name: str) -> None:
    """No "see the code": the spec says everything itself, and records its editions."""
    text = DOCS[name].read_text(encoding="utf-8")
    assert "see the code" not in text.lower()
    assert "## Changelog" in text or re.search(r"^## \d+\. Changelog$", text, re.MULTILINE)
