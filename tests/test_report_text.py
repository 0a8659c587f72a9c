"""The subjects' timelines kept as report text (:mod:`ledger.protocol.report_text`) are
exactly the timelines the report would write: after any split of a log into flushes, with
ranges closed often (small :data:`~ledger.protocol.report_text.EVENT_RANGE` and parts), at
every flush point and between them; on SQLite and PostgreSQL through the sequencer with failed
commits and restarts; completed once on a store written by an older release; and damage to
them is named by ``check-derived`` and refused by a report, never served.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text as sql
from test_derived_state import ORIGIN, _replayed, _write_log
from test_precedent_aggregates import GOLDEN, MemorySource, _replay_memory, flushed_at
from test_precedent_stream import _expected, _streamed

import ledger.protocol.stored
from ledger.errors import MalformedError
from ledger.protocol import report_text
from ledger.protocol.aggregates import TEXT_RULING
from ledger.protocol.audit import (
    _application_pieces,
    _subject_pieces,
    application_text,
    subject_head_text,
)
from ledger.protocol.commitments import COMMITMENT_RULES
from ledger.protocol.report_text import (
    KIND_APPLICATION,
    KIND_OPEN,
    KIND_PART,
    KIND_RANGES,
    KIND_SUBJECT,
    TEXT_KINDS,
    read_ranges,
    report_text_difference,
)
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import StoredProtocolState
from ledger.server.derived import check_derived, complete_report_text
from ledger.server.logview import LogView

DAY_MS = 86_400_000


@contextmanager
def small_ranges(event_range: int = 7, part_bytes: int = 300, per_read: int = 2) -> Iterator[None]:
    """Ranges closed every few entries, parts of a few events, read two at a time: every path
    of the layout in a small log."""
    saved = (report_text.EVENT_RANGE, report_text.PART_BYTES, report_text.PARTS_PER_READ)
    report_text.EVENT_RANGE = event_range
    report_text.PART_BYTES = part_bytes
    report_text.PARTS_PER_READ = per_read
    try:
        yield
    finally:
        (
            report_text.EVENT_RANGE,
            report_text.PART_BYTES,
            report_text.PARTS_PER_READ,
        ) = saved


def subjects_text(state: ProtocolState) -> str:
    return "".join(_subject_pieces(state))


def applications_text(state: ProtocolState) -> str:
    return "".join(_application_pieces(state))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenario=st.integers(min_value=0, max_value=len(GOLDEN) - 1),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=8),
    event_range=st.integers(min_value=1, max_value=12),
    part_bytes=st.integers(min_value=1, max_value=600),
)
def test_the_kept_text_is_the_timelines_at_every_flush_point_and_between(
    scenario: int, cuts: list[float], event_range: int, part_bytes: int
) -> None:
    name, statements = GOLDEN[scenario]
    with small_ranges(event_range, part_bytes):
        previous = 0
        for source, point, replayed in flushed_at(statements, cuts):
            assert (
                report_text_difference(source, point, replayed, application_text, subject_head_text)
                is None
            ), name
            reader = StoredProtocolState(source, point, writable=False)
            assert reader.timeline_texts() is not None
            assert reader.application_texts() is not None
            assert subjects_text(reader) == subjects_text(replayed), name
            assert applications_text(reader) == applications_text(replayed), name
            # Between flush points: the previous one and a replay of the rest.
            between = StoredProtocolState(source, previous, writable=True) if previous else None
            if between is not None:
                for s in statements[previous:point]:
                    between.apply(s)
                between.writable = False
                assert subjects_text(between) == subjects_text(replayed), name
                assert applications_text(between) == applications_text(replayed), name
            previous = point
        ranges = read_ranges(source, point)
        assert point == len(statements) and ranges is not None
        assert point - ranges[1] < event_range  # a flush closes what reaches a range


@pytest.mark.parametrize("scenario", range(len(GOLDEN)), ids=[n for n, _ in GOLDEN])
def test_the_whole_report_from_kept_text_is_byte_for_byte_the_computed_one(scenario: int) -> None:
    _, statements = GOLDEN[scenario]
    with small_ranges(3, 120):
        source = MemorySource(statements)
        writer = StoredProtocolState(source, 0)
        for s in statements:
            writer.apply(s)
            source.write(writer.size, writer.derived_rows())
            writer.committed()
        replayed = _replay_memory(statements)
        stored = StoredProtocolState(source, len(statements), writable=False)
        assert stored.timeline_texts() is not None
        assert all(stored.judgement_texts(c) is not None for c in COMMITMENT_RULES)
        last = replayed.log_time_ms_at(len(statements) - 1)
        for audit in (last, last + 30 * DAY_MS):
            assert _streamed(stored, audit) == _expected(replayed, audit)


def test_a_flush_point_without_text_is_computed_and_completed_once(db_url: str) -> None:
    """A store written by an older release keeps no timeline text: reports write the
    timelines from the entries' facts, and the completion keeps them at the latest flush point
    (the earlier ones stay without), once."""
    writer = _write_log(db_url, random.Random(11), fail_rate=0.0, scale=150)
    store = writer.store
    size = LogView(store).latest().size
    with store.engine.begin() as conn:
        kinds = ", ".join(f"'{kind}'" for kind in (*TEXT_KINDS, TEXT_RULING))
        conn.exec_driver_sql(f"DELETE FROM derived_records WHERE kind IN ({kinds})")
    source = store.derived_source()
    old = StoredProtocolState(source, size, writable=False)
    assert old.timeline_texts() is None
    assert old.judgement_texts("decision_within_promised_time") is None
    replayed = _replayed(store, size)
    assert old.application_texts() is None
    assert subjects_text(old) == subjects_text(replayed)
    with small_ranges(64, 2000, 3):
        assert complete_report_text(store) == size
        assert complete_report_text(store) is None
    ranges = read_ranges(source, size)
    assert ranges is not None and len(ranges[0]) == size // 64 and ranges[1] == size // 64 * 64
    stored = StoredProtocolState(source, size, writable=False)
    assert stored.timeline_texts() is not None
    assert subjects_text(stored) == subjects_text(replayed)
    assert applications_text(stored) == applications_text(replayed)
    last = replayed.log_time_ms_at(size - 1)
    assert _streamed(stored, last + 40 * DAY_MS) == _expected(replayed, last + 40 * DAY_MS)
    assert check_derived(store, ORIGIN) == (size, None)
    earlier = source.flush_point(size - 1)
    assert earlier is not None and read_ranges(source, earlier) is None


def test_the_text_through_the_sequencer_equals_the_replay(db_url: str) -> None:
    """The demo log in random batches with failed commits and restarts, ranges closed every
    50 entries: at the latest and earlier flush points, and between them, every subject's
    text is its replayed timeline, and the whole report is the computed one."""
    rng = random.Random(20261204)
    with small_ranges(50, 4000, 3):
        writer = _write_log(db_url, rng, fail_rate=0.15, scale=300)
        assert writer.flaky.failures >= 2 and writer.restarts >= 1
        store = writer.store
        source = store.derived_source()
        size = LogView(store).latest().size
        ranges = read_ranges(source, size)
        assert ranges is not None and len(ranges[0]) >= 4
        for at in sorted({size, *rng.sample(range(1, size), 5)}):
            point = source.flush_point(at)
            assert point is not None
            replayed = _replayed(store, point)
            assert (
                report_text_difference(source, point, replayed, application_text, subject_head_text)
                is None
            ), point
            stored = StoredProtocolState(source, point, writable=False)
            last = replayed.log_time_ms_at(point - 1)
            assert _streamed(stored, last) == _expected(replayed, last), point
        assert check_derived(store, ORIGIN) == (size, None)


def test_damaged_text_is_named_and_never_served(sqlite_url: str) -> None:
    with small_ranges(40, 3000, 2):
        writer = _write_log(sqlite_url, random.Random(5), fail_rate=0.0, scale=120)
    store = writer.store
    size = LogView(store).latest().size
    source = store.derived_source()
    with store.engine.begin() as conn:
        key, from_size, data = conn.exec_driver_sql(
            "SELECT key, from_size, data FROM derived_records WHERE kind = ? "
            "AND to_size IS NULL ORDER BY key LIMIT 1",
            (KIND_PART,),
        ).one()
    items = json.loads(data)
    sid, events = items[0]
    items[0] = [sid, events.replace('"index": ', '"index": 1', 1)]
    damaged = json.dumps(items, ensure_ascii=False).encode()

    def put(value: bytes) -> None:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE derived_records SET data = ? WHERE kind = ? AND key = ? AND from_size = ?",
                (value, KIND_PART, key, from_size),
            )

    put(damaged)
    _, difference = check_derived(store, ORIGIN)
    assert difference is not None and difference.startswith(
        f"timeline text of subject {sid}: stored"
    ), difference
    for malformed in (b"[[1, 2, 3]]", b"not json", json.dumps([[sid + 10**9, "x"]]).encode()):
        put(malformed)
        with pytest.raises(MalformedError):
            subjects_text(StoredProtocolState(source, size, writable=False))
        _, difference = check_derived(store, ORIGIN)
        assert difference is not None and "timeline text" in difference, difference
    put(bytes(data))
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE derived_records SET data = ? WHERE kind = ? AND to_size IS NULL",
            (b'{"ranges": [5], "until": 2}', KIND_RANGES),
        )
    with pytest.raises(MalformedError, match="ranges"):
        StoredProtocolState(source, size, writable=False).timeline_texts()


def test_a_missing_part_is_refused(sqlite_url: str) -> None:
    with small_ranges(40, 200, 2):
        writer = _write_log(sqlite_url, random.Random(6), fail_rate=0.0, scale=120)
    store = writer.store
    size = LogView(store).latest().size
    with store.engine.begin() as conn:
        parts = conn.exec_driver_sql(
            "SELECT count(*) FROM derived_records WHERE kind = ? AND to_size IS NULL",
            (KIND_PART,),
        ).scalar()
        assert parts is not None and parts > 10
        conn.exec_driver_sql(
            "DELETE FROM derived_records WHERE kind = ? AND key = "
            "(SELECT key FROM derived_records WHERE kind = ? ORDER BY key LIMIT 1 OFFSET 3)",
            (KIND_PART, KIND_PART),
        )
    with pytest.raises(MalformedError, match="missing"):
        subjects_text(StoredProtocolState(store.derived_source(), size, writable=False))


def test_open_events_stay_fewer_than_a_range_and_a_batch(sqlite_url: str) -> None:
    """The open rows are closed into a range once they span EVENT_RANGE entries: no flush
    point holds open events of that many entries, nor any open row below its ranges."""
    with small_ranges(100, 3000, 2):
        writer = _write_log(sqlite_url, random.Random(8), fail_rate=0.0, scale=400)
    store = writer.store
    source = store.derived_source()
    size = LogView(store).latest().size
    with store.engine.begin() as conn:
        points = [p for (p,) in conn.exec_driver_sql("SELECT size FROM derived_flushes")]
    for point in points:
        ranges = read_ranges(source, point)
        assert ranges is not None
        open_keys = [int.from_bytes(k, "big") for k, _ in source.scan(KIND_OPEN, point)]
        assert all(k >= ranges[1] for k in open_keys)
        assert point - ranges[1] < 100  # a flush closes what reaches a range
    assert len(read_ranges(source, size)[0]) >= 3  # type: ignore[index]
    stored = StoredProtocolState(source, size, writable=False)
    assert subjects_text(stored) == subjects_text(_replayed(store, size))


@pytest.mark.parametrize(
    ("kind", "field", "named"),
    [
        (KIND_APPLICATION, b'"outcome": "', "application"),
        (KIND_SUBJECT, b'"standing": "', "subject"),
    ],
)
def test_a_damaged_application_or_subject_text_is_named(
    sqlite_url: str, kind: str, field: bytes, named: str
) -> None:
    """A changed row is named by check-derived as stored against replayed; a missing one as
    missing."""
    writer = _write_log(sqlite_url, random.Random(9), fail_rate=0.0, scale=60)
    store = writer.store
    with store.engine.begin() as conn:
        key, data = conn.exec_driver_sql(
            "SELECT key, data FROM derived_records WHERE kind = ? AND to_size IS NULL "
            "ORDER BY key LIMIT 1 OFFSET 2",
            (kind,),
        ).one()
        conn.exec_driver_sql(
            "UPDATE derived_records SET data = ? WHERE kind = ? AND key = ? AND to_size IS NULL",
            (bytes(data).replace(field, field + b"x", 1), kind, key),
        )
    _, difference = check_derived(store, ORIGIN)
    index = int.from_bytes(key, "big")
    assert difference is not None and difference.startswith(f"text of {named} {index}: stored"), (
        difference
    )
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM derived_records WHERE kind = ? AND key = ?", (kind, key))
    _, difference = check_derived(store, ORIGIN)
    assert difference is not None and f"text of {named} {index}: missing" in difference, difference


@pytest.mark.parametrize("row", [b'[[1, "x", "y"]]', b"[[1, 2]]", b'[[[1], 2, "z"]]', b"{}"])
def test_a_malformed_open_row_is_refused(sqlite_url: str, row: bytes) -> None:
    writer = _write_log(sqlite_url, random.Random(12), fail_rate=0.0, scale=40)
    store = writer.store
    size = LogView(store).latest().size
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE derived_records SET data = ? WHERE kind = ? AND to_size IS NULL AND key = "
            "(SELECT max(key) FROM derived_records WHERE kind = ?)",
            (row, KIND_OPEN, KIND_OPEN),
        )
    with pytest.raises(MalformedError):
        subjects_text(StoredProtocolState(store.derived_source(), size, writable=False))
    _, difference = check_derived(store, ORIGIN)
    assert difference is not None and "timeline text" in difference, difference


def test_a_flush_by_a_writer_that_keeps_no_text_is_never_read_as_keeping_it() -> None:
    """A rolling upgrade: a writer of an older release flushes after one that kept text. The
    text rows of before stay current, but that flush point, and every later one until the
    store is completed, keeps none: reports there write the text, and equal the replay."""
    _, statements = max(GOLDEN, key=lambda item: len(item[1]))
    third = len(statements) // 3
    source = MemorySource(statements)
    writer = StoredProtocolState(source, 0)
    for s in statements[:third]:
        writer.apply(s)
    source.write(third, writer.derived_rows())
    old = StoredProtocolState(source, third)  # the older release: no text of any kind
    for s in statements[third : 2 * third]:
        old.apply(s)
    text = (*TEXT_KINDS, TEXT_RULING)
    source.write(2 * third, [r for r in old.derived_rows() if r[0] not in text])
    new = StoredProtocolState(source, 2 * third)  # this release again, not completed
    for s in statements[2 * third :]:
        new.apply(s)
    rows = new.derived_rows()
    assert not [r for r in rows if r[0] in text]
    source.write(len(statements), rows)
    for point in (2 * third, len(statements)):
        stored = StoredProtocolState(source, point, writable=False)
        assert stored.timeline_texts() is None and stored.application_texts() is None
        assert all(stored.judgement_texts(c) is None for c in COMMITMENT_RULES)
        replayed = _replay_memory(statements[:point])
        last = replayed.log_time_ms_at(point - 1)
        assert _streamed(stored, last) == _expected(replayed, last)
    assert StoredProtocolState(source, third, writable=False).timeline_texts() is not None


def test_stale_text_is_ended_and_written_again_by_the_completion(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer of an older release (which keeps no text) flushed after this one: the text
    rows of before stay current, but no flush point since keeps text. The completion ends
    every text row and writes all of it again, with nothing of the old left to read twice."""
    real = ledger.protocol.stored.flush_rows

    def older_release(*args: Any) -> list[tuple[str, bytes, bytes]]:
        return real(*args) if args[2] < 120 else []  # args[2]: the flush's size

    monkeypatch.setattr(ledger.protocol.stored, "flush_rows", older_release)
    with small_ranges(40, 2000, 2):
        writer = _write_log(db_url, random.Random(13), fail_rate=0.0, scale=150)
    monkeypatch.undo()
    store = writer.store
    size = LogView(store).latest().size
    source = store.derived_source()
    assert read_ranges(source, size) is None
    assert StoredProtocolState(source, size, writable=False).timeline_texts() is None
    with store.engine.begin() as conn:
        kept = conn.execute(
            sql("SELECT count(*) FROM derived_records WHERE kind = :k AND to_size IS NULL"),
            {"k": KIND_RANGES},
        ).scalar_one()
    assert kept == 1  # the stale text_ranges of the last flush that kept text
    with small_ranges(64, 2000, 3):
        assert complete_report_text(store) == size
    ranges = read_ranges(source, size)
    assert ranges is not None and ranges[0] == list(range(0, size // 64 * 64, 64))
    stored = StoredProtocolState(source, size, writable=False)
    replayed = _replayed(store, size)
    last = replayed.log_time_ms_at(size - 1)
    assert _streamed(stored, last) == _expected(replayed, last)
    assert check_derived(store, ORIGIN) == (size, None)
