"""The log entry envelope: canonical bytes, strict decoding, the size limit."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import MalformedError
from ledger.statements.canonical import canonical_dumps
from ledger.statements.entry import LogEntry
from ledger.tlog.merkle import EMPTY_ROOT, leaf_hash
from ledger.tlog.tiles import MAX_ENTRY_SIZE

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # no lone surrogates: not UTF-8
    max_size=300,
)


@given(
    index=st.integers(0, 2**53 - 1),
    log_time=st.integers(0, 2**53 - 1),
    prev=st.binary(min_size=32, max_size=32),
    statement=texts,
)
def test_encoding_is_rfc8785_and_round_trips(
    index: int, log_time: int, prev: bytes, statement: str
) -> None:
    entry = LogEntry(index, log_time, prev, statement)
    data = entry.encode()
    expected = canonical_dumps(
        {
            "index": index,
            "log_time_ms": log_time,
            "prev": base64.b64encode(prev).decode(),
            "statement": statement,
        }
    )
    assert data == expected
    assert LogEntry.decode(data) == entry
    assert entry.leaf_hash() == leaf_hash(data)


def test_control_characters_and_astral_text_match_jcs() -> None:
    for text in ("\x00\x01\x1f\x7f", "\u2028\u2029", "😀 \U0010ffff", '"\\/\b\f\n\r\t'):
        entry = LogEntry(0, 0, EMPTY_ROOT, text)
        assert entry.encode() == canonical_dumps(
            {
                "index": 0,
                "log_time_ms": 0,
                "prev": base64.b64encode(EMPTY_ROOT).decode(),
                "statement": text,
            }
        )


def test_a_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(UnicodeEncodeError):
        LogEntry(0, 0, EMPTY_ROOT, "\ud800").encode()


def test_oversized_entries_are_refused() -> None:
    with pytest.raises(MalformedError, match="entry limit"):
        LogEntry(0, 0, EMPTY_ROOT, "x" * MAX_ENTRY_SIZE).encode()


GOOD = LogEntry(3, 5, EMPTY_ROOT, "s").encode()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (GOOD.replace(b'"index":3', b'"index":-3'), "index"),
        (GOOD.replace(b'"index":3', b'"index":3.0'), "float"),
        (GOOD.replace(b'"log_time_ms":5', b'"log_time_ms":"5"'), "log_time_ms"),
        (GOOD.replace(b'{"index":3,', b'{"extra":1,"index":3,'), "expected keys"),
        (GOOD.replace(b'"statement":"s"', b'"statement":1'), "strings"),
        (GOOD.replace(b"uFU=", b"uFV="), "canonical base64"),
        (GOOD.replace(b'"prev":"', b'"prev":"AA'), "base64"),
        (GOOD.replace(b",", b", "), "canonical"),
        (b"[]", "expected keys"),
        (b"\xff", "UTF-8"),
    ],
)
def test_decode_is_strict(data: bytes, why: str) -> None:
    with pytest.raises(MalformedError):
        LogEntry.decode(data)
