"""A reusable corpus of hostile statement submissions.

:func:`hostile_statements` builds, for a given log origin and a signer key, a list of named
submissions that a log must refuse, each with the error class it must raise and a fragment of
the message. Every case is validly signed by ``signer`` wherever a signature can be valid, so
that it fails for its named reason and not for a bad signature. The statement tests run every
case through ``parse_statement(data, origin=origin)`` and ``verified_signers``; the HTTP tests
submit the same bytes and expect a 4xx that names the same problem.

:func:`valid_statement` is the control: the statement every case starts from, which passes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from ledger.errors import LedgerError, MalformedError, RefusedError, SignatureError
from ledger.statements.canonical import JSONValue, canonical_dumps
from ledger.statements.statement import STATEMENT_HEADER
from ledger.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_SIGNATURES,
    NoteSignature,
    Signer,
    key_id,
)

TIME_MS = 1_700_000_000_000
"""``time_ms`` of every corpus statement."""


@dataclass(frozen=True)
class HostileCase:
    """One hostile submission: ``data`` must be refused with ``error`` (or a subclass) and a
    message containing ``message``."""

    name: str
    data: bytes
    error: type[LedgerError]
    message: str


def valid_statement(origin: str, signer: Signer) -> bytes:
    """A well-formed statement for ``origin``, listing and signed by ``signer`` only."""
    return _Corpus(origin, signer).signed(_Corpus(origin, signer).line())


def hostile_statements(origin: str, signer: Signer) -> list[HostileCase]:
    """The corpus for a log at ``origin``; ``signer`` is the one listed signer of each case."""
    c = _Corpus(origin, signer)
    valid = c.signed(c.line())
    text_end = valid.index(b"\n\n") + 1
    bad = MalformedError
    cases = [
        # -- not canonical JSON (the JSON line; offsets and paths are named) -----------------
        HostileCase(
            "duplicate key in body",
            c.signed(c.line(body=b'{"a":1,"a":2}')),
            bad,
            'duplicate key "a" (at $.body)',
        ),
        HostileCase(
            "duplicate top-level key",
            c.signed(c.line(v=b'1,"v":2')),
            bad,
            'duplicate key "v" (at $)',
        ),
        HostileCase(
            "float in nested body",
            c.signed(c.line(body=b'{"criteria":[1,2,{"x":1.5}]}')),
            bad,
            "(floats are not allowed) (at $.body.criteria[2].x)",
        ),
        HostileCase("integral float", c.signed(c.line(v=b"1.0")), bad, "number 1.0 is not"),
        HostileCase(
            "exponent", c.signed(c.line(time_ms=b"17e11")), bad, "number 17e11 is not an integer"
        ),
        HostileCase(
            "NaN", c.signed(c.line(body=b'{"x":NaN}')), bad, "NaN is not allowed (at $.body.x)"
        ),
        HostileCase(
            "Infinity", c.signed(c.line(body=b'{"x":Infinity}')), bad, "Infinity is not allowed"
        ),
        HostileCase(
            "-Infinity", c.signed(c.line(body=b'{"x":-Infinity}')), bad, "-Infinity is not"
        ),
        HostileCase(
            "integer 2^53",
            c.signed(c.line(time_ms=b"9007199254740992")),
            bad,
            "integer 9007199254740992 is outside ±(2^53-1) (at $.time_ms)",
        ),
        HostileCase(
            "integer -2^53",
            c.signed(c.line(body=b'{"n":-9007199254740992}')),
            bad,
            "is outside ±(2^53-1) (at $.body.n)",
        ),
        HostileCase(
            "5000-digit integer",
            c.signed(c.line(body=b'{"n":' + b"9" * 5000 + b"}")),
            bad,
            "(5000 digits) is outside",
        ),
        HostileCase("negative zero", c.signed(c.line(body=b'{"n":-0}')), bad, "negative zero -0"),
        HostileCase(
            "lone surrogate escape",
            c.signed(c.line(body=b'{"s":"\\ud800"}')),
            bad,
            "lone surrogate U+D800 in a string (at $.body.s)",
        ),
        HostileCase(
            "lone low surrogate in key",
            c.signed(c.line(body=b'{"\\udc00":1}')),
            bad,
            "lone surrogate U+DC00 in key",
        ),
        HostileCase(
            "escaped surrogate pair",
            c.signed(c.line(body=b'{"s":"\\ud83d\\ude00"}')),
            bad,
            "escape \\ud83d is not canonical",
        ),
        HostileCase(
            "escaped ASCII letter",
            c.signed(c.line(body=b'{"s":"\\u0041"}')),
            bad,
            "escape \\u0041 is not canonical; RFC 8785 writes A",
        ),
        HostileCase(
            "escaped solidus", c.signed(c.line(body=b'{"s":"a\\/b"}')), bad, "escape \\/ is not"
        ),
        HostileCase(
            "uppercase hex escape",
            c.signed(c.line(body=b'{"s":"\\u001F"}')),
            bad,
            "escape \\u001F is not canonical; RFC 8785 writes \\u001f",
        ),
        HostileCase(
            "whitespace after colon",
            c.signed(c.line(body=b'{"a": 1}')),
            bad,
            f"whitespace b' ' is not allowed outside strings (at byte offset {c.body_offset + 5})",
        ),
        HostileCase(
            "trailing space on the JSON line",
            c.signed(c.line() + b" "),
            bad,
            "whitespace b' ' is not allowed",
        ),
        HostileCase(
            "tab before the JSON line", c.signed(b"\t" + c.line()), bad, "control character"
        ),
        HostileCase(
            "body keys out of order",
            c.signed(c.line(body=b'{"b":1,"a":2}')),
            bad,
            'key "a" must come before "b" (keys sort by UTF-16 code units) (at $.body)',
        ),
        HostileCase(
            "keys in code-point rather than UTF-16 order",
            c.signed(c.line(body='{"\uffff":1,"\U0001f600":2}'.encode())),
            bad,
            "must come before",
        ),
        HostileCase(
            "nesting 40 deep",
            c.signed(c.line(body=b'{"a":' + b"[" * 39 + b"]" * 39 + b"}")),
            bad,
            "nesting is deeper than 32 arrays and objects",
        ),
        HostileCase(
            "60,000 open brackets",
            c.signed(c.line(body=b'{"a":' + b"[" * 60_000 + b"}")),
            bad,
            "nesting is deeper than 32",
        ),
        HostileCase(
            "over the size limit",
            c.signed(c.line(body=b'{"s":"' + b"x" * 70_000 + b'"}')),
            bad,
            "over the 65535-byte limit",
        ),
        HostileCase(
            "byte order mark before the JSON",
            c.signed(b"\xef\xbb\xbf" + c.line()),
            bad,
            f"a byte order mark is not allowed (at byte offset {len(STATEMENT_HEADER) + 1})",
        ),
        HostileCase(
            "byte order mark before the note", b"\xef\xbb\xbf" + valid, bad, "the first line is"
        ),
        HostileCase(
            "invalid UTF-8 byte",
            c.signed(c.line(body=b'{"s":"\xff"}')),
            bad,
            "invalid UTF-8",
        ),
        HostileCase(
            "overlong UTF-8", c.signed(c.line(body=b'{"s":"\xc0\xaf"}')), bad, "invalid UTF-8"
        ),
        HostileCase(
            "UTF-8-encoded surrogate",
            c.signed(c.line(body=b'{"s":"\xed\xa0\x80"}')),
            bad,
            "invalid UTF-8",
        ),
        HostileCase(
            "NUL byte in a string",
            c.signed(c.line(body=b'{"s":"a\x00b"}')),
            bad,
            "control character '\\x00'",
        ),
        HostileCase("JSON line is an array", c.signed(b"[1]"), bad, "is a list, not an object"),
        HostileCase("JSON line is not JSON", c.signed(b"{"), bad, "invalid JSON"),
        # -- statement fields ---------------------------------------------------------------
        HostileCase(
            "statement for another log",
            c.signed(c.line(origin=canonical_dumps(origin + ".other"))),
            RefusedError,
            f"it is for log {origin + '.other'!r}, this log is {origin!r}",
        ),
        HostileCase(
            "empty origin", c.signed(c.line(origin=b'""')), bad, 'origin "" is not a non-empty'
        ),
        HostileCase(
            "origin with a space",
            c.signed(c.line(origin=canonical_dumps(origin + " x"))),
            bad,
            "without spaces",
        ),
        HostileCase("origin is a number", c.signed(c.line(origin=b"7")), bad, "origin 7 is not"),
        HostileCase(
            "uppercase type", c.signed(c.line(type_=b'"Offer"')), bad, 'type "Offer" is not'
        ),
        HostileCase(
            "type with a digit", c.signed(c.line(type_=b'"offer2"')), bad, 'type "offer2" is not'
        ),
        HostileCase(
            "type with a hyphen",
            c.signed(c.line(type_=b'"key-rotation"')),
            bad,
            'type "key-rotation" is not',
        ),
        HostileCase(
            "type starting with an underscore",
            c.signed(c.line(type_=b'"_offer"')),
            bad,
            'type "_offer" is not',
        ),
        HostileCase("empty type", c.signed(c.line(type_=b'""')), bad, 'type "" is not'),
        HostileCase(
            "65-character type",
            c.signed(c.line(type_=b'"' + b"a" * 65 + b'"')),
            bad,
            "of at most 64 characters",
        ),
        HostileCase("v is 0", c.signed(c.line(v=b"0")), bad, "v 0 is not an integer >= 1"),
        HostileCase("v is true", c.signed(c.line(v=b"true")), bad, "v true is not an integer"),
        HostileCase("v is a string", c.signed(c.line(v=b'"1"')), bad, 'v "1" is not an integer'),
        HostileCase(
            "negative time", c.signed(c.line(time_ms=b"-1")), bad, "time_ms -1 is not an integer"
        ),
        HostileCase("time is null", c.signed(c.line(time_ms=b"null")), bad, "time_ms null is not"),
        HostileCase("body is a list", c.signed(c.line(body=b"[]")), bad, "body is a list"),
        HostileCase(
            "missing key",
            c.signed(c.line().replace(b',"time_ms":' + str(TIME_MS).encode(), b"")),
            bad,
            "missing keys time_ms",
        ),
        HostileCase(
            "unknown key",
            c.signed(c.line(v=b'1,"zzz":1')),
            bad,
            'unknown keys "zzz"',
        ),
        HostileCase(
            "empty JSON object", c.signed(b"{}"), bad, "missing keys body, origin, signers"
        ),
        HostileCase(
            "no signers", c.signed(c.line(signers=b"[]")), bad, "signers must be a list of 1 to"
        ),
        HostileCase(
            "signers is a string",
            c.signed(c.line(signers=canonical_dumps(signer.vkey))),
            bad,
            "signers must be a list of 1 to 100 vkeys, got str",
        ),
        HostileCase(
            "signer listed twice",
            c.signed(c.line(signers=_vkeys([signer.vkey, signer.vkey]))),
            bad,
            "signers must be sorted and distinct",
        ),
        HostileCase(
            "signers unsorted",
            c.signed(c.line(signers=_vkeys(sorted([signer.vkey, c.other.vkey])[::-1]))),
            bad,
            "signers must be sorted and distinct",
        ),
        HostileCase(
            "signer is not a vkey",
            c.signed(c.line(signers=b'["alice"]')),
            bad,
            "signers[0]: couldn't parse vkey",
        ),
        HostileCase(
            "signer vkey with uppercase key ID",
            c.signed(c.line(signers=_vkeys([c.uppercase_id_vkey]))),
            bad,
            "is not 8 lowercase hex digits",
        ),
        HostileCase(
            "signer vkey of the small-order identity point",
            c.signed(c.line(signers=_vkeys([c.identity_vkey]))),
            bad,
            "not a canonical Ed25519 point of prime order",
        ),
        HostileCase(
            "signer is a cosignature key",
            c.signed(c.line(signers=_vkeys([c.witness.vkey]))),
            bad,
            "signature type 0x04 is not 0x01",
        ),
        HostileCase(
            "signers share a public key under two names",
            c.signed(c.line(signers=_vkeys(sorted([signer.vkey, c.alias.vkey])))),
            bad,
            "share a public key",
        ),
        HostileCase(
            "101 signers",
            c.signed(c.line(signers=_vkeys(c.many_vkeys))),
            bad,
            "signers must be a list of 1 to 100 vkeys, got 101",
        ),
        # -- note structure ----------------------------------------------------------------
        HostileCase("empty submission", b"", bad, "no blank line before the signatures"),
        HostileCase("unsigned text", valid[:text_end], bad, "no blank line before the signatures"),
        HostileCase("truncated signature line", valid[:-10], bad, "does not end in a newline"),
        HostileCase("truncated after the blank line", valid[: text_end + 1], bad, "is empty"),
        HostileCase(
            "header and JSON lines swapped",
            c.signed_text(c.line() + b"\n" + STATEMENT_HEADER.encode() + b"\n"),
            bad,
            "the first line is",
        ),
        HostileCase(
            "wrong format version",
            c.signed_text(b"amnesty-ledger.statement/v2\n" + c.line() + b"\n"),
            bad,
            "not 'amnesty-ledger.statement/v1'",
        ),
        HostileCase(
            "no header",
            c.signed_text(c.line() + b"\n"),
            bad,
            "the first line is",
        ),
        HostileCase(
            "a third text line",
            c.signed_text(STATEMENT_HEADER.encode() + b"\n" + c.line() + b"\nextra\n"),
            bad,
            "exactly two lines",
        ),
        HostileCase(
            "CRLF line endings", valid.replace(b"\n", b"\r\n"), bad, "control character '\\r'"
        ),
        HostileCase(
            "signature line with a hyphen",
            valid.replace("— ".encode(), b"- "),
            bad,
            "does not start with an em dash",
        ),
        HostileCase(
            "signature base64 with a stray character",
            valid[:-3] + b"!=\n",
            bad,
            "couldn't parse signature line 1",
        ),
        HostileCase(
            "200 grease signature lines",
            valid + c.grease_lines(200),
            bad,
            f"201 signature lines, more than {MAX_SIGNATURES}",
        ),
        # -- signatures --------------------------------------------------------------------
        HostileCase(
            "signature over different bytes",
            valid[:text_end] + b"\n" + c.signature_line(c.text(c.line(v=b"2"))),
            SignatureError,
            "Ed25519 verification failed",
        ),
        HostileCase(
            "one flipped signature bit",
            valid[:text_end] + b"\n" + c.signature_line(c.text(c.line()), flip=True),
            SignatureError,
            "Ed25519 verification failed",
        ),
        HostileCase(
            "signed only by an unlisted key",
            valid[:text_end] + b"\n" + c.signature_line(c.text(c.line()), by=c.other),
            SignatureError,
            "no signature from a known key",
        ),
        HostileCase(
            "good line, then a bad line of the same key",
            valid + c.signature_line(c.text(c.line()), flip=True),
            SignatureError,
            "line 2: couldn't verify signature",
        ),
    ]
    return cases


class _Corpus:
    """Builders for the corpus: a JSON line with any field replaced by raw bytes, and notes
    signed over exactly the bytes given (so the signature is valid whatever the text holds)."""

    def __init__(self, origin: str, signer: Signer) -> None:
        self.origin = origin
        self.signer = signer
        self.other = Signer.from_seed("other.example", bytes(range(32)))
        self.witness = Signer.from_seed("witness.example", bytes(32), ALG_COSIGNATURE_V1)
        self.alias = Signer(signer.name + "-alias", _seed_of(signer), ALG_ED25519)
        self.many_vkeys = sorted(
            Signer.from_seed(f"member{i:03}", bytes([i]) * 32).vkey for i in range(101)
        )
        name, hex8, key64 = self.other.vkey.split("+", 2)
        self.uppercase_id_vkey = f"{name}+{hex8.upper()}+{key64}"
        identity = bytes([1]) + bytes(31)
        identity_id = key_id("identity.example", ALG_ED25519, identity).hex()
        identity_key = base64.b64encode(bytes([ALG_ED25519]) + identity).decode()
        self.identity_vkey = f"identity.example+{identity_id}+{identity_key}"
        self.body_offset = len(STATEMENT_HEADER) + 1 + len(b'{"body":')

    def line(
        self,
        *,
        body: bytes = b'{"offer_version":1}',
        origin: bytes | None = None,
        signers: bytes | None = None,
        time_ms: bytes = str(TIME_MS).encode(),
        type_: bytes = b'"application"',
        v: bytes = b"1",
    ) -> bytes:
        """The canonical JSON line of the control statement, with raw replacements."""
        origin = canonical_dumps(self.origin) if origin is None else origin
        signers = _vkeys([self.signer.vkey]) if signers is None else signers
        return (
            b'{"body":' + body + b',"origin":' + origin + b',"signers":' + signers
            + b',"time_ms":' + time_ms + b',"type":' + type_ + b',"v":' + v + b"}"
        )  # fmt: skip

    def text(self, line: bytes) -> bytes:
        """The statement text around a JSON line."""
        return STATEMENT_HEADER.encode() + b"\n" + line + b"\n"

    def signed(self, line: bytes) -> bytes:
        """The statement note of ``line``, validly signed by the signer."""
        return self.signed_text(self.text(line))

    def signed_text(self, text: bytes) -> bytes:
        """``text`` (any bytes), a blank line and the signer's valid signature of it."""
        return text + b"\n" + self.signature_line(text)

    def signature_line(self, text: bytes, *, by: Signer | None = None, flip: bool = False) -> bytes:
        """A signature line of ``text`` by ``by`` (default: the signer), with its last
        signature bit flipped if ``flip``."""
        signer = self.signer if by is None else by
        signature = bytearray(signer.sign(text))
        if flip:
            signature[-1] ^= 0x01
        key = signer.verifier_key
        return NoteSignature(key.name, key.key_id, bytes(signature)).line().encode()

    def grease_lines(self, count: int) -> bytes:
        """``count`` well-formed lines from random-looking unknown keys (signed-note grease)."""
        lines = [
            NoteSignature(f"grease{i}.example", i.to_bytes(4, "big"), bytes(64)).line()
            for i in range(count)
        ]
        return "".join(lines).encode()


def _vkeys(vkeys: list[str]) -> bytes:
    """The canonical JSON array of ``vkeys``, in the order given."""
    return canonical_dumps(list[JSONValue](vkeys))


def _seed_of(signer: Signer) -> bytes:
    """The seed of ``signer``, read back from its private key text (for the alias key)."""
    key64 = signer.private_key_text().split("+", 4)[4]
    return base64.b64decode(key64)[1:]
