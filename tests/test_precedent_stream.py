"""The streamed precedent report (:func:`ledger.protocol.audit.precedent_pieces`) is, joined,
byte for byte the ``json.dumps`` of the report the dict builder makes
(:func:`~ledger.protocol.audit.precedent_report`) — on every golden scenario, from a stored
state with the precedent's aggregates, one without them and the in-memory replay, at audit times
before, at and long after the deadlines, and on demo logs of several sizes — and it is built
item by item: a piece is yielded before the next item is built. Likewise the plain text
(:func:`~ledger.protocol.audit.precedent_text_pieces`). And the stream that carries a report
from its worker thread to the event loop (:class:`api.precedents.ReportStream`) hands over
every piece in order, raises a refusal before the response starts, and stops computing when
its reader goes away.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from test_derived_state import ORIGIN, _replayed, _write_log
from test_precedent_aggregates import DAY_MS, GOLDEN, MemorySource, _replay_memory

from api.precedents import ReportStream
from ledger.errors import RefusedError
from ledger.protocol import audit
from ledger.protocol.aggregates import AGGREGATE_KINDS, META_TALLIES, has_aggregates
from ledger.protocol.audit import (
    precedent_pieces,
    precedent_report,
    precedent_text_pieces,
    render_precedent_text,
)
from ledger.protocol.queries import TYPES_WITH_DETAIL
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import StoredProtocolState, str_key
from ledger.server.logview import LogView


def _checkpoint(size: int) -> dict[str, Any]:
    return {"origin": ORIGIN, "size": size, "root_hash_b64": "A" * 43 + "="}


def _expected(state: ProtocolState, audit_time_ms: int) -> str:
    report = precedent_report(
        state, checkpoint=_checkpoint(state.size), audit_time_ms=audit_time_ms
    )
    return json.dumps(report, ensure_ascii=False, sort_keys=True)


def _streamed(state: ProtocolState, audit_time_ms: int) -> str:
    pieces = precedent_pieces(
        state, checkpoint=_checkpoint(state.size), audit_time_ms=audit_time_ms
    )
    return "".join(pieces)


def _flushed(statements: list[Any], point: int) -> MemorySource:
    """A source holding the derived state, aggregates included, of the first ``point``
    statements, written as one flush point by a writing stored state."""
    source = MemorySource(statements)
    writer = StoredProtocolState(source, 0, cache_records=2)
    for s in statements[:point]:
        writer.apply(s)
    source.write(writer.size, writer.derived_rows())
    writer.committed()
    return source


def _without_aggregates(rows: list[tuple[str, bytes, bytes]]) -> list[tuple[str, bytes, bytes]]:
    tallies = str_key(META_TALLIES)
    return [
        (kind, key, data)
        for kind, key, data in rows
        if kind not in AGGREGATE_KINDS and not (kind == "meta" and key == tallies)
    ]


BY_KEY_OR_SCAN = pytest.mark.parametrize(
    "sparse", [0, 10**9], ids=["ruled-records-by-key", "tables-scanned"]
)
"""Judge every commitment from the records its ``ruling`` rows list (each read by key), or by a
scan of its tables (``audit.SPARSE_RULINGS``): the same report either way."""


@BY_KEY_OR_SCAN
@pytest.mark.parametrize("scenario", range(len(GOLDEN)), ids=[name for name, _ in GOLDEN])
def test_the_streamed_report_is_the_dict_report_on_every_golden_scenario(
    scenario: int, sparse: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "SPARSE_RULINGS", sparse)
    _, statements = GOLDEN[scenario]
    source = MemorySource(statements)
    bare = MemorySource(statements)
    writer = StoredProtocolState(source, 0, cache_records=2)
    for s in statements:
        writer.apply(s)
    rows = writer.derived_rows()
    source.write(writer.size, rows)
    bare.write(writer.size, _without_aggregates(rows))
    writer.committed()
    size = len(statements)
    replayed = _replay_memory(statements)
    with_aggregates = StoredProtocolState(source, size, writable=False, cache_records=2)
    without = StoredProtocolState(bare, size, writable=False, cache_records=2)
    assert has_aggregates(with_aggregates) and not has_aggregates(without)
    last = replayed.log_time_ms_at(size - 1)
    for days in (0, 1, 14, 31, 91, 10_000):
        at = last + days * DAY_MS
        want = _expected(replayed, at)
        assert _streamed(replayed, at) == want
        assert _streamed(with_aggregates, at) == want
        assert _streamed(without, at) == want


def test_what_one_report_keeps_gives_every_other_audit_times_report() -> None:
    """The sections (``KEPT_SECTIONS``) and the judgement segments (``judgement_segments``) one
    report computes, kept and given back to reports at other audit times of the same state,
    give exactly those reports, on every golden scenario: nothing kept depends on the audit
    time. Some scenario has a clock running, so segments name clocks too."""
    assert sum(_kept_and_reused(statements) for _, statements in GOLDEN) > 0


def _kept_and_reused(statements: list[Any]) -> int:
    """Check one scenario as the test above says; the clocks its segments name."""
    source = _flushed(statements, len(statements))
    size = len(statements)
    state = StoredProtocolState(source, size, writable=False, cache_records=2)
    replayed = _replay_memory(statements)
    kept_sections: dict[str, str] = {}
    kept_segments: dict[str, list[audit.JudgementSegment]] = {}

    def keep_section(name: str, compute: Any) -> Iterator[str]:
        kept_sections[name] = "".join(compute())
        yield kept_sections[name]

    def keep_segments(commitment: str, compute: Any) -> list[audit.JudgementSegment]:
        kept_segments[commitment] = list(compute())
        return kept_segments[commitment]

    last = replayed.log_time_ms_at(size - 1)
    first = precedent_pieces(
        state,
        checkpoint=_checkpoint(size),
        audit_time_ms=last,
        sections=keep_section,
        judged=keep_segments,
    )
    assert "".join(first) == _expected(replayed, last)
    assert set(kept_sections) == set(audit.KEPT_SECTIONS)
    for days in (1, 14, 31, 91, 10_000):
        at = last + days * DAY_MS
        again = precedent_pieces(
            state,
            checkpoint=_checkpoint(size),
            audit_time_ms=at,
            sections=lambda name, _: iter([kept_sections[name]]),
            judged=lambda commitment, _: kept_segments[commitment],
        )
        assert "".join(again) == _expected(replayed, at), days
    return sum(not isinstance(s, str) for seg in kept_segments.values() for s in seg)


@BY_KEY_OR_SCAN
@pytest.mark.parametrize("scale", [0, 40, 160])
def test_the_streamed_report_is_the_dict_report_on_demo_logs(
    sqlite_url: str, scale: int, sparse: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A demo log written in random batches: at the latest flush point (aggregates kept by
    every flush) and at an earlier size (a flush point and a replay on top)."""
    monkeypatch.setattr(audit, "SPARSE_RULINGS", sparse)
    rng = random.Random(scale)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=scale)
    store = writer.store
    source = store.derived_source()
    size = LogView(store).latest().size
    for at in sorted({size, max(1, size * 2 // 3) + 1}):
        point = source.flush_point(at)
        assert point is not None
        stored = StoredProtocolState(source, point, writable=False)
        replayed = _replayed(store, point)
        last = replayed.log_time_ms_at(point - 1)
        for audit_time_ms in (last, last + 30 * DAY_MS, last + 400 * DAY_MS):
            want = _expected(replayed, audit_time_ms)
            assert _streamed(stored, audit_time_ms) == want, (at, audit_time_ms)
            assert _streamed(replayed, audit_time_ms) == want


def test_the_report_is_built_one_item_at_a_time(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each subject (the report's largest items) is built only when the previous one has been
    handed out: no list of items is built ahead of the pieces."""
    writer = _write_log(sqlite_url, random.Random(5), fail_rate=0.0, scale=60)
    store = writer.store
    size = LogView(store).latest().size
    state = StoredProtocolState(store.derived_source(), size, writable=False)
    built: list[int] = []
    original = audit.subject_item_text

    def counted(head_text: str, events: str) -> str:
        built.append(len(built))
        return original(head_text, events)

    monkeypatch.setattr(audit, "subject_item_text", counted)
    audit_time_ms = state.log_time_ms_at(size - 1)
    pieces = precedent_pieces(state, checkpoint=_checkpoint(size), audit_time_ms=audit_time_ms)
    handed = 0
    for piece in pieces:
        if piece.startswith(('{"active_pauses"', ', {"active_pauses"')):
            handed += 1
        assert len(built) <= handed + 1, "a subject was built before the last was handed out"
    assert handed == len(built) == len(state.subjects) > 5


def test_bad_arguments_are_refused_before_any_piece(sqlite_url: str) -> None:
    writer = _write_log(sqlite_url, random.Random(6), fail_rate=0.0, scale=0)
    store = writer.store
    size = LogView(store).latest().size
    state = StoredProtocolState(store.derived_source(), size, writable=False)
    last = state.log_time_ms_at(size - 1)
    with pytest.raises(RefusedError, match="precedes the last entry's log time"):
        precedent_pieces(state, checkpoint=_checkpoint(size), audit_time_ms=last - 1)
    with pytest.raises(RefusedError, match="differs from"):
        precedent_pieces(state, checkpoint=_checkpoint(size + 1), audit_time_ms=last)


@pytest.mark.parametrize("scenario", range(0, len(GOLDEN), 3), ids=[n for n, _ in GOLDEN[::3]])
def test_the_streamed_text_is_the_rendered_report(scenario: int) -> None:
    """``/v1/precedent.txt``'s lines, streamed, are exactly ``render_precedent_text`` of the
    dict report: from a stored state with aggregates and from the in-memory replay."""
    _, statements = GOLDEN[scenario]
    source = _flushed(statements, len(statements))
    size = len(statements)
    replayed = _replay_memory(statements)
    stored = StoredProtocolState(source, size, writable=False)
    last = replayed.log_time_ms_at(size - 1)
    for days in (0, 31, 10_000):
        at = last + days * DAY_MS
        report = precedent_report(replayed, checkpoint=_checkpoint(size), audit_time_ms=at)
        want = render_precedent_text(report)
        for state in (replayed, stored):
            pieces = precedent_text_pieces(state, checkpoint=_checkpoint(size), audit_time_ms=at)
            assert "".join(pieces) == want


def test_the_streamed_text_is_the_rendered_report_on_a_demo_log(sqlite_url: str) -> None:
    writer = _write_log(sqlite_url, random.Random(8), fail_rate=0.0, scale=80)
    store = writer.store
    size = LogView(store).latest().size
    stored = StoredProtocolState(store.derived_source(), size, writable=False)
    replayed = _replayed(store, size)
    at = replayed.log_time_ms_at(size - 1) + 40 * DAY_MS
    report = precedent_report(replayed, checkpoint=_checkpoint(size), audit_time_ms=at)
    pieces = precedent_text_pieces(stored, checkpoint=_checkpoint(size), audit_time_ms=at)
    assert "".join(pieces) == render_precedent_text(report)


# -- the stream between a worker thread and the event loop ------------------------------------


def _endless(made: list[int], stopped: threading.Event) -> Iterator[str]:
    try:
        for n in itertools.count():
            made.append(n)
            yield f"{n:08d}"
    finally:
        stopped.set()


def test_a_stream_hands_over_every_piece_in_order() -> None:
    pieces = [f"piece {n};" for n in range(5000)]

    @contextmanager
    def produce() -> Iterator[Iterator[str]]:
        yield iter(pieces)

    async def read() -> bytes:
        stream = ReportStream(produce, queue_chunks=2, chunk_bytes=100)
        await stream.start()
        return b"".join([chunk async for chunk in stream.chunks()])

    assert asyncio.run(read()) == "".join(pieces).encode()


def test_a_stream_left_by_its_reader_stops_computing() -> None:
    """A client that goes away (the response's iteration is left, as Starlette does on a
    disconnect) stops the producer at its next chunk: what it computed is bounded by the
    queue, and its report generator is closed."""
    made: list[int] = []
    stopped = threading.Event()
    left = threading.Event()

    @contextmanager
    def produce() -> Iterator[Iterator[str]]:
        try:
            yield _endless(made, stopped)
        finally:
            left.set()

    async def read_two() -> ReportStream:
        stream = ReportStream(produce, queue_chunks=2, chunk_bytes=80)
        await stream.start()
        chunks = stream.chunks()
        async for _ in chunks:
            if len(made) > 30:
                break
        await chunks.aclose()
        return stream

    stream = asyncio.run(read_two())
    assert stream.done is not None
    stream.done.result(timeout=60)
    assert stream.stopped and left.is_set() and stopped.is_set()
    # At most: the chunks read, the queue's, the one being handed over and one more.
    assert len(made) < 30 + (2 + 2) * 10 + 10


def test_a_stream_refused_before_its_first_piece_raises_at_start() -> None:
    @contextmanager
    def produce() -> Iterator[Iterator[str]]:
        raise RefusedError("couldn't compute the precedent report: no")
        yield iter(())

    async def start() -> None:
        await ReportStream(produce).start()

    with pytest.raises(RefusedError, match="no"):
        asyncio.run(start())


def test_one_scan_of_the_timelines_gives_each_subject_its_own(sqlite_url: str) -> None:
    """``timelines_of`` (the report's one scan of the timeline table) hands each subject
    exactly its timeline, also on a state whose overlay holds replayed entries past its flush
    point (new subjects and new timeline rows), and refuses subjects out of order."""
    from ledger.server.derived import replay_into

    writer = _write_log(sqlite_url, random.Random(8), fail_rate=0.0, scale=80)
    store = writer.store
    source = store.derived_source()
    size = LogView(store).latest().size
    point = source.flush_point(size - 30)
    assert point is not None and point < size
    pinned = StoredProtocolState(source, point, writable=False)
    overlaid = StoredProtocolState(source, point)
    replay_into(overlaid, store, ORIGIN, size)
    assert overlaid.size == size and len(overlaid.subjects) > len(pinned.subjects)
    for state in (pinned, overlaid):
        expected = [(s.subject_id, list(s.timeline)) for s in state.subjects.values()]
        assert sum(len(t) for _, t in expected) > len(expected) > 5
        got = [(s.subject_id, t) for s, t in audit.subjects_with_timelines(state)]
        assert got == expected
        some = list(state.subjects.values())[1::3]  # not every subject: the others are skipped
        assert [t for _, t in state.timelines_of(some)] == [list(s.timeline) for s in some]
        with pytest.raises(ValueError, match="in order"):
            list(state.timelines_of(list(reversed(some))))


def test_the_types_with_a_detail_are_exactly_those_the_rules_give_one() -> None:
    """A timeline read from storage looks up the detail of ``TYPES_WITH_DETAIL`` entries
    only: every detail the rules record, over every golden scenario, is of one of those types,
    and each of those types has one somewhere."""
    seen: set[str] = set()
    for _, statements in GOLDEN:
        state = _replay_memory(statements)
        for index in range(state.size):
            if state.detail_at(index) is not None:
                seen.add(state.type_at(index))
    assert seen == TYPES_WITH_DETAIL


@pytest.mark.parametrize("scenario", range(len(GOLDEN)), ids=[name for name, _ in GOLDEN])
def test_timeline_facts_read_from_storage_are_the_replayed_ones(scenario: int) -> None:
    """Without the read-ahead (a page of subjects), a stored state reads types and log times
    by index and details by type: the same facts as the in-memory replay, for every subject,
    in the timeline's order, entries replayed on top of the flush point included."""
    _, statements = GOLDEN[scenario]
    point = max(1, len(statements) * 2 // 3)
    source = _flushed(statements, point)
    stored = StoredProtocolState(source, point, cache_records=2)
    for s in statements[point:]:
        stored.apply(s)  # the overlay: entries past the flush point, in memory
    replayed = _replay_memory(statements)
    for subject in replayed.subjects.values():
        indexes = list(subject.timeline)
        assert stored.timeline_facts(reversed(indexes)) == list(
            reversed(replayed.timeline_facts(indexes))
        )
        assert stored.timeline_facts(stored.subjects[subject.subject_id].timeline) == (
            replayed.timeline_facts(indexes)
        )


def test_timeline_facts_by_index_on_both_engines(db_url: str) -> None:
    """The by-index read of types and log times (``entry_types_and_times_at``: batches of a
    fixed statement, padded) on SQLite and PostgreSQL: every subject's timeline facts from the
    stored state equal the replay's, and an index the log does not hold is not found."""
    writer = _write_log(db_url, random.Random(9), fail_rate=0.0, scale=250)
    store = writer.store
    size = LogView(store).latest().size
    source = store.derived_source()
    point = source.flush_point(size)
    assert point is not None
    stored = StoredProtocolState(source, point, writable=False)
    replayed = _replayed(store, point)
    everything = list(range(point))
    assert sorted(source.entry_types_and_times_at(everything)) == [
        (i, replayed.type_at(i), replayed.log_time_ms_at(i)) for i in everything
    ]
    for subject in replayed.subjects.values():
        assert stored.timeline_facts(list(subject.timeline)) == replayed.timeline_facts(
            subject.timeline
        )
    assert source.entry_types_and_times_at([point + 5, -3]) == []
