"""Strict canonical JSON: round trips, one spelling per value, and every refusal with its place."""

from __future__ import annotations

import json
import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import MalformedError
from ledger.statements.canonical import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_SAFE_INTEGER,
    CanonicalJSONError,
    JSONValue,
    canonical_dumps,
    parse_canonical,
)

# Characters that stress RFC 8785: controls, quotes, escapes, the BMP top (sorts after astral
# characters in UTF-16), astral characters, and ordinary text. No surrogates: a str with one is
# not a JSON value (a separate test covers them).
_CHARACTERS = st.one_of(
    st.sampled_from(['"', "\\", "/", "\x00", "\x1f", "\x7f", "\u2028", "\ue000", "\uffff"]),
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),
    st.characters(codec="utf-8"),
)
_TEXT = st.text(_CHARACTERS, max_size=12)

json_values: st.SearchStrategy[JSONValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | _TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_TEXT, children, max_size=5),
    max_leaves=30,
)


def _nested(depth: int) -> JSONValue:
    value: JSONValue = []
    for _ in range(depth - 1):
        value = [value]
    return value


@given(json_values)
def test_round_trip_through_rfc8785(value: JSONValue) -> None:
    """What rfc8785 writes parses back to the same value (so the fast C re-encoding inside the
    parser agrees with rfc8785 byte for byte), and parsing is the inverse of encoding."""
    data = canonical_dumps(value)
    assert data == rfc8785.dumps(value)
    assert parse_canonical(data) == value
    assert canonical_dumps(parse_canonical(data)) == data


@given(
    json_values,
    st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, 0, 1]),
)
def test_only_the_canonical_spelling_parses(
    value: JSONValue,
    separators: tuple[str, str],
    ensure_ascii: bool,
    sort_keys: bool,
    indent: int | None,
) -> None:
    """Any other spelling of the same value (whitespace, \\u escapes, key order by code point
    or insertion) is refused; the canonical one is accepted."""
    spelled = json.dumps(
        value, separators=separators, ensure_ascii=ensure_ascii, sort_keys=sort_keys, indent=indent
    ).encode("utf-8")
    if spelled == canonical_dumps(value):
        assert parse_canonical(spelled) == value
    else:
        with pytest.raises(CanonicalJSONError):
            parse_canonical(spelled)


@settings(max_examples=300)
@given(st.binary(max_size=64) | st.text(max_size=32).map(lambda t: t.encode("utf-8", "replace")))
def test_arbitrary_bytes_either_refused_or_canonical(data: bytes) -> None:
    """Hostile bytes never raise anything but CanonicalJSONError, and what parses is canonical."""
    try:
        value = parse_canonical(data)
    except CanonicalJSONError:
        return
    assert canonical_dumps(value) == data


@given(json_values, st.data())
def test_any_single_byte_change_is_refused_or_another_canonical_document(
    value: JSONValue, data: st.DataObject
) -> None:
    document = canonical_dumps(value)
    position = data.draw(st.integers(0, len(document) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != document[position]))
    mutated = document[:position] + bytes([replacement]) + document[position + 1 :]
    try:
        parsed = parse_canonical(mutated)
    except CanonicalJSONError:
        return
    assert canonical_dumps(parsed) == mutated


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+E000 < U+10000 as code points, but in UTF-16 0xE000 > 0xD800 (the high surrogate).
    value: JSONValue = {"\ue000": 1, "\U00010000": 2, "a": 3}
    data = canonical_dumps(value)
    assert data == '{"a":3,"\U00010000":2,"\ue000":1}'.encode()
    assert parse_canonical(data) == value
    code_point_order = '{"a":3,"\ue000":1,"\U00010000":2}'.encode()
    with pytest.raises(CanonicalJSONError, match="must come before"):
        parse_canonical(code_point_order)


def test_escapes_are_exactly_rfc8785s() -> None:
    value: JSONValue = ['\b\f\n\r\t"\\', "\x00\x01\x1f", "\x7f\u2028/é"]
    data = canonical_dumps(value)
    assert data == '["\\b\\f\\n\\r\\t\\"\\\\","\\u0000\\u0001\\u001f","\x7f\u2028/é"]'.encode()
    assert parse_canonical(data) == value


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a":1,"a":1}', 'duplicate key "a" (at $)'),
        (b'{"body":{"x":[0,{"k":1,"k":2}]}}', 'duplicate key "k" (at $.body.x[1])'),
        (b'{"b":1,"a":2}', 'key "a" must come before "b"'),
        (b'{"a b":{"z":1,"y":2}}',
         'must come before "z" (keys sort by UTF-16 code units) (at $["a b"])'),
        (b'{"body":{"criteria":[0,1,2.5]}}',
         "number 2.5 is not an integer (floats are not allowed) (at $.body.criteria[2])"),
        (b"[1.0]", "number 1.0 is not an integer"),
        (b"[1e3]", "number 1e3 is not an integer"),
        (b"[1E+3]", "number 1E+3 is not an integer"),
        (b"[-0.0]", "number -0.0 is not an integer"),
        (b"[NaN]", "NaN is not allowed (at $[0])"),
        (b'{"x":Infinity}', "Infinity is not allowed (at $.x)"),
        (b"-Infinity", "-Infinity is not allowed (at $)"),
        (b"9007199254740992", "integer 9007199254740992 is outside ±(2^53-1) (at $)"),
        (b"[-9007199254740992]", "integer -9007199254740992 is outside ±(2^53-1) (at $[0])"),
        (b"[" + b"1" * 4400 + b"]", "(4400 digits) is outside"),
        (b"-0", "negative zero -0 is not canonical"),
        (b"\xef\xbb\xbf{}", "a byte order mark is not allowed (at byte offset 0)"),
        (b'["ok","\xff"]', "invalid UTF-8 (bytes ff: invalid start byte) (at byte offset 7)"),
        (b'["\xc0\xaf"]', "invalid UTF-8 (bytes c0: invalid start byte) (at byte offset 2)"),
        (b'["\xed\xa0\x80"]',
         "invalid UTF-8 (bytes ed: invalid continuation byte) (at byte offset 2)"),
        (b'["\xe2\x82"]', "invalid UTF-8"),
        (b'{"s":"\\ud800"}', "lone surrogate U+D800 in a string (at $.s)"),
        (b'["\\udfff"]', "lone surrogate U+DFFF in a string (at $[0])"),
        (b'{"\\ud800":1}', 'lone surrogate U+D800 in key "\\ud800" (at $)'),
        (b'["\\ud83d\\ude00"]',
         "escape \\ud83d is not canonical; RFC 8785 writes \U0001f600 (at byte offset 2)"),
        (b'["\\u00e9"]', "escape \\u00e9 is not canonical; RFC 8785 writes é"),
        (b'["\\u001F"]',
         "escape \\u001F is not canonical; RFC 8785 writes \\u001f (at byte offset 2)"),
        (b'["\\u0008"]', "escape \\u0008 is not canonical; RFC 8785 writes \\b"),
        (b'["\\/"]', "escape \\/ is not canonical; RFC 8785 writes /"),
        (b'{"a":1} ', "whitespace b' ' is not allowed outside strings (at byte offset 7)"),
        (b' {"a":1}', "whitespace b' ' is not allowed outside strings (at byte offset 0)"),
        (b'{"a":\n1}', "whitespace b'\\n' is not allowed outside strings (at byte offset 5)"),
        (b'[1,\t2]', "whitespace b'\\t' is not allowed"),
        (b"", "invalid JSON: Expecting value (at byte offset 0)"),
        (b'["\xc3\xa9",]', "invalid JSON: Expecting value (at byte offset 6)"),
        (b"[1] [2]", "invalid JSON: Extra data (at byte offset 4)"),
        (b'["a\x00"]', "invalid JSON: Invalid control character"),
        (b"[01]", "invalid JSON"),
        (b"[+1]", "invalid JSON"),
        (b"[.5]", "invalid JSON"),
        (b"{'a':1}", "invalid JSON"),
        (b"[true,nul]", "invalid JSON"),
    ],
)  # fmt: skip
def test_refusals_name_the_problem_and_the_place(data: bytes, message: str) -> None:
    with pytest.raises(CanonicalJSONError) as caught:
        parse_canonical(data)
    assert message in str(caught.value)
    assert str(caught.value).startswith("couldn't parse canonical JSON: ")
    assert isinstance(caught.value, MalformedError)


def test_depth_bound_is_exact() -> None:
    deep_ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_canonical(deep_ok) is not None
    nested_objects = b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH
    assert parse_canonical(nested_objects) is not None
    too_deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    with pytest.raises(CanonicalJSONError, match=r"deeper than 32 .*byte offset 32\)"):
        parse_canonical(too_deep)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    data = canonical_dumps(["[" * 100 + "{" * 100, {"k": "]]]"}])
    assert parse_canonical(data) == ["[" * 100 + "{" * 100, {"k": "]]]"}]


def test_hostile_depth_is_refused_before_the_parser_recurses() -> None:
    # 100,000 '[' would blow the C parser's recursion guard; the scan must stop it first.
    with pytest.raises(CanonicalJSONError, match="deeper than 32"):
        parse_canonical(b"[" * 100_000, max_bytes=200_000)
    with pytest.raises(CanonicalJSONError, match="deeper than 32"):
        parse_canonical(b'{"a":' * 20_000, max_bytes=200_000)
    # Many shallow containers are fine, and cost a bounded scan.
    wide = canonical_dumps([[] for _ in range(10_000)])
    assert parse_canonical(wide) == [[] for _ in range(10_000)]


def test_limits_can_be_lowered() -> None:
    with pytest.raises(CanonicalJSONError, match="the document is 9 bytes, over the 8-byte limit"):
        parse_canonical(b'"1234567"', max_bytes=8)
    with pytest.raises(CanonicalJSONError, match="deeper than 2"):
        parse_canonical(b"[[[]]]", max_depth=2)
    oversized = b'"' + b"x" * MAX_DOCUMENT_BYTES + b'"'
    with pytest.raises(CanonicalJSONError, match="over the 65535-byte limit"):
        parse_canonical(oversized)


def test_integer_bounds_are_exact() -> None:
    for edge in (MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0):
        assert parse_canonical(str(edge).encode()) == edge
        assert canonical_dumps(edge) == str(edge).encode()
    for outside in (MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1):
        with pytest.raises(CanonicalJSONError, match="outside"):
            parse_canonical(str(outside).encode())
        with pytest.raises(
            CanonicalJSONError, match=r"couldn't encode canonical JSON: .*\(at \$\)"
        ):
            canonical_dumps(outside)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [1, 1.5]}, "number 1.5 is not an integer (floats are not allowed) (at $.a[1])"),
        ({"a": math.nan}, "(floats are not allowed) (at $.a)"),
        ({"a": (1, 2)}, "a tuple is not a JSON value (at $.a)"),
        ({"a": {1: "x"}}, "key 1 is a int, not a string (at $.a)"),
        ({"a": b"x"}, "a bytes is not a JSON value (at $.a)"),
        ({"s": ["\udc80"]}, "lone surrogate U+DC80 in a string (at $.s[0])"),
        ({"\ud800": 1}, 'lone surrogate U+D800 in key "\\ud800" (at $)'),
        ({"n": 2**60}, f"integer {2**60} is outside"),
        (_nested(MAX_DEPTH + 1), "nesting is deeper than 32 arrays and objects (at $"),
        ("x" * MAX_DOCUMENT_BYTES, "the encoding is 65537 bytes, over the 65535-byte limit"),
    ],
)
def test_canonical_dumps_refuses_what_parse_would_refuse(value: object, message: str) -> None:
    with pytest.raises(CanonicalJSONError) as caught:
        canonical_dumps(value)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert str(caught.value).startswith("couldn't encode canonical JSON: ")


def test_error_within_a_larger_document_shifts_the_offset() -> None:
    with pytest.raises(CanonicalJSONError) as caught:
        parse_canonical(b'{"a": 1}')
    shifted = caught.value.within("parse statement JSON", 28)
    assert isinstance(shifted, CanonicalJSONError)
    assert shifted.byte_offset == 33
    assert str(shifted) == (
        "couldn't parse statement JSON: whitespace b' ' is not allowed outside strings "
        "(at byte offset 33)"
    )
    with pytest.raises(CanonicalJSONError) as caught:
        parse_canonical(b'{"a":[1.5]}')
    shifted = caught.value.within("parse statement JSON", 28)
    assert shifted.byte_offset is None
    assert shifted.path == "$.a[0]"


def test_long_hostile_values_are_cut_in_messages() -> None:
    key = "k" * 1000
    with pytest.raises(CanonicalJSONError) as caught:
        parse_canonical(canonical_dumps({key: 1})[:-1] + b',"' + key.encode() + b'":2}')
    assert len(str(caught.value)) < 200
    with pytest.raises(CanonicalJSONError) as caught:
        parse_canonical(b"[0." + b"1" * 5000 + b"]")
    assert len(str(caught.value)) < 200


_json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
)
_json_values = st.recursive(
    _json_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(_json_values)
def test_canonical_dumps_is_exactly_rfc8785(value: object) -> None:
    assert canonical_dumps(value) == rfc8785.dumps(value)  # type: ignore[arg-type]
    assert parse_canonical(canonical_dumps(value)) == value  # type: ignore[arg-type]
