"""The conformance vectors (docs/conformance/): current, covering, and agreed with.

- The published vectors are exactly what ``scripts/conformance.py generate`` writes.
- The reference verifier and auditor give every vector its expected verdict (accept with the
  audits, or refuse naming the entry and the rule).
- The vectors cover what the issue promises: every statement type, every commitment honoured
  and broken (and pending for the clocked ones), every refusable numbered rule of FORMAT.md and
  PROTOCOL.md §2 that a log can break, and each rule they name is a rule the docs state.
- The runner's one-line command works against a verifier process, and fails against one that
  answers wrongly.
- The JSON Schemas accept every statement of the accepting vectors and refuse the body
  mutations the prose forbids and a schema can express.
- An independent signed-note verifier written from FORMAT.md §3 alone (no ``ledger`` import)
  agrees with every note vector.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import nacl.bindings
import nacl.exceptions
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "conformance.py"
VECTORS = ROOT / "docs" / "conformance" / "vectors"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["conformance_script"] = module
    spec.loader.exec_module(module)
    return module


conformance = _load_script()


def _vectors() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(VECTORS.rglob("*.json"))]


ALL = _vectors()


def test_published_vectors_are_current() -> None:
    generated = conformance.generated_files()
    published = {
        p.relative_to(VECTORS).as_posix(): p.read_text(encoding="utf-8")
        for p in VECTORS.rglob("*.json")
    }
    assert sorted(published) == sorted(generated), "run `python scripts/conformance.py generate`"
    for name, text in generated.items():
        assert published[name] == text, f"{name} is stale: run scripts/conformance.py generate"


@pytest.mark.parametrize("vector", ALL, ids=[v["name"] for v in ALL])
def test_reference_verifier_agrees(vector: dict[str, Any]) -> None:
    answer = conformance.reference_answer(vector)
    problem = conformance.compare(vector["expected"], answer)
    assert problem is None, f"{vector['name']}: {problem} ({answer.get('message', '')})"


def _rules_in_docs() -> set[str]:
    text = (ROOT / "docs" / "FORMAT.md").read_text(encoding="utf-8") + (
        ROOT / "docs" / "PROTOCOL.md"
    ).read_text(encoding="utf-8")
    return set(re.findall(r"\*\*([FP]\d+\.\d+)\b", text))


def test_every_rule_a_vector_names_is_stated_in_the_docs() -> None:
    stated = _rules_in_docs()
    protocol = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    for vector in ALL:
        for rule in vector["rules"]:
            if rule.startswith("P4."):  # a statement type's rule, in its paragraph of §4
                assert f"**`{rule[3:]}`**" in protocol, f"{vector['name']} names {rule}"
            else:
                assert rule in stated, f"{vector['name']} names {rule}, which no doc states"


def test_every_refusable_rule_has_a_negative_vector() -> None:
    refused = {v["expected"]["rule"] for v in ALL if v["expected"]["result"] == "refuse"}
    required = {
        "F2.1", "F2.2", "F2.3", "F3.1", "F3.2", "F3.3", "F3.5", "F3.6", "F4.2", "F4.3", "F4.4", "F4.5", "F4.6",
        "F4.7", "F4.8", "F4.9", "F5.1", "F5.2", "F5.3", "F5.4", "F5.5", "F7.1", "F10.4",
        "P2.4", "P2.6", "P2.7", "P2.8",
    }  # fmt: skip
    assert required <= refused, sorted(required - refused)
    assert len(ALL) >= 60


def test_vectors_cover_every_statement_type_and_verdict() -> None:
    from ledger.protocol.statements import STATEMENT_TYPES

    seen_types: set[str] = set()
    statuses: dict[str, set[str]] = {c: set() for c in conformance.COMMITMENTS}
    for vector in ALL:
        if vector["kind"] != "log" or vector["expected"]["result"] != "accept":
            continue
        for entry in vector["input"]["entries_b64"]:
            statement = json.loads(base64.b64decode(entry))["statement"]
            seen_types.add(json.loads(statement.split("\n")[1])["type"])
        for audit in vector["expected"]["audits"]:
            for commitment, status in audit["commitments"].items():
                statuses[commitment].add(status)
    assert seen_types == set(STATEMENT_TYPES)
    for commitment, seen in statuses.items():
        assert {"honoured", "broken"} <= seen, commitment
    for clocked in ("decision_within_promised_time", "pauses_bounded", "grievances_answered"):
        assert "pending" in statuses[clocked], clocked


def _runner(vectors: Path, *verifier: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "run", "--vectors", str(vectors), "--", *verifier],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_one_line_command_runs_a_verifier_process(tmp_path: Path) -> None:
    picked = ["note/one-known", "accept/batch-decision", "refuse/entry-duplicate-statement"]
    for name in picked:
        target = tmp_path / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((VECTORS / f"{name}.json").read_bytes())
    agreed = _runner(tmp_path, sys.executable, str(SCRIPT), "reference")
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert "3 of 3 vectors agree" in agreed.stdout
    accepts_all = _runner(tmp_path, sys.executable, "-c", 'print(\'{"result": "accept"}\')')
    assert accepts_all.returncode == 1
    assert "FAIL refuse/entry-duplicate-statement" in accepts_all.stdout


# ------------------------------------------------------------------------------ schemas

SCHEMA_REFUSES = {
    "refuse/body-missing-field",
    "refuse/body-unknown-field",
    "refuse/body-text-over-limit",
    "refuse/body-text-empty",
    "refuse/body-boolean-for-integer",
    "refuse/body-digest-not-canonical",
    "refuse/version-unknown",
    "refuse/statement-v-zero",
    "refuse/statement-time-negative",
    "refuse/statement-integer-too-large",
    "refuse/statement-unknown-key",
}
"""Vectors whose one broken rule is one the published JSON Schemas express."""


def _statement_json(entry_b64: str) -> Any:
    statement = json.loads(base64.b64decode(entry_b64))["statement"]
    return json.loads(statement.split("\n")[1])


def test_schemas_accept_every_statement_of_the_accepting_vectors() -> None:
    from schemas import generate_schemas

    schemas = generate_schemas()
    for vector in ALL:
        if vector["kind"] != "log" or vector["expected"]["result"] != "accept":
            continue
        for entry in vector["input"]["entries_b64"]:
            value = _statement_json(entry)
            schema = schemas[f"statement-{value['type']}.json"]
            jsonschema.Draft202012Validator(schema).validate(value)


@pytest.mark.parametrize("name", sorted(SCHEMA_REFUSES))
def test_schemas_refuse_what_the_prose_forbids(name: str) -> None:
    from schemas import generate_schemas

    schemas = generate_schemas()
    vector = next(v for v in ALL if v["name"] == name)
    value = _statement_json(vector["input"]["entries_b64"][vector["expected"]["index"]])
    schema = schemas[f"statement-{value['type']}.json"]
    assert not jsonschema.Draft202012Validator(schema).is_valid(value), name


# ----------------------------------------------------- an independent signed-note verifier

_SPACES = set(
    "\u0020\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _b64_strict(text: str) -> bytes:
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


def _name_ok(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c < "\x21" or c in _SPACES for c in name)


def _independent_note_verdict(note: bytes, known: list[str]) -> dict[str, Any]:
    """FORMAT.md §3 (F3.1–F3.6) and §2, written from the text alone."""
    try:
        message = note.decode("utf-8")
    except UnicodeDecodeError:
        return {"result": "refuse", "rule": "F3.1"}
    if any(c < "\x20" and c != "\n" for c in message):
        return {"result": "refuse", "rule": "F3.1"}
    split = message.rfind("\n\n")
    if split < 0 or split == 0:
        return {"result": "refuse", "rule": "F3.2"}
    text, block = message[: split + 1], message[split + 2 :]
    if not block.endswith("\n"):
        return {"result": "refuse", "rule": "F3.3"}
    lines = block[:-1].split("\n")
    if len(lines) > 100:
        return {"result": "refuse", "rule": "F3.3"}
    parsed = []
    for line in lines:
        if not line.startswith("\u2014 "):
            return {"result": "refuse", "rule": "F3.3"}
        fields = line[2:].split(" ")
        if len(fields) != 2 or not _name_ok(fields[0]):
            return {"result": "refuse", "rule": "F3.3"}
        try:
            raw = _b64_strict(fields[1])
        except (ValueError, binascii.Error):
            return {"result": "refuse", "rule": "F3.3"}
        if len(raw) < 5:
            return {"result": "refuse", "rule": "F3.3"}
        parsed.append((fields[0], raw[:4], raw[4:]))
    keys = {}
    for vkey in known:
        name, kid, key64 = vkey.split("+", 2)
        raw_key = _b64_strict(key64)
        digest = hashlib.sha256(name.encode() + b"\n" + raw_key).digest()
        assert raw_key[0] == 1 and digest[:4].hex() == kid
        assert nacl.bindings.crypto_core_ed25519_is_valid_point(raw_key[1:])
        keys[(name, bytes.fromhex(kid))] = (vkey, raw_key[1:])
    verified = set()
    for name, kid, signature in parsed:
        if (name, kid) not in keys:
            continue
        vkey, public = keys[(name, kid)]
        try:
            nacl.bindings.crypto_sign_open(signature + text.encode(), public)
        except nacl.exceptions.BadSignatureError:
            return {"result": "refuse", "rule": "F3.5"}
        verified.add(vkey)
    if not verified:
        return {"result": "refuse", "rule": "F3.6"}
    return {"result": "accept", "verified": sorted(verified)}


NOTES = [v for v in ALL if v["kind"] == "note"]


@pytest.mark.parametrize("vector", NOTES, ids=[v["name"] for v in NOTES])
def test_an_independent_note_verifier_agrees(vector: dict[str, Any]) -> None:
    data = vector["input"]
    answer = _independent_note_verdict(base64.b64decode(data["note_b64"]), data["known_vkeys"])
    assert conformance.compare(vector["expected"], answer) is None, answer


def test_a_statement_logged_twice_is_refused_across_incremental_runs() -> None:
    """F5.5 holds for a verifier that resumes from its trust state (written as JSON and read
    back): the ids of the entries it verified before are remembered."""
    from ledger.tlog.note import VerifierKey
    from ledger.verifier.failures import VerificationFailure
    from ledger.verifier.trust import TrustState
    from ledger.verifier.verify import verify_ledger

    vector = next(v for v in ALL if v["name"] == "refuse/entry-duplicate-statement")
    data = vector["input"]
    entries = [base64.b64decode(e) for e in data["entries_b64"]]
    duplicate = vector["expected"]["index"]
    keys = conformance.Keys.make()
    log = conformance.Log(keys)
    for entry in entries[:duplicate]:
        log.push(entry)
    log_key = VerifierKey.parse(data["log_vkey"])
    first = verify_ledger(
        conformance._MemorySource(log.checkpoint().encode(), entries[:duplicate]),
        log_key,
        workers=0,
    )
    trusted = TrustState.from_json(
        json.loads(json.dumps(first.trust_state(log_key).to_json())), log_key
    )
    whole = conformance._MemorySource(data["checkpoint"].encode(), entries)
    with pytest.raises(VerificationFailure) as failure:
        verify_ledger(whole, log_key, trusted=trusted, workers=0)
    assert failure.value.index == duplicate
    assert conformance.rule_of(str(failure.value)) == "F5.5"
