"""The verifier's fast paths against the strict paths they stand in for.

Each fast path must give exactly the strict path's answer: the same value for what it accepts,
and for anything else either the same refusal (same class, same message) or a hand-over to the
strict path. The references below are the strict code as it was before the fast paths.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.errors import LedgerError, MalformedError
from ledger.statements import canonical, statement
from ledger.statements.canonical import CanonicalJSONError, parse_canonical
from ledger.statements.entry import LogEntry, _fast_fields
from ledger.tlog import note
from ledger.tlog.merkle import EMPTY_ROOT
from ledger.tlog.note import Note, NoteSignature, check_key_name, parse_note
from ledger.tlog.tiles import MAX_ENTRY_SIZE

ENVELOPE_KEYS = {"index", "log_time_ms", "prev", "statement"}

any_text = st.text(max_size=200)  # lone surrogates included
utf8_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
tricky_text = st.text(
    alphabet=st.sampled_from(
        ['"', "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "a", "é", "—", "😀", "\u2028", "/"]
    ),
    max_size=40,
)


def outcome(call, *args):  # type: ignore[no-untyped-def]
    """A call's result, or its refusal as (class, message)."""
    try:
        return ("ok", call(*args))
    except LedgerError as exc:
        return (type(exc), str(exc))


# -- the entry envelope --------------------------------------------------------------------


def _strict_fields(data: bytes) -> tuple[int, int, str, str] | None:
    """What the strict parser makes of ``data``, when it is an object of the envelope's keys."""
    try:
        value = parse_canonical(data)
    except CanonicalJSONError:
        return None
    if not isinstance(value, dict) or set(value) != ENVELOPE_KEYS:
        return None
    return (value["index"], value["log_time_ms"], value["prev"], value["statement"])


def _old_decode(data: bytes) -> LogEntry:
    """``LogEntry.decode`` as it was: the strict parser only."""
    if len(data) > MAX_ENTRY_SIZE:
        raise MalformedError(
            f"couldn't decode entry: {len(data)} bytes is over the {MAX_ENTRY_SIZE}-byte limit"
        )
    value = parse_canonical(data)
    if not isinstance(value, dict) or set(value) != ENVELOPE_KEYS:
        keys = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise MalformedError(
            f"couldn't decode entry: expected keys {sorted(ENVELOPE_KEYS)}, got {keys}"
        )
    index, log_time_ms = value["index"], value["log_time_ms"]
    prev_b64, text = value["prev"], value["statement"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise MalformedError(f"couldn't decode entry: index {index!r} is not an integer >= 0")
    if not isinstance(log_time_ms, int) or isinstance(log_time_ms, bool) or log_time_ms < 0:
        raise MalformedError(
            f"couldn't decode entry {index}: log_time_ms {log_time_ms!r} is not an integer >= 0"
        )
    if not isinstance(prev_b64, str) or not isinstance(text, str):
        raise MalformedError(f"couldn't decode entry {index}: prev and statement must be strings")
    try:
        prev = base64.b64decode(prev_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedError(f"couldn't decode entry {index}: prev is not base64: {exc}") from exc
    if len(prev) != 32 or base64.b64encode(prev).decode("ascii") != prev_b64:
        raise MalformedError(
            f"couldn't decode entry {index}: prev must be the canonical base64 of 32 bytes"
        )
    return LogEntry(index=index, log_time_ms=log_time_ms, prev=prev, statement=text)


def _check_envelope(data: bytes) -> None:
    fast = _fast_fields(data)
    if fast is not None:
        assert _strict_fields(data) == fast
        assert [type(f) for f in fast] == [int, int, str, str]
    assert outcome(LogEntry.decode, data) == outcome(_old_decode, data)


def _entry(index: int, log_time: int, prev: bytes, text: str) -> bytes:
    return LogEntry(index, log_time, prev, text).encode()


envelopes = st.builds(
    _entry,
    st.integers(0, 2**53 - 1),
    st.integers(0, 2**53 - 1),
    st.binary(min_size=32, max_size=32),
    st.one_of(utf8_text, tricky_text),
)


@given(envelopes)
def test_fast_envelope_reads_every_canonical_entry_like_the_strict_parser(data: bytes) -> None:
    fast = _fast_fields(data)
    strict = _strict_fields(data)
    assert strict is not None
    _check_envelope(data)
    # Only integers beyond 15 digits and characters beyond U+FFFF go to the strict parser.
    assert fast == strict or fast is None


@given(
    envelopes,
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 2)), max_size=4),
)
def test_fast_envelope_never_accepts_what_the_strict_parser_refuses(
    data: bytes, edits: list[tuple[int, int, int]]
) -> None:
    mutated = bytearray(data)
    for position, byte, kind in edits:
        at = position % (len(mutated) + 1)
        if kind == 0 and at < len(mutated):
            mutated[at] = byte
        elif kind == 1:
            mutated.insert(at, byte)
        elif at < len(mutated):
            del mutated[at]
    _check_envelope(bytes(mutated))


HOSTILE_ENVELOPES = [
    b'{"index":0,"log_time_ms":0,"prev":"' + base64.b64encode(EMPTY_ROOT) + b'","statement":"x"}',
    b'{"index":-0,"log_time_ms":0,"prev":"' + base64.b64encode(EMPTY_ROOT) + b'","statement":"x"}',
    b'{"index":01,"log_time_ms":0,"prev":"' + base64.b64encode(EMPTY_ROOT) + b'","statement":"x"}',
    b'{"index":1,"log_time_ms":9007199254740992,"prev":"'
    + base64.b64encode(EMPTY_ROOT)
    + b'","statement":"x"}',
    b'{"index":1,"log_time_ms":1.0,"prev":"' + base64.b64encode(EMPTY_ROOT) + b'","statement":""}',
    b'{"index":1,"log_time_ms":1,"prev":"' + base64.b64encode(EMPTY_ROOT) + b'","statement":"\\/"}',
    b'{"index":1,"log_time_ms":1,"prev":"'
    + base64.b64encode(EMPTY_ROOT)
    + b'","statement":"\\u0041"}',
    b'{"index":1,"log_time_ms":1,"prev":"'
    + base64.b64encode(EMPTY_ROOT)
    + b'","statement":"\\ud800"}',
    b'{"index":1,"log_time_ms":1,"prev":"'
    + base64.b64encode(EMPTY_ROOT)
    + b'","statement":"\\ud83d\\ude00"}',
    b'{"index":1,"log_time_ms":1,"prev":"'
    + base64.b64encode(EMPTY_ROOT)
    + '","statement":"😀"}'.encode(),
    b'{"index":1,"log_time_ms":1,"prev":"' + base64.b64encode(EMPTY_ROOT) + b'","statement":"\n"}',
    b'{"index":1,"log_time_ms":1,"prev":"' + base64.b64encode(EMPTY_ROOT) + b'","statement":"a"} ',
    b'{"index":1,"log_time_ms":1,"prev":"'
    + base64.b64encode(EMPTY_ROOT)
    + b'","statement":"a","x":1}',
    b'{"index":1,"log_time_ms":1,"prev":"' + base64.b64encode(EMPTY_ROOT) + b'","statement":"a"}"}',
    b'{"index":1,"log_time_ms":1,"prev":"' + base64.b64encode(EMPTY_ROOT) + b'","statement":"a\\"}',
    b'{"index":1,"log_time_ms":1,"prev":"'
    + base64.b64encode(EMPTY_ROOT)
    + b'","statement":"\xff"}',
    b'{"index":1,"log_time_ms":1,"prev":"'
    + base64.b64encode(EMPTY_ROOT)
    + b'","statement":"\xed\xa0\x80"}',
    b'{"index":1,"log_time_ms":1,"prev":"' + b"A" * 43 + b'=","statement":"a"}',
    b'{"index":1,"log_time_ms":1,"prev":"' + b"A" * 42 + b'B=","statement":"a"}',
    b'{"index":1,"log_time_ms":1,"prev":"' + b"A" * 42 + b'==","statement":"a"}',
    b'{"index":1,"log_time_ms":1,"prev":"' + b"A" * 44 + b'","statement":"a"}',
]


@pytest.mark.parametrize("data", HOSTILE_ENVELOPES)
def test_fast_envelope_on_hostile_inputs(data: bytes) -> None:
    _check_envelope(data)


@given(st.integers(0, 2**53 - 1), st.integers(0, 2**53 - 1), st.one_of(utf8_text, tricky_text))
@example(0, 0, "😀")
def test_decode_round_trips_through_either_path(index: int, log_time: int, text: str) -> None:
    entry = LogEntry(index, log_time, EMPTY_ROOT, text)
    assert LogEntry.decode(entry.encode()) == entry


# -- control characters, astral characters ---------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_ASTRAL = re.compile(rb"[\xf0-\xf4]")


@given(st.one_of(any_text, tricky_text))
def test_find_control_is_the_regex_search(text: str) -> None:
    expected = _CONTROL.search(text)
    found = note._find_control(text, text.encode("utf-8", "surrogatepass"))
    assert (found and (found.start(), found.group())) == (
        expected and (expected.start(), expected.group())
    )


@given(st.binary(max_size=100) | st.builds(lambda t: t.encode(), utf8_text))
def test_has_astral_is_the_regex_search(data: bytes) -> None:
    assert canonical.has_astral(data) == (_ASTRAL.search(data) is not None)


# -- notes -----------------------------------------------------------------------------------


def _old_check_key_name(name: str) -> None:
    if not name:
        raise MalformedError("couldn't accept key name '': it is empty")
    if "+" in name:
        raise MalformedError(f"couldn't accept key name {note.excerpt(name)}: it contains '+'")
    if any(c.isspace() or c < "\x20" for c in name):
        raise MalformedError(
            f"couldn't accept key name {note.excerpt(name)}: it contains a space or control "
            "character"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as err:
        raise MalformedError(
            f"couldn't accept key name {note.excerpt(name)}: {err.reason}"
        ) from None


names = st.one_of(
    any_text,
    st.text(alphabet=st.sampled_from(["a", "+", " ", "\x00", "\u00a0", "\u2003", "\ud800"])),
    st.text(min_size=250, max_size=270, alphabet="ab+ "),  # around the cache's length bound
)


@given(names)
def test_cached_key_name_check_is_the_old_check(name: str) -> None:
    expected = outcome(_old_check_key_name, name)
    assert outcome(check_key_name, name) == expected
    assert outcome(check_key_name, name) == expected  # now from the cache, if it was valid


def _old_note_check(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedError(
            f"couldn't accept note text {note.excerpt(text)}: it does not end in a newline"
        )
    control = _CONTROL.search(text)
    if control is not None:
        raise MalformedError(
            f"couldn't accept note text {note.excerpt(text)}: control character "
            f"{control.group()!r} at offset {control.start()}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise MalformedError(f"couldn't accept note text: {err.reason}") from None


SIGNATURE = NoteSignature("k", b"\x00" * 4, b"\x01" * 64)


@given(st.one_of(any_text, tricky_text).map(lambda t: t + "\n") | any_text)
def test_note_refuses_text_as_before(text: str) -> None:
    expected = outcome(_old_note_check, text)
    got = outcome(Note, text, (SIGNATURE,))
    assert (got[0] == "ok") == (expected[0] == "ok")
    if expected[0] != "ok":
        assert got == expected


def _old_parse_note_control(message: str) -> str | None:
    control = _CONTROL.search(message)
    if control is None:
        return None
    return (
        f"couldn't parse note {note.excerpt(message)}: control character "
        f"{control.group()!r} at offset {control.start()}"
    )


@given(st.one_of(any_text, tricky_text), st.booleans())
def test_parse_note_refuses_control_characters_as_before(body: str, as_bytes: bool) -> None:
    message = f"{body}\n\n— k AAAAAAEB\n"
    try:
        data: bytes | str = message.encode("utf-8") if as_bytes else message
    except UnicodeEncodeError:
        data = message
    expected = _old_parse_note_control(message)
    result = outcome(parse_note, data)
    if expected is not None:
        assert result == (MalformedError, expected)
    else:
        assert result[0] == "ok" or "control character" not in result[1]


# -- statements ------------------------------------------------------------------------------


def _old_origin_ok(origin: object) -> bool:
    return (
        isinstance(origin, str)
        and 0 < len(origin) <= statement.MAX_ORIGIN_LENGTH
        and origin.isprintable()
        and not any(c.isspace() for c in origin)
    )


origins = st.one_of(
    any_text,
    st.text(alphabet=st.sampled_from(["a", "/", " ", "\u00a0", "\x7f", "\u2028", "é"])),
    st.text(min_size=250, max_size=260, alphabet="ab"),
    st.integers(),
    st.none(),
)


@given(origins)
def test_origin_check_is_the_old_check(origin: object) -> None:
    for _ in range(2):  # the second time from the cache
        result = outcome(statement._check_origin, origin, "parse statement")
        if _old_origin_ok(origin):
            assert result == ("ok", origin)
        else:
            assert result[0] is MalformedError
            assert result[1].startswith(
                f"couldn't parse statement: origin {statement._show(origin)} is not"  # type: ignore[arg-type]
            )


# -- canonical JSON: integers converted by the C parser -------------------------------------


def _old_parse_canonical(data: bytes) -> object:
    """``parse_canonical`` as it was: every integer through ``_int_hook``, the encoder set up
    by ``JSONEncoder.encode`` on every call, astral characters found by a regex."""
    if len(data) > canonical.MAX_DOCUMENT_BYTES:
        raise CanonicalJSONError(
            f"the document is {len(data)} bytes, over the {canonical.MAX_DOCUMENT_BYTES}-byte limit"
        )
    if data.startswith(b"\xef\xbb\xbf"):
        raise CanonicalJSONError("a byte order mark is not allowed", byte_offset=0)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.end].hex()
        raise CanonicalJSONError(
            f"invalid UTF-8 (bytes {bad}: {exc.reason})", byte_offset=exc.start
        ) from None
    canonical._check_depth(text, canonical.MAX_DEPTH)
    try:
        value = canonical._FAST_DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise CanonicalJSONError(
            f"invalid JSON: {exc.msg}", byte_offset=canonical._byte_offset(text, exc.pos)
        ) from None
    try:
        if data.isascii() or _ASTRAL.search(data) is None:
            encoded = canonical._ENCODER.encode(value).encode("utf-8")
        else:
            encoded = rfc8785.dumps(value)
    except (TypeError, UnicodeEncodeError, rfc8785.CanonicalizationError):
        raise canonical._locate(data, text, canonical.MAX_DEPTH) from None
    if encoded != data:
        raise canonical._locate(data, text, canonical.MAX_DEPTH) from None
    return value


def _error(exc: CanonicalJSONError) -> tuple[str, str | None, int | None]:
    return (str(exc), exc.path, exc.byte_offset)


def _same_as_before(data: bytes) -> None:
    try:
        expected: object = ("ok", _old_parse_canonical(data))
    except CanonicalJSONError as exc:
        expected = _error(exc)
    try:
        got: object = ("ok", parse_canonical(data))
    except CanonicalJSONError as exc:
        got = _error(exc)
    assert got == expected


edge_integers = st.sampled_from(
    [0, 1, -1, 10**14, 10**15 - 1, 10**15, -(10**15), 2**53 - 1, -(2**53 - 1), 2**53, 10**16]
) | st.integers(-(2**60), 2**60)
json_values = st.recursive(
    st.none() | st.booleans() | edge_integers | tricky_text | utf8_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.one_of(tricky_text, utf8_text), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_parse_canonical_answers_as_before(value: object) -> None:
    plain = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    for text in (plain, plain.replace("0", "-0"), plain.replace(":1", ":-0"), plain + " "):
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            continue
        _same_as_before(data)


@given(
    json_values,
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 2)), max_size=3),
)
def test_parse_canonical_answers_as_before_on_mutations(
    value: object, edits: list[tuple[int, int, int]]
) -> None:
    try:
        data = bytearray(
            json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        )
    except UnicodeEncodeError:
        return
    for position, byte, kind in edits:
        at = position % (len(data) + 1)
        if kind == 0 and at < len(data):
            data[at] = byte
        elif kind == 1:
            data.insert(at, byte)
        elif at < len(data):
            del data[at]
    _same_as_before(bytes(data))


@pytest.mark.parametrize(
    "text",
    [
        "-0",
        "[-0]",
        '{"a":-0}',
        "9007199254740991",
        "9007199254740992",
        "-9007199254740992",
        "999999999999999",
        "1000000000000000",
        '["1234567890123456",1]',
        "[1" + "0" * 5000 + "]",
        "[1.0]",
        "[1e5]",
        "[NaN]",
        '{"a":1,"a":1}',
        '{"b":1,"a":1}',
        "[01]",
    ],
)
def test_parse_canonical_integer_edges(text: str) -> None:
    _same_as_before(text.encode())
