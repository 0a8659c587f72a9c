"""The statement format: what a party asserts, as a C2SP signed note of canonical JSON.

A statement is a signed note whose text is exactly two lines::

    amnesty-ledger.statement/v1
    {"body":{...},"origin":"<origin>","signers":["<vkey>",...],"time_ms":<int>,"type":"<t>","v":<int>}

then the blank line and the signature lines of ``ledger.tlog.note``. The JSON line is RFC 8785
canonical JSON (``ledger.statements.canonical``: strict, one spelling per value) with exactly these keys:

- ``type``: the statement type, ``[a-z][a-z_]*``, at most :data:`MAX_TYPE_LENGTH` characters;
  its meaning and body schema belong to ``ledger.protocol``.
- ``v``: integer >= 1, the version of that type's body schema.
- ``origin``: the origin of the log the statement is meant for, so it cannot be replayed onto
  another log: non-empty, at most :data:`MAX_ORIGIN_LENGTH` characters, no whitespace or control
  characters.
- ``signers``: the vkeys that may sign this statement (for a body, its members; for a subject,
  its key). One to :data:`MAX_SIGNERS` vkeys in canonical spelling, each Ed25519 (type 0x01) or
  an ML-DSA-44 statement key (type ``0xff ‖ "amnesty-ledger/ml-dsa44"``,
  ``ledger.tlog.statement_mldsa``: a hybrid signer lists both of its keys), sorted ascending
  (code-point order, which for these ASCII strings is byte order) without repeats, and no two
  sharing a public key or a (name, key ID) pair. Sorting makes the signer *set* the
  statement's identity: the same set always gives the same text.
- ``time_ms``: integer >= 0, milliseconds since the Unix epoch, chosen by the signer.
- ``body``: an object; its contents are the type's business.

``statement_id`` is SHA-256 of the note text (both lines, no signature lines): signatures can be
added without changing which statement it is, and the log never holds two entries with one id.

Signing is order-independent: :func:`sign_statement` keeps one line per key, the lines of the
listed signers in ``signers`` order, then any other lines in their original order, so members
who sign one after another in any order produce the same bytes. Verification follows
signed-note: lines from keys not listed are ignored; a line naming a listed key must verify or
the statement is refused; thresholds count distinct keys, never lines. An ML-DSA-44 line is
checked like an Ed25519 one (pure ML-DSA-44 over the note text, context
``amnesty-ledger.statement/v1``); which identity it speaks for is the protocol's business (the
key bound in the logged keyset or subject statement: ``ledger.protocol.keys``).

Size: the statement must fit in one log entry after it is escaped into the entry's JSON
(:func:`~ledger.statements.entry.entry_size`, at most 65,535 bytes). An ML-DSA-44 signer adds
its vkey (1,784 characters after its name) to ``signers`` and a signature line of about
3,260 bytes, so :func:`sign_statement` refuses to add a line that would make the statement too
large to log (:data:`MAX_HYBRID_SIGNERS` is how many hybrid signers fit in an otherwise small
statement).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from ledger.errors import MalformedError, RefusedError, SignatureError
from ledger.protocol.keys import ed25519_vkeys, public_key, public_keys
from ledger.statements.canonical import (
    MAX_DOCUMENT_BYTES,
    CanonicalJSONError,
    JSONValue,
    canonical_dumps,
    parse_canonical,
)
from ledger.statements.entry import entry_size
from ledger.tlog.note import (
    ALG_ED25519,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    Signer,
    VerifierKey,
    excerpt,
    format_note,
    parse_note,
    verify_note,
)
from ledger.tlog.statement_mldsa import (
    StatementMLDSA44Key,
    StatementMLDSA44Signer,
    is_statement_mldsa44_vkey,
)
from ledger.tlog.tiles import MAX_ENTRY_SIZE

STATEMENT_HEADER: Final = "amnesty-ledger.statement/v1"
"""First line of every statement note: the format's name and version."""

MAX_STATEMENT_BYTES: Final = MAX_DOCUMENT_BYTES
"""Largest signed statement accepted, in bytes. Nothing larger could fit in a log entry (whose
own limit, enforced by ``ledger.statements.entry``, is checked after the note is escaped into JSON)."""

MAX_SIGNERS: Final = MAX_SIGNATURES
"""Most vkeys a statement may list: a note carries at most this many signature lines."""

MAX_HYBRID_SIGNERS: Final = 12
"""How many signers with both keys (Ed25519 and ML-DSA-44, both listed and both signing) fit in
one log entry beside a small body: each costs about 5,200 bytes of the entry's 65,535 (its two
vkeys in ``signers``, 1,804 + 64 characters with their quotes escaped, and its two signature
lines, 3,256 + 112 bytes for names of 20 characters). ``tests/test_hybrid_statements.py``
builds the largest such statement; docs/FORMAT.md §4 gives the arithmetic."""

Signing = Signer | StatementMLDSA44Signer
"""A key that signs statements: Ed25519 (``ledger.tlog.note.Signer`` of type 0x01) or an
ML-DSA-44 statement key."""

SignerKey = VerifierKey | StatementMLDSA44Key
"""A listed signer's parsed key."""

MAX_TYPE_LENGTH: Final = 64
MAX_ORIGIN_LENGTH: Final = 256

STATEMENT_KEYS: Final = frozenset({"body", "origin", "signers", "time_ms", "type", "v"})

_TYPE = re.compile(r"[a-z][a-z_]*")
_HEADER_LINE_BYTES = len(STATEMENT_HEADER) + 1


@dataclass(frozen=True, slots=True)
class Statement:
    """A parsed statement text.

    Instances come from :func:`new_statement`, :func:`parse_unsigned_statement` or
    :func:`parse_statement`, which guarantee that ``text`` is the header line plus the
    canonical JSON of the other fields and that ``statement_id`` is SHA-256 of ``text``.
    ``body`` is the parsed JSON object; treat it as read-only (``text`` is what was signed).
    """

    type: str
    v: int
    origin: str
    signers: tuple[str, ...]
    time_ms: int
    body: dict[str, JSONValue] = field(compare=False, hash=False)
    text: str
    statement_id: bytes


@dataclass(frozen=True, slots=True)
class SignedStatement:
    """A statement with its signed note (text, blank line, signature lines, unverified)."""

    statement: Statement
    note: Note

    def __post_init__(self) -> None:
        if self.note.text != self.statement.text:
            raise MalformedError(
                f"couldn't pair statement {self.statement.statement_id.hex()} with note "
                f"{excerpt(self.note.text)}: the note's text is another statement"
            )

    def to_bytes(self) -> bytes:
        """The signed note, as submitted and as stored in the log entry."""
        return format_note(self.note)


def new_statement(
    *,
    type: str,
    v: int,
    origin: str,
    signers: Iterable[str],
    time_ms: int,
    body: Mapping[str, JSONValue],
) -> Statement:
    """Build the unsigned statement with these fields; ``signers`` may come in any order.

    Raises :class:`MalformedError` for any field the format refuses (including a signer listed
    twice) and :class:`~ledger.statements.canonical.CanonicalJSONError` for a body that is not in the
    canonical JSON subset.
    """
    listed: set[str] = set()
    for vkey in signers:
        if vkey in listed:
            raise MalformedError(
                f"couldn't build statement: signer {excerpt(vkey)} is listed twice"
            )
        listed.add(vkey)
    fields: dict[str, JSONValue] = {
        "body": dict(body),
        "origin": origin,
        "signers": list[JSONValue](sorted(listed)),
        "time_ms": time_ms,
        "type": type,
        "v": v,
    }
    text = f"{STATEMENT_HEADER}\n{canonical_dumps(fields).decode('utf-8')}\n"
    return _statement(fields, text, "build statement")


def parse_unsigned_statement(data: bytes) -> Statement:
    """Parse a bare statement text (the two lines, no blank line, no signatures), strictly.

    This is what an offline signer receives to sign with :func:`sign_statement`.
    """
    if len(data) > MAX_STATEMENT_BYTES:
        raise MalformedError(
            f"couldn't parse statement: {len(data)} bytes is over the "
            f"{MAX_STATEMENT_BYTES}-byte limit"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MalformedError(
            f"couldn't parse statement: invalid UTF-8 at byte {err.start}: {err.reason}"
        ) from None
    return _parse_text(text)


def parse_statement(data: bytes, *, origin: str | None = None) -> SignedStatement:
    """Parse a signed statement strictly; signatures are NOT checked (see
    :func:`verified_signers`).

    Raises :class:`MalformedError` for anything not in the format (note syntax from
    ``ledger.tlog.note``, header, canonical JSON, keys and field rules) and, when ``origin`` is given,
    :class:`RefusedError` for a statement meant for another log.
    """
    if len(data) > MAX_STATEMENT_BYTES:
        raise MalformedError(
            f"couldn't parse statement: {len(data)} bytes is over the "
            f"{MAX_STATEMENT_BYTES}-byte limit"
        )
    note = parse_note(data)
    statement = _parse_text(note.text)
    if origin is not None and statement.origin != origin:
        raise RefusedError(
            f"couldn't accept statement {statement.statement_id.hex()}: it is for log "
            f"{excerpt(statement.origin)}, this log is {excerpt(origin)}"
        )
    return SignedStatement(statement, note)


def sign_statement(data: bytes, signer: Signing) -> bytes:
    """Add ``signer``'s signature line to a statement and return the signed note.

    ``data`` is the unsigned statement text or an already signed statement note. The signer
    must be one of the statement's ``signers`` (else :class:`RefusedError`); it is an Ed25519
    signer or an ML-DSA-44 statement key. A key has at most one line: signing twice with
    Ed25519 changes nothing, and with ML-DSA-44 (hedged) replaces the line by a fresh, equally
    valid one. Lines are ordered as the module
    docstring says, so the result does not depend on the order in which members sign. Existing
    signatures are not verified. A line that would make the statement too large for a log entry
    (65,535 bytes once escaped into it, :func:`~ledger.statements.entry.entry_size`) is refused
    with :class:`RefusedError`: an ML-DSA-44 line is about 3,260 bytes.
    """
    if b"\n\n" in data:
        signed = parse_statement(data)
        statement, others = signed.statement, signed.note.signatures
    else:
        statement, others = parse_unsigned_statement(data), ()
    vkey = signer.vkey
    if vkey not in statement.signers:
        raise RefusedError(
            f"couldn't sign statement {statement.statement_id.hex()} with {vkey}: it is not "
            f"one of the statement's signers ({', '.join(statement.signers)})"
        )
    key = signer.verifier_key
    line = NoteSignature(key.name, key.key_id, signer.sign(statement.text.encode("utf-8")))
    listed = {(_signer_key(v).name, _signer_key(v).key_id): v for v in statement.signers}
    by_signer: dict[str, NoteSignature] = {vkey: line}
    unlisted: list[NoteSignature] = []
    for existing in others:
        owner = listed.get((existing.name, existing.key_id))
        if owner is None:
            unlisted.append(existing)
        else:
            by_signer.setdefault(owner, existing)
    ordered = [by_signer[v] for v in statement.signers if v in by_signer]
    note = format_note(Note(statement.text, (*ordered, *unlisted)))
    size = entry_size(note.decode("utf-8"))
    if size > MAX_ENTRY_SIZE:
        raise RefusedError(
            f"couldn't sign statement {statement.statement_id.hex()} with {key.name}: with this "
            f"line its log entry would be {size} bytes, over the {MAX_ENTRY_SIZE}-byte entry "
            f"limit (an ML-DSA-44 signer adds about 5,200 bytes; at most {MAX_HYBRID_SIGNERS} "
            "hybrid signers fit: docs/FORMAT.md §4)"
        )
    return note


def verified_signers(signed: SignedStatement) -> frozenset[str]:
    """Return the vkeys listed in ``signers`` whose signature lines verify.

    Lines from keys that are not listed are ignored (signed-note: unknown signers are ignored).
    Raises :class:`SignatureError` if a line naming a listed key (by name and key ID) does not
    verify -- the whole statement is refused -- or if no listed signer signed at all. Repeated
    lines of one key must all verify and count once.
    """
    fast = _fast_verified_signers(signed)
    if fast is not None:
        return fast
    if any(is_statement_mldsa44_vkey(v) for v in signed.statement.signers):
        return _hybrid_verified_signers(signed)
    keys = {_ed25519_key(vkey): vkey for vkey in signed.statement.signers}
    return frozenset(keys[key] for key in verify_note(signed.note, keys))


def _hybrid_verified_signers(signed: SignedStatement) -> frozenset[str]:
    """:func:`verified_signers` of a statement listing ML-DSA-44 keys, when the fast path
    declined: the same rules and messages as ``verify_note`` (signers never share a key name
    and key ID, :func:`_check_signers`), for keys of both kinds."""
    note = signed.note
    by_id = {(k.name, k.key_id): (k, v) for v in signed.statement.signers for k in [_signer_key(v)]}
    message = note.text.encode("utf-8")
    verified: set[str] = set()
    for number, signature in enumerate(note.signatures, 1):
        listed = by_id.get((signature.name, signature.key_id))
        if listed is None:
            continue
        try:
            listed[0].verify_signature(message, signature.signature)
        except SignatureError as err:
            raise SignatureError(
                f"couldn't verify note {excerpt(note.text)}: line {number}: {err}"
            ) from None
        verified.add(listed[1])
    if not verified:
        names = sorted({f"{s.name}+{s.key_id.hex()}" for s in note.signatures})
        raise SignatureError(
            f"couldn't verify note {excerpt(note.text)}: no signature from a known key "
            f"(signed by {', '.join(names)}; known: {', '.join(signed.statement.signers)})"
        )
    return frozenset(verified)


def _fast_verified_signers(signed: SignedStatement) -> frozenset[str] | None:
    """:func:`verified_signers` without the general machinery of ``verify_note``, for the
    usual case; ``None`` whenever that case does not hold (two listed keys sharing a key name
    and ID, a line that fails to verify, no verified line), and the general path then answers,
    refusal and message included. Same checks in the same order: each line naming a listed key
    (by key name and key ID) is verified over the note text."""
    by_id: dict[tuple[str, bytes], tuple[SignerKey, str]] = {}
    for vkey in signed.statement.signers:
        key = _signer_key(vkey)
        if by_id.setdefault((key.name, key.key_id), (key, vkey))[1] != vkey:
            return None
    message = signed.note.text.encode("utf-8")
    verified: set[str] = set()
    for signature in signed.note.signatures:
        listed = by_id.get((signature.name, signature.key_id))
        if listed is None:
            continue
        try:
            listed[0].verify_signature(message, signature.signature)
        except SignatureError:
            return None
        verified.add(listed[1])
    return frozenset(verified) if verified else None


def present_signers(signed: SignedStatement) -> frozenset[str]:
    """Listed signers that have a signature line, WITHOUT checking the signatures.

    Only for replaying entries a log already admitted (their lines were verified when they were
    admitted, and the stored tree is checked against the signed checkpoint); anyone checking a
    statement uses :func:`verified_signers`.
    """
    lines = {(sig.name, sig.key_id) for sig in signed.note.signatures}
    present = set()
    for vkey in signed.statement.signers:
        key = _signer_key(vkey)
        if (key.name, key.key_id) in lines:
            present.add(vkey)
    return frozenset(present)


@dataclass(frozen=True, slots=True)
class Authority:
    """Who may speak for a party: ``threshold`` distinct keys out of ``members`` (vkeys).

    Construction refuses (with :class:`MalformedError`) an empty keyset, a threshold outside
    ``1..len(members)``, a member that is not a canonical Ed25519 vkey (a member is identified
    by its Ed25519 key; an ML-DSA-44 key it binds is the protocol's business), and two members
    that share a public key (which would let one key count twice).
    """

    members: frozenset[str]
    threshold: int

    def __post_init__(self) -> None:
        if not self.members:
            raise MalformedError("couldn't build authority: the keyset has no members")
        if not 1 <= self.threshold <= len(self.members):
            raise MalformedError(
                f"couldn't build authority: threshold {self.threshold} is not between 1 and "
                f"the {len(self.members)} members"
            )
        public_keys: dict[bytes, str] = {}
        for vkey in sorted(self.members):
            try:
                key = _ed25519_key(vkey)
            except MalformedError as err:
                raise MalformedError(f"couldn't build authority: member: {err}") from None
            other = public_keys.setdefault(key.public_key, vkey)
            if other != vkey:
                raise MalformedError(
                    f"couldn't build authority: members {other} and {vkey} share a public key"
                )


def require_authority(verified: frozenset[str], authority: Authority, what: str) -> frozenset[str]:
    """Return the members of ``authority`` among the ``verified`` signers, if they are at least
    its threshold; otherwise raise :class:`SignatureError` naming who signed.

    ``verified`` comes from :func:`verified_signers`. Keys are compared by public key (a key is
    its public key: :mod:`ledger.protocol.keys`), so a member that signed under another name
    counts, and each member counts once (members never share a public key); keys that are not
    members add nothing. ``what`` names the act being authorised in the message, e.g.
    ``"offer 3"``.
    """
    signing = public_keys(ed25519_vkeys(verified))
    signed = frozenset(m for m in authority.members if public_key(m) in signing)
    if len(signed) < authority.threshold:
        names = ", ".join(sorted(_key_name(vkey) for vkey in signed)) or "none"
        raise SignatureError(
            f"couldn't authorise {what}: {len(signed)} of {authority.threshold} required "
            f"distinct keys of the keyset signed ({names})"
        )
    return signed


@functools.lru_cache(maxsize=4096)
def _signer_key(vkey: str) -> SignerKey:
    """Parse a signer's vkey: canonical spelling, and either Ed25519 (type 0x01, a valid point)
    or an ML-DSA-44 statement key (type ``0xff ‖ "amnesty-ledger/ml-dsa44"``).

    Cached: checking a point costs as much as verifying a signature, and a verifier meets the
    same few keys on a million statements. Failures are not cached.
    """
    if is_statement_mldsa44_vkey(vkey):
        return StatementMLDSA44Key.parse(vkey)
    return _ed25519_key(vkey)


@functools.lru_cache(maxsize=4096)
def _ed25519_key(vkey: str) -> VerifierKey:
    """Parse an Ed25519 signer's vkey (type 0x01, valid point); refuse any other type."""
    key = VerifierKey.parse(vkey)
    if key.alg != ALG_ED25519:
        raise MalformedError(
            f"couldn't accept signer {excerpt(vkey)}: signature type 0x{key.alg:02x} is not "
            "0x01 (Ed25519) or 0xff 'amnesty-ledger/ml-dsa44' (an ML-DSA-44 statement key)"
        )
    return key


def _show(value: JSONValue) -> str:
    """A JSON value as ASCII JSON text cut to 80 characters, safe in any error message."""
    text = json.dumps(value)
    return text if len(text) <= 80 else f"{text[:80]}… ({len(text)} characters)"


def _key_name(vkey: str) -> str:
    """The key name of a vkey (everything before its first ``+``)."""
    return vkey.split("+", 1)[0]


def _parse_text(text: str) -> Statement:
    """Parse a note text as a statement: header line, canonical JSON line, field rules."""
    header, newline, rest = text.partition("\n")
    if header != STATEMENT_HEADER or not newline:
        raise MalformedError(
            f"couldn't parse statement: the first line is {excerpt(header)}, "
            f"not {STATEMENT_HEADER!r}"
        )
    line, newline, after = rest.partition("\n")
    if not newline or after:
        raise MalformedError(
            "couldn't parse statement: the text must be exactly two lines, the header and "
            f"one line of JSON, each ending in a newline (found {text.count(chr(10))} lines)"
        )
    try:
        value = parse_canonical(line.encode("utf-8"))
    except CanonicalJSONError as err:
        raise err.within("parse statement JSON", _HEADER_LINE_BYTES) from None
    return _statement(value, text, "parse statement")


def _statement(value: JSONValue, text: str, action: str) -> Statement:
    """Check the decoded JSON line against the field rules and build the Statement.

    ``action`` ("parse statement", "build statement") starts every error message.
    """
    if not isinstance(value, dict):
        raise MalformedError(
            f"couldn't {action}: the JSON line is a {type(value).__name__}, not an object"
        )
    if value.keys() != STATEMENT_KEYS:
        missing = sorted(STATEMENT_KEYS - value.keys())
        unknown = sorted(value.keys() - STATEMENT_KEYS)
        problems = ([f"missing keys {', '.join(missing)}"] if missing else []) + (
            [f"unknown keys {', '.join(_show(k) for k in unknown)}"] if unknown else []
        )
        raise MalformedError(f"couldn't {action}: {', '.join(problems)}")
    kind, v, origin = value["type"], value["v"], value["origin"]
    signers, time_ms, body = value["signers"], value["time_ms"], value["body"]
    if not isinstance(kind, str) or len(kind) > MAX_TYPE_LENGTH or not _TYPE.fullmatch(kind):
        raise MalformedError(
            f"couldn't {action}: type {_show(kind)} is not [a-z][a-z_]* of at most "
            f"{MAX_TYPE_LENGTH} characters"
        )
    if type(v) is not int or v < 1:
        raise MalformedError(f"couldn't {action}: v {_show(v)} is not an integer >= 1")
    if type(time_ms) is not int or time_ms < 0:
        raise MalformedError(f"couldn't {action}: time_ms {_show(time_ms)} is not an integer >= 0")
    if not isinstance(body, dict):
        raise MalformedError(f"couldn't {action}: body is a {type(body).__name__}, not an object")
    return Statement(
        type=kind,
        v=v,
        origin=_check_origin(origin, action),
        signers=_check_signers(signers, action),
        time_ms=time_ms,
        body=body,
        text=text,
        statement_id=hashlib.sha256(text.encode("utf-8")).digest(),
    )


def _check_origin(origin: JSONValue, action: str) -> str:
    """Return ``origin`` if it is a non-empty, bounded, printable string without spaces."""
    if type(origin) is str and len(origin) <= MAX_ORIGIN_LENGTH and _is_valid_origin(origin):
        return origin
    if (
        not isinstance(origin, str)
        or not 0 < len(origin) <= MAX_ORIGIN_LENGTH
        or not origin.isprintable()
        or any(c.isspace() for c in origin)
    ):
        raise MalformedError(
            f"couldn't {action}: origin {_show(origin)} is not a non-empty string of at "
            f"most {MAX_ORIGIN_LENGTH} printable characters without spaces"
        )
    return origin


@functools.lru_cache(maxsize=1024)
def _is_valid_origin(origin: str) -> bool:
    """Whether :func:`_check_origin` accepts ``origin`` (cached: a log has one origin, and the
    check looks at every character)."""
    return (
        0 < len(origin) <= MAX_ORIGIN_LENGTH
        and origin.isprintable()
        and not any(c.isspace() for c in origin)
    )


def _check_signers(signers: JSONValue, action: str) -> tuple[str, ...]:
    """Refuse a signer list that breaks the rules in the module docstring; return it as a
    tuple."""
    if not isinstance(signers, list) or not 1 <= len(signers) <= MAX_SIGNERS:
        count = len(signers) if isinstance(signers, list) else type(signers).__name__
        raise MalformedError(
            f"couldn't {action}: signers must be a list of 1 to {MAX_SIGNERS} vkeys, got {count}"
        )
    checked: list[str] = []
    public_keys: dict[bytes, str] = {}  # 32-byte and 1,312-byte keys: never equal
    key_ids: dict[tuple[str, bytes], str] = {}
    for index, vkey in enumerate(signers):
        if not isinstance(vkey, str):
            raise MalformedError(f"couldn't {action}: signers[{index}] is not a string")
        try:
            key = _signer_key(vkey)
        except MalformedError as err:
            raise MalformedError(f"couldn't {action}: signers[{index}]: {err}") from None
        if checked and vkey <= checked[-1]:
            raise MalformedError(
                f"couldn't {action}: signers must be sorted and distinct, but "
                f"signers[{index}] {vkey} comes after {checked[-1]}"
            )
        same_key = public_keys.setdefault(key.public_key, vkey)
        same_id = key_ids.setdefault((key.name, key.key_id), vkey)
        if same_key != vkey or same_id != vkey:
            other, shared = (
                (same_key, "a public key") if same_key != vkey else (same_id, "a key name and ID")
            )
            raise MalformedError(f"couldn't {action}: signers {other} and {vkey} share {shared}")
        checked.append(vkey)
    return tuple(checked)
