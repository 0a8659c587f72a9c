"""Strict RFC 8785 canonical JSON: write it with :func:`canonical_dumps`, read it with
:func:`parse_canonical`, which refuses every byte string that is not already canonical.

A signature must cover exactly one byte string, so the ledger admits one spelling of each value.
The subset of JSON it admits is the intersection of RFC 8785 (JCS) and I-JSON (RFC 7493):

- objects, arrays, strings, integers, ``true``, ``false``, ``null``;
- no floats at all (no ``.`` or exponent in any number), no ``NaN``/``Infinity``, no ``-0``;
- integers within ±(2^53 − 1) (:data:`MAX_SAFE_INTEGER`), exact in every JSON implementation;
- strings of Unicode scalar values: valid UTF-8, no byte order mark, no lone surrogates
  (neither as raw bytes nor as ``\\ud800`` escapes);
- no duplicate keys; keys sorted by their UTF-16 code units (RFC 8785 §3.2.3);
- no insignificant whitespace, and only the escapes RFC 8785 §3.2.2.2 writes
  (``\\"``, ``\\\\``, ``\\b``, ``\\f``, ``\\n``, ``\\r``, ``\\t``, ``\\u00xx`` for the other
  control characters, lowercase hex);
- at most :data:`MAX_DEPTH` nested arrays and objects, at most :data:`MAX_DOCUMENT_BYTES` bytes.

Invariant: ``parse_canonical(canonical_dumps(v)) == v`` for every value ``canonical_dumps``
accepts, and ``canonical_dumps(parse_canonical(b)) == b`` for every ``b`` that
``parse_canonical`` accepts.

How the parser is fast and still exact (a verifier parses a million documents): the C ``json``
scanner parses, with hooks that turn every refused number or constant (a float, ``NaN``, an
out-of-range integer, ``-0``) into a :class:`_Refusal` placeholder instead of raising. The value
is then re-encoded by the C ``json`` encoder with sorted keys and compared byte for byte with the
input, so duplicate keys (dropped by the dict), unsorted keys, whitespace and non-canonical
escapes all show up as a difference. For values without placeholders, that encoder writes exactly
what ``rfc8785.dumps`` writes, at a fifth of the cost: same escapes, same integers, and sorting
by code point equals RFC 8785's sorting by UTF-16 code unit as long as no character lies beyond
U+FFFF -- documents that have one are re-encoded by ``rfc8785`` itself. The property tests in
``tests/test_canonical.py`` hold the two encoders to that. Only when something is wrong does a
second, checking parse and an iterative walk find where, to name it in the error.
"""

from __future__ import annotations

import codecs
import itertools
import json
import json.encoder
import re
from collections.abc import Callable
from typing import TypeAlias

import rfc8785

from ledger.errors import MalformedError

JSONValue: TypeAlias = bool | int | str | list["JSONValue"] | dict[str, "JSONValue"] | None
"""A value of the canonical JSON subset, as :func:`parse_canonical` returns it."""

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer magnitude admitted: every IEEE 754 double holds it exactly (I-JSON §2.2)."""

MAX_DEPTH = 32
"""Most arrays and objects nested in one another (a top-level object is depth 1). Statements
need fewer than ten; the bound keeps every walk of a parsed value short and recursion-free."""

MAX_DOCUMENT_BYTES = 65_535
"""Largest document admitted, in bytes: the tlog-tiles entry-bundle limit, which no statement
or entry may exceed anyway."""

_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    check_circular=False,
    sort_keys=True,
    separators=(",", ":"),
)
_C_ENCODER: Callable[[object, int], list[str]] | None = (
    None
    if json.encoder.c_make_encoder is None  # type: ignore[attr-defined]
    else json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None,  # no circular check (check_circular=False)
        _ENCODER.default,
        json.encoder.encode_basestring,  # ensure_ascii=False
        None,  # no indent
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
)
"""The C encoder that ``_ENCODER.encode`` builds afresh on every call, built once."""


def _encode(value: object) -> str:
    """``_ENCODER.encode(value)``: the same C encoder with the same settings, without the
    per-call set-up."""
    if _C_ENCODER is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODER(value, 0))


# UTF-8 lead bytes of characters beyond U+FFFF (F5..FF never occur in valid UTF-8).
_ASTRAL_LEAD_BYTES = b"\xf0\xf1\xf2\xf3\xf4"
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WHITESPACE_TOKENS = frozenset((b" ", b"\t", b"\r", b"\n"))
# Longest decimal literal that can be within ±MAX_SAFE_INTEGER: a sign and 16 digits.
_MAX_INTEGER_LITERAL = 17


class CanonicalJSONError(MalformedError):
    """A document is not canonical JSON of the admitted subset, or a value cannot be encoded.

    ``problem`` says what is wrong; ``byte_offset`` (into the document) and ``path`` (a JSON
    path such as ``$.body.criteria[2]``) say where, whichever is known.
    """

    def __init__(
        self,
        problem: str,
        *,
        byte_offset: int | None = None,
        path: str | None = None,
        action: str = "parse canonical JSON",
    ) -> None:
        where = [f"at {path}"] if path is not None else []
        if byte_offset is not None:
            where.append(f"at byte offset {byte_offset}")
        suffix = f" ({', '.join(where)})" if where else ""
        super().__init__(f"couldn't {action}: {problem}{suffix}")
        self.problem = problem
        self.byte_offset = byte_offset
        self.path = path

    def within(self, action: str, shift: int) -> CanonicalJSONError:
        """The same error, reported for a document embedded ``shift`` bytes into a larger one
        (a statement's JSON line inside its note), as the failure to ``action``."""
        offset = None if self.byte_offset is None else self.byte_offset + shift
        return CanonicalJSONError(self.problem, byte_offset=offset, path=self.path, action=action)


def canonical_dumps(value: JSONValue) -> bytes:
    """Encode ``value`` as RFC 8785 canonical JSON (the ``rfc8785`` package where it matters).

    Refuses, with :class:`CanonicalJSONError` naming the JSON path, anything
    :func:`parse_canonical` would refuse to read back: floats, integers beyond
    ±:data:`MAX_SAFE_INTEGER`, strings with lone surrogates, non-string keys, tuples and other
    non-JSON types, nesting deeper than :data:`MAX_DEPTH`, and results over
    :data:`MAX_DOCUMENT_BYTES`.
    """
    found = _first_problem(value, MAX_DEPTH)
    if found is not None:
        problem, path = found
        raise CanonicalJSONError(problem, path=path, action="encode canonical JSON")
    # The C encoder spells every admitted value exactly as RFC 8785 does, except that it sorts
    # object keys by code point where JCS sorts by UTF-16 code unit; the two orders differ only
    # when characters beyond U+FFFF are present, and then the rfc8785 package decides.
    encoded = _encode(value).encode("utf-8")
    if not encoded.isascii() and has_astral(encoded):
        encoded = rfc8785.dumps(value)
    if len(encoded) > MAX_DOCUMENT_BYTES:
        raise CanonicalJSONError(
            f"the encoding is {len(encoded)} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit",
            action="encode canonical JSON",
        )
    return encoded


def parse_canonical(
    data: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES, max_depth: int = MAX_DEPTH
) -> JSONValue:
    """Parse ``data`` if and only if it is canonical JSON of the admitted subset.

    Raises :class:`CanonicalJSONError` (a :class:`~ledger.errors.MalformedError`) whose message
    names the problem and where it is. Work is bounded on any input: the size is checked first,
    and nesting is measured by a non-recursive scan before the C parser sees the text, so even
    100,000 ``[`` cost microseconds. ``max_bytes`` and ``max_depth`` may lower the defaults;
    raising ``max_depth`` far beyond :data:`MAX_DEPTH` would let the C parser's own recursion
    guard fire instead of this check.
    """
    if len(data) > max_bytes:
        raise CanonicalJSONError(
            f"the document is {len(data)} bytes, over the {max_bytes}-byte limit"
        )
    if data.startswith(codecs.BOM_UTF8):
        raise CanonicalJSONError("a byte order mark is not allowed", byte_offset=0)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.end].hex()
        raise CanonicalJSONError(
            f"invalid UTF-8 (bytes {bad}: {exc.reason})", byte_offset=exc.start
        ) from None
    _check_depth(text, max_depth)
    # Without a run of 16 digits anywhere, every integer literal is within ±(2^53 − 1), and
    # the C parser may convert them itself; a "-0" then reads as 0 and the document differs
    # from its re-encoding, which _locate explains as before.
    decoder = _FAST_DECODER if _LONG_DIGIT_RUN in data.translate(_DIGITS) else _PLAIN_DECODER
    try:
        value = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise CanonicalJSONError(
            f"invalid JSON: {exc.msg}", byte_offset=_byte_offset(text, exc.pos)
        ) from None
    try:
        if data.isascii() or not has_astral(data):
            encoded = _encode(value).encode("utf-8")
        else:
            encoded = rfc8785.dumps(value)
    except (TypeError, UnicodeEncodeError, rfc8785.CanonicalizationError):
        # A _Refusal placeholder (not encodable) or a lone surrogate (not UTF-8).
        raise _locate(data, text, max_depth) from None
    if encoded != data:
        raise _locate(data, text, max_depth) from None
    return value  # type: ignore[no-any-return]


def has_astral(data: bytes) -> bool:
    """Whether the UTF-8 ``data`` holds a character beyond U+FFFF (one of its lead bytes):
    deleting them changes the length only if there is one, at C speed."""
    return len(data.translate(None, _ASTRAL_LEAD_BYTES)) != len(data)


def _locate(data: bytes, text: str, max_depth: int) -> CanonicalJSONError:
    """Explain why ``data``, which parsed as JSON, is not canonical: parse it again, this time
    checking every object's keys, and walk the value for the first refused construct; if there
    is none, the difference is in the spelling, and the first byte where ``data`` departs from
    ``rfc8785.dumps`` of the value says how."""
    value = _CHECKING_DECODER.decode(text)
    found = _first_problem(value, max_depth)
    if found is not None:
        problem, path = found
        return CanonicalJSONError(problem, path=path)
    canonical: bytes = rfc8785.dumps(value)
    offset = _token_start(data, _first_difference(data, canonical))
    return CanonicalJSONError(_describe_difference(data, canonical, offset), byte_offset=offset)


class _Refusal:
    """Placeholder a parser hook puts where the document holds something refused. It is not
    JSON-encodable, so the re-encoding step fails and the walk reports ``problem`` with its
    path."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _object_hook(pairs: list[tuple[str, object]]) -> dict[str, object] | _Refusal:
    """Build an object, or refuse duplicate keys and keys out of RFC 8785 order. Used only to
    explain a refusal, so it favours a precise message over speed."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return _Refusal(f"duplicate key {_quote(key)}")
        seen.add(key)
    for (earlier, _), (later, _) in itertools.pairwise(pairs):
        if _utf16_units(earlier) > _utf16_units(later):
            return _Refusal(
                f"key {_quote(later)} must come before {_quote(earlier)} "
                "(keys sort by UTF-16 code units)"
            )
    return dict(pairs)


def _int_hook(literal: str) -> int | _Refusal:
    """Parse an integer literal, refusing ``-0`` and magnitudes beyond ±(2^53 − 1) (checked on
    the literal's length first, so a 60,000-digit number is never converted)."""
    if literal == "-0":
        return _Refusal("negative zero -0 is not canonical (write 0)")
    if len(literal) <= _MAX_INTEGER_LITERAL:
        value = int(literal)
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
    shown = literal if len(literal) <= 24 else f"{literal[:20]}…({len(literal)} digits)"
    return _Refusal(f"integer {shown} is outside ±(2^53-1)")


def _float_hook(literal: str) -> _Refusal:
    """Refuse every number with a fraction or exponent, whatever its value."""
    shown = literal if len(literal) <= 24 else f"{literal[:20]}…"
    return _Refusal(f"number {shown} is not an integer (floats are not allowed)")


def _constant_hook(literal: str) -> _Refusal:
    """Refuse the non-JSON constants Python's parser accepts."""
    return _Refusal(f"{literal} is not allowed")


def _utf16_units(key: str) -> bytes:
    """The sort key RFC 8785 §3.2.3 prescribes: the key's UTF-16 code units, big-endian."""
    return key.encode("utf-16-be", "surrogatepass")


def _check_depth(text: str, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` without recursing.

    Counting brackets anywhere (even inside strings) over-estimates the depth, so when the
    count is within bounds, nothing more is needed; otherwise a regex scan skips string
    literals and tracks the depth, stopping at the first bracket too deep.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in _STRUCTURE.finditer(text):
        bracket = text[match.start()]
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                raise CanonicalJSONError(
                    f"nesting is deeper than {max_depth} arrays and objects",
                    byte_offset=_byte_offset(text, match.start()),
                )
        elif bracket in "]}":
            depth -= 1


def _first_problem(value: object, max_depth: int) -> tuple[str, str] | None:
    """Walk ``value`` in document order without recursion and return the first thing that is
    not in the admitted subset, as ``(problem, JSON path)``, or ``None`` if there is none."""
    stack: list[tuple[object, str, int]] = [(value, "$", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, _Refusal):
            return node.problem, path
        if node is None or isinstance(node, bool):
            continue
        if isinstance(node, int):
            if not -MAX_SAFE_INTEGER <= node <= MAX_SAFE_INTEGER:
                return f"integer {node} is outside ±(2^53-1)", path
        elif isinstance(node, str):
            surrogate = _lone_surrogate(node)
            if surrogate is not None:
                return f"lone surrogate {surrogate} in a string", path
        elif isinstance(node, float):
            return f"number {node!r} is not an integer (floats are not allowed)", path
        elif isinstance(node, list | dict):
            if depth + 1 > max_depth:
                return f"nesting is deeper than {max_depth} arrays and objects", path
            if isinstance(node, list):
                children = [(item, f"{path}[{i}]") for i, item in enumerate(node)]
            else:
                children = []
                for key, item in node.items():
                    if not isinstance(key, str):
                        return f"key {key!r} is a {type(key).__name__}, not a string", path
                    surrogate = _lone_surrogate(key)
                    if surrogate is not None:
                        return f"lone surrogate {surrogate} in key {_quote(key)}", path
                    children.append((item, _child_path(path, key)))
            stack.extend((item, child, depth + 1) for item, child in reversed(children))
        else:
            return f"a {type(node).__name__} is not a JSON value", path
    return None


def _lone_surrogate(text: str) -> str | None:
    """The first surrogate code point in ``text`` as ``U+D800``, or ``None``. (Any surrogate in
    a Python str is lone: the JSON parser joins escaped pairs into one character.)"""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"U+{ord(text[exc.start]):04X}"
    return None


def _child_path(path: str, key: str) -> str:
    """JSON path of member ``key``: ``$.body`` for identifiers, ``$["a b"]`` otherwise."""
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{_quote(key)}]"


def _quote(text: str) -> str:
    """``text`` as an ASCII JSON string, cut at 64 characters: safe in any log or message."""
    if len(text) > 64:
        return json.dumps(text[:64])[:-1] + '…"'
    return json.dumps(text)


def _byte_offset(text: str, char_offset: int) -> int:
    """Byte offset in the UTF-8 document of the character at ``char_offset`` in ``text``."""
    return len(text[:char_offset].encode("utf-8"))


def _describe_difference(data: bytes, canonical: bytes, offset: int) -> str:
    """Say why ``data`` differs from its ``canonical`` re-encoding at ``offset``, the first byte
    where they differ. The parser already refused everything else, so what is left is
    insignificant whitespace (also trailing) or an escape RFC 8785 does not write."""
    found = _token_at(data, offset)
    if found in _WHITESPACE_TOKENS:
        return f"whitespace {found!r} is not allowed outside strings"
    if found.startswith(b"\\"):
        return (
            f"escape {found.decode('ascii', 'replace')} is not canonical; "
            f"RFC 8785 writes {_token_at(canonical, offset).decode('utf-8', 'replace')}"
        )
    return (
        f"the bytes {data[offset : offset + 16]!r} differ from the canonical form "
        f"{canonical[offset : offset + 16]!r}"
    )


def _first_difference(data: bytes, canonical: bytes) -> int:
    """Offset of the first byte where ``data`` and ``canonical`` differ (or the shorter's
    length)."""
    for offset, (found, wanted) in enumerate(zip(data, canonical, strict=False)):
        if found != wanted:
            return offset
    return min(len(data), len(canonical))


def _token_start(data: bytes, offset: int) -> int:
    """Start of the character or escape sequence of ``data`` that contains byte ``offset``
    (a difference in ``\\u001F`` shows at the ``F``; the message should show the escape)."""
    start = 0
    while start < len(data):
        end = start + len(_token_at(data, start))
        if end > offset:
            return start
        start = end
    return start


def _token_at(data: bytes, offset: int) -> bytes:
    """The character or escape sequence starting at ``offset`` of a UTF-8 JSON document."""
    lead = data[offset : offset + 1]
    if lead == b"\\":
        return data[offset : offset + (6 if data[offset + 1 : offset + 2] == b"u" else 2)]
    if lead < b"\x80":
        return lead
    return data[offset : offset + (2 if lead < b"\xe0" else 3 if lead < b"\xf0" else 4)]


_FAST_DECODER = json.JSONDecoder(
    parse_int=_int_hook, parse_float=_float_hook, parse_constant=_constant_hook
)
_PLAIN_DECODER = json.JSONDecoder(parse_float=_float_hook, parse_constant=_constant_hook)
""":data:`_FAST_DECODER` with the C parser's own integers, for documents whose integer
literals have at most 15 digits (so no ``_int_hook`` refusal but ``-0``, which re-encodes
differently and is then located by :func:`_locate`)."""
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
"""Translation table: every ASCII digit to ``0``, every other byte to ``.``."""
_LONG_DIGIT_RUN = b"0" * (_MAX_INTEGER_LITERAL - 1)
"""16 digits in a row: where an integer literal outside ±(2^53 − 1) could be."""
_CHECKING_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_hook,
    parse_int=_int_hook,
    parse_float=_float_hook,
    parse_constant=_constant_hook,
)
