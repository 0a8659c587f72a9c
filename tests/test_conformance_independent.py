"""A second implementation of FORMAT.md, written from the document alone, run on the vectors.

It imports nothing of ``ledger`` (a test fails if it does): strict canonical JSON, signed notes,
vkeys, statements, entries, the RFC 6962 root and the checkpoint, each rule under its number, in
the order of FORMAT.md §10. It stops where PROTOCOL.md's admission begins (P2.5–P2.8), so on
every log vector it must either report exactly the expected (index, rule) — for each vector
that breaks a FORMAT rule or P2.4 — or find nothing wrong (for the others). That it agrees on
every vector is evidence that the document, not the code, is enough to implement the format.
"""

from __future__ import annotations

import ast
import base64
import binascii
import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import pytest

VECTORS = Path(__file__).resolve().parents[1] / "docs" / "conformance" / "vectors"
LOGS = [
    json.loads(p.read_text(encoding="utf-8"))
    for p in sorted(VECTORS.rglob("*.json"))
    if json.loads(p.read_text(encoding="utf-8"))["kind"] == "log"
]
HEADER = "amnesty-ledger.statement/v1"
SPACES = {0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
MAX_INT = 2**53 - 1


class Broken(Exception):
    """A rule is broken: ``rule`` is its number."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def b64(text: str, rule: str) -> bytes:
    """Canonical padded base64 (FORMAT.md conventions), else ``rule`` is broken."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Broken(rule) from None
    if base64.b64encode(raw).decode() != text:
        raise Broken(rule)
    return raw


# ------------------------------------------------------------------ canonical JSON (F4.3)


class _NotCanonical(Exception):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotCanonical(name)


def _int(text: str) -> int:
    if text == "-0" or abs(int(text)) > MAX_INT:
        raise _NotCanonical(text)
    return int(text)


def _float(text: str) -> Any:
    raise _NotCanonical(text)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _NotCanonical("duplicate key")
    return dict(pairs)


def _jcs(value: Any, depth: int = 0) -> str:
    """RFC 8785 for the integer-only subset: keys by UTF-16 code units, JCS's escapes."""
    if depth > 32:
        raise _NotCanonical("too deep")
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(_jcs(k) + ":" + _jcs(v, depth + 1) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_jcs(v, depth + 1) for v in value) + "]"
    if isinstance(value, str):
        for c in value:
            if 0xD800 <= ord(c) <= 0xDFFF:
                raise _NotCanonical("lone surrogate")
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def canonical(data: bytes, rule: str) -> Any:
    """Parse ``data`` as canonical JSON (FORMAT.md F4.3) or break ``rule``."""
    if len(data) > 65_535 or data.startswith(b"\xef\xbb\xbf"):
        raise Broken(rule)
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_refuse_constant,
            object_pairs_hook=_pairs,
        )
        if _jcs(value, 1).encode("utf-8") != data:
            raise _NotCanonical("not byte-identical")
    except (_NotCanonical, ValueError, UnicodeError):
        raise Broken(rule) from None
    return value


# --------------------------------------------------------------------- keys and notes


def key_name_ok(name: str) -> bool:
    return bool(name) and not any(
        c == "+" or ord(c) <= 0x20 or ord(c) in SPACES or 0x09 <= ord(c) <= 0x0D for c in name
    )


def parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    """F2.1–F2.3: (name, key ID, public key) of an Ed25519 vkey."""
    parts = vkey.split("+", 2)
    if len(parts) != 3 or not key_name_ok(parts[0]):
        raise Broken("F2.1")
    name, kid, key64 = parts
    if len(kid) != 8 or any(c not in "0123456789abcdef" for c in kid):
        raise Broken("F2.1")
    raw = b64(key64, "F2.1")
    if len(raw) != 33 or raw[0] != 1:
        raise Broken("F2.1")
    if hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() != kid:
        raise Broken("F2.2")
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw[1:]):
        raise Broken("F2.3")
    return name, bytes.fromhex(kid), raw[1:]


def note_syntax(data: bytes) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """F3.1–F3.3: the text and the signature lines (name, key ID, signature)."""
    try:
        message = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Broken("F3.1") from None
    if any(ord(c) < 0x20 and c != "\n" for c in message):
        raise Broken("F3.1")
    split = message.rfind("\n\n")
    if split < 0:
        raise Broken("F3.2")
    text, block = message[: split + 1], message[split + 2 :]
    if not block.endswith("\n"):
        raise Broken("F3.3")
    lines = block[:-1].split("\n")
    if len(lines) > 100:
        raise Broken("F3.3")
    out = []
    for line in lines:
        if not line.startswith("\u2014 "):
            raise Broken("F3.3")
        fields = line[2:].split(" ")
        if len(fields) != 2 or not key_name_ok(fields[0]):
            raise Broken("F3.3")
        raw = b64(fields[1], "F3.3")
        if len(raw) < 5:
            raise Broken("F3.3")
        out.append((fields[0], raw[:4], raw[4:]))
    return text, out


def verified(
    text: str, lines: list[tuple[str, bytes, bytes]], known: dict[tuple[str, bytes], Any]
) -> set[Any]:
    """F3.4–F3.6: the known keys whose lines verify."""
    found = set()
    for name, kid, signature in lines:
        if (name, kid) not in known:
            continue
        vkey, public = known[(name, kid)]
        try:
            if len(signature) != 64:
                raise nacl.exceptions.BadSignatureError
            nacl.bindings.crypto_sign_open(signature + text.encode(), public)
        except nacl.exceptions.BadSignatureError:
            raise Broken("F3.5") from None
        found.add(vkey)
    if not found:
        raise Broken("F3.6")
    return found


# ----------------------------------------------------------------- statements, entries


def check_statement(data: bytes, origin: str) -> tuple[bytes, int]:
    """F4.1–F4.11; returns (statement_id, time_ms)."""
    if len(data) > 65_535:
        raise Broken("F4.1")
    text, lines = note_syntax(data)
    header, _, rest = text.partition("\n")
    line, newline, after = rest.partition("\n")
    if header != HEADER or not newline or after:
        raise Broken("F4.2")
    value = canonical(line.encode(), "F4.3")
    if not isinstance(value, dict) or set(value) != {
        "body", "origin", "signers", "time_ms", "type", "v",
    }:  # fmt: skip
        raise Broken("F4.4")
    kind = value["type"]
    if not isinstance(kind, str) or not 1 <= len(kind) <= 64 or not kind[0].isascii():
        raise Broken("F4.5")
    if not (kind[0].islower() and all(c == "_" or "a" <= c <= "z" for c in kind)):
        raise Broken("F4.5")
    if type(value["v"]) is not int or value["v"] < 1:
        raise Broken("F4.6")
    if type(value["time_ms"]) is not int or value["time_ms"] < 0:
        raise Broken("F4.9")
    if not isinstance(value["body"], dict):
        raise Broken("F4.10")
    own = value["origin"]
    if (
        not isinstance(own, str)
        or not 1 <= len(own) <= 256
        or any(unicodedata.category(c)[0] in "CZ" for c in own)
    ):
        raise Broken("F4.7")
    signers = value["signers"]
    if not isinstance(signers, list) or not 1 <= len(signers) <= 100:
        raise Broken("F4.8")
    known: dict[tuple[str, bytes], Any] = {}
    publics: set[bytes] = set()
    for position, vkey in enumerate(signers):
        if not isinstance(vkey, str):
            raise Broken("F4.8")
        name, kid, public = parse_vkey(vkey)
        if position and vkey <= signers[position - 1]:
            raise Broken("F4.8")
        if public in publics or (name, kid) in known:
            raise Broken("F4.8")
        publics.add(public)
        known[(name, kid)] = (vkey, public)
    if own != origin:
        raise Broken("F4.7")
    verified(text, lines, known)
    return hashlib.sha256(text.encode()).digest(), value["time_ms"]


def root(leaves: list[bytes]) -> bytes:
    """RFC 6962 root of the leaf hashes (FORMAT.md §6)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + root(leaves[:split]) + root(leaves[split:])).digest()


def check_log(data: dict[str, Any]) -> tuple[int | None, str] | None:
    """FORMAT.md §10 up to the protocol's admission: the first (index, rule), or None."""
    name, kid, public = parse_vkey(data["log_vkey"])
    try:
        text, lines = note_syntax(data["checkpoint"].encode())
        verified(text, lines, {(name, kid): (data["log_vkey"], public)})
        origin, size, root64, *_ = text.split("\n")
        if origin != name or str(int(size)) != size or len(b64(root64, "F7.1")) != 32:
            raise Broken("F7.1")
    except (Broken, ValueError):
        return None, "F7.1"
    leaves: list[bytes] = []
    seen: set[bytes] = set()
    last_time = None
    for index, entry64 in enumerate(data["entries_b64"]):
        entry = base64.b64decode(entry64)
        try:
            value = canonical(entry, "F5.1")
            if not isinstance(value, dict) or set(value) != {
                "index", "log_time_ms", "prev", "statement",
            }:  # fmt: skip
                raise Broken("F5.1")
            for key in ("index", "log_time_ms"):
                if type(value[key]) is not int or value[key] < 0:
                    raise Broken("F5.1")
            if not isinstance(value["statement"], str) or not isinstance(value["prev"], str):
                raise Broken("F5.1")
            prev = b64(value["prev"], "F5.1")
            if len(prev) != 32:
                raise Broken("F5.1")
            if value["index"] != index:
                raise Broken("F5.2")
            statement_id, time_ms = check_statement(value["statement"].encode(), origin)
            if last_time is not None and value["log_time_ms"] < last_time:
                raise Broken("F5.3")
            if prev != root(leaves):
                raise Broken("F5.4")
            if statement_id in seen:
                raise Broken("F5.5")
            if time_ms > value["log_time_ms"] + 300_000:
                raise Broken("P2.4")
        except Broken as broken:
            return index, broken.rule
        seen.add(statement_id)
        last_time = value["log_time_ms"]
        leaves.append(hashlib.sha256(b"\x00" + entry).digest())
    if len(leaves) != int(size) or root(leaves) != base64.b64decode(root64):
        return None, "F10.4"
    return None


def test_it_imports_nothing_of_the_implementation() -> None:
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported.isdisjoint({"ledger", "api", "schemas", "tests", "scripts"}), imported


FORMAT_RULES = ("F", "P2.4")


@pytest.mark.parametrize("vector", LOGS, ids=[v["name"] for v in LOGS])
def test_an_independent_format_verifier_agrees(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    found = check_log(vector["input"])
    if expected["result"] == "refuse" and expected["rule"].startswith(FORMAT_RULES):
        assert found == (expected["index"], expected["rule"])
    else:  # accepted, or refused by the protocol: the format itself holds
        assert found is None, found
