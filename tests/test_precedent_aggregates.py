"""The precedent's aggregates (:mod:`ledger.protocol.aggregates`) say what the full computation
says: after any split of a log into flushed batches, at any audit time, each commitment's
status, broken acts and number of judgements, the first applicant's judgements and the counts
equal those of the rules run over every record of a replayed state; and the stored rows equal
those computed from scratch.

Two sources of logs: every golden scenario of ``test_protocol_commitments`` (each rule honoured
and broken, clocks pending and overdue, batch decisions and answers), flushed at split points
hypothesis chooses into a store kept in memory with the SQL store's versioning; and the demo
log written through the sequencer in random batches with failed commits and restarts, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import test_protocol_commitments as golden
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from test_derived_state import ORIGIN, _replayed, _write_log
from test_protocol_log import Log

from ledger.protocol.aggregates import (
    AGGREGATE_KINDS,
    commitment_tallies,
    counts_from_tallies,
    expected_rows,
    first_applicant_rulings,
    has_aggregates,
)
from ledger.protocol.audit import counts_item
from ledger.protocol.codec import decode_value
from ledger.protocol.commitments import check_commitments
from ledger.protocol.state import ProtocolState
from ledger.protocol.statements import LoggedStatement
from ledger.protocol.stored import StoredProtocolState
from ledger.protocol.stored_compare import first_difference
from ledger.server.derived import check_derived, complete_aggregates
from ledger.server.logview import LogView

DAY_MS = 86_400_000


class MemorySource:
    """A :class:`~ledger.protocol.stored.DerivedSource` in memory, versioned as the SQL store
    is (an empty value ends a record), over the statements of a :class:`Log`."""

    def __init__(self, statements: list[LoggedStatement]) -> None:
        self.statements = statements
        self.versions: dict[tuple[str, bytes], list[tuple[int, bytes | None]]] = {}
        self.flushes: list[int] = []

    def write(self, size: int, rows: list[tuple[str, bytes, bytes]]) -> None:
        for kind, key, data in rows:
            self.versions.setdefault((kind, key), []).append((size, data or None))
        self.flushes.append(size)

    def flush_point(self, size: int) -> int | None:
        return max((p for p in self.flushes if p <= size), default=None)

    def read(self, kind: str, key: bytes, at: int) -> bytes | None:
        found = None
        for from_size, data in self.versions.get((kind, key), []):
            if from_size <= at:
                found = data
        return found

    def scan(
        self, kind: str, at: int, after: bytes = b"", before: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        keys = sorted(k for (c, k) in self.versions if c == kind)
        for key in keys:
            if key > after and (before is None or key < before):
                data = self.read(kind, key, at)
                if data is not None:
                    yield key, data

    def entry_facts(self, start: int, end: int) -> list[tuple[str, int, bytes]]:
        return [(s.type, s.log_time_ms, bytes(s.leaf_hash)) for s in self.statements[start:end]]

    def entry_types_and_times(self, start: int, end: int) -> list[tuple[str, int]]:
        return [(s.type, s.log_time_ms) for s in self.statements[start:end]]

    def entry_types_and_times_at(self, indexes: Sequence[int]) -> list[tuple[int, str, int]]:
        return [
            (i, self.statements[i].type, self.statements[i].log_time_ms)
            for i in indexes
            if 0 <= i < len(self.statements)
        ]


def flushed_at(
    statements: list[LoggedStatement], cuts: list[float]
) -> Iterator[tuple[MemorySource, int, ProtocolState]]:
    """The statements written by a writing stored state into a :class:`MemorySource`, a flush
    point at each of ``cuts`` (fractions of the log) and at its end: after each flush, the
    source, the flush point and the state replayed in memory to it."""
    size = len(statements)
    points = sorted({max(1, round(c * size)) for c in cuts} | {size})
    source = MemorySource(statements)
    writer = StoredProtocolState(source, 0, cache_records=3)
    for point in points:
        for s in statements[writer.size : point]:
            writer.apply(s)
        source.write(point, writer.derived_rows())
        writer.committed()
        yield source, point, _replay_memory(statements[:point])


def _replay_memory(statements: list[LoggedStatement]) -> ProtocolState:
    state = ProtocolState()
    for s in statements:
        state.apply(s)
    return state


def assert_aggregates_agree(
    stored: StoredProtocolState, replayed: ProtocolState, audit: int
) -> None:
    """The summary's parts from ``stored``'s aggregates equal the full computation on
    ``replayed`` (the same log size) at ``audit``."""
    assert has_aggregates(stored)
    checks = check_commitments(replayed, audit_time_ms=audit)
    full = [
        (
            c.id,
            c.promise,
            c.status,
            [j.index for j in c.judgements if j.status == "broken"],
            len(c.judgements),
        )
        for c in checks
    ]
    tallied = [
        (t.id, t.promise, t.status, t.broken_at, t.acts_judged)
        for t in commitment_tallies(stored, audit)
    ]
    assert tallied == full
    first = next(iter(replayed.applications.values()), None)
    if first is not None:
        want = [(c.id, j) for c in checks for j in c.judgements if j.subject_id == first.subject_id]
        assert list(first_applicant_rulings(stored, first.subject_id, audit)) == want
    assert counts_from_tallies(stored) == counts_item(replayed)


def _stored_rows(source: Any, at: int) -> dict[str, dict[bytes, Any]]:
    return {
        kind: {key: decode_value(data, lambda *_: None) for key, data in source.scan(kind, at)}
        for kind in AGGREGATE_KINDS
    }


# -- the golden scenarios, split into flushes anywhere --------------------------------------------


def _golden_logs() -> list[tuple[str, list[LoggedStatement]]]:
    """Run every golden scenario of test_protocol_commitments and keep each log it built."""
    logs: list[tuple[str, list[LoggedStatement]]] = []
    made: list[Log] = []

    class Recording(Log):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    original = golden.Log
    golden.Log = Recording  # type: ignore[misc]
    try:
        for name in sorted(dir(golden)):
            if name.startswith("test_"):
                made.clear()
                getattr(golden, name)()
                logs.extend((name, log.statements) for log in made)
    finally:
        golden.Log = original  # type: ignore[misc]
    return logs


GOLDEN = _golden_logs()


def test_the_golden_scenarios_are_captured() -> None:
    assert len(GOLDEN) >= 25
    kinds = {s.type for _, statements in GOLDEN for s in statements}
    assert {"grievance", "revocation", "enforcement_action", "batch_decision"} <= kinds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenario=st.integers(min_value=0, max_value=len(GOLDEN) - 1),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=6),
    audit_days=st.lists(st.integers(min_value=-5, max_value=400), min_size=1, max_size=4),
)
def test_aggregates_equal_the_full_computation_at_every_flush_point(
    scenario: int, cuts: list[float], audit_days: list[int]
) -> None:
    name, statements = GOLDEN[scenario]
    for source, point, replayed in flushed_at(statements, cuts):
        reader = StoredProtocolState(source, point, writable=False)
        last = replayed.log_time_ms_at(point - 1)
        for day in audit_days:
            assert_aggregates_agree(reader, replayed, max(last, last + day * DAY_MS)), name
        rows, tallies = expected_rows(replayed)
        assert _stored_rows(source, point) == rows, name
        assert reader.stored_tallies() == tallies, name
        assert first_difference(source, point, replayed) is None, name


@pytest.mark.parametrize("scenario", range(len(GOLDEN)), ids=[name for name, _ in GOLDEN])
def test_aggregates_equal_the_full_computation_after_every_entry(scenario: int) -> None:
    """Every golden scenario flushed after each of its entries: the aggregates and their rows
    equal the full computation at every size, before, at and long after each deadline."""
    _, statements = GOLDEN[scenario]
    source = MemorySource(statements)
    writer = StoredProtocolState(source, 0, cache_records=0)
    replayed = ProtocolState()
    for s in statements:
        writer.apply(s)
        replayed.apply(s)
        source.write(writer.size, writer.derived_rows())
        writer.committed()
        reader = StoredProtocolState(source, writer.size, writable=False)
        last = replayed.log_time_ms_at(writer.size - 1)
        for days in (0, 1, 14, 31, 91, 10_000):
            assert_aggregates_agree(reader, replayed, last + days * DAY_MS)
        assert _stored_rows(source, writer.size) == expected_rows(replayed)[0]


def test_a_state_between_flush_points_settles_its_overlay() -> None:
    """A reader pinned below the size it serves replays the rest and settles it, so the
    aggregates it reads are those of that size."""
    _, statements = max(GOLDEN, key=lambda item: len(item[1]))
    source = MemorySource(statements)
    writer = StoredProtocolState(source, 0)
    half = len(statements) // 2
    for s in statements[:half]:
        writer.apply(s)
    source.write(half, writer.derived_rows())
    reader = StoredProtocolState(source, half)
    for s in statements[half:]:
        reader.apply(s)
    reader.derived_rows()  # settles the overlay, writes nothing
    reader.writable = False
    replayed = _replay_memory(statements)
    last = replayed.log_time_ms_at(len(statements) - 1)
    for audit in (last, last + 30 * DAY_MS, last + 400 * DAY_MS):
        assert_aggregates_agree(reader, replayed, audit)


def test_aggregates_are_built_from_a_flush_point_that_has_none() -> None:
    """Derived state written by an older release has no aggregates: the summary falls back to
    the full scan there, and the next flush builds them all."""
    _, statements = max(GOLDEN, key=lambda item: len(item[1]))
    source = MemorySource(statements)
    writer = StoredProtocolState(source, 0)
    half = len(statements) // 2
    for s in statements[:half]:
        writer.apply(s)
    rows = [r for r in writer.derived_rows() if r[0] not in AGGREGATE_KINDS and r[1] != b"tallies"]
    source.write(half, rows)
    old = StoredProtocolState(source, half, writable=False)
    assert not has_aggregates(old)
    assert first_difference(source, half, _replay_memory(statements[:half])) is None
    writer = StoredProtocolState(source, half)
    for s in statements[half:]:
        writer.apply(s)
    source.write(len(statements), writer.derived_rows())
    reader = StoredProtocolState(source, len(statements), writable=False)
    replayed = _replay_memory(statements)
    assert_aggregates_agree(reader, replayed, replayed.log_time_ms_at(len(statements) - 1))
    assert first_difference(source, len(statements), replayed) is None


# -- the demo log through the sequencer, on SQLite and PostgreSQL ----------------------------------


def test_stored_aggregates_equal_a_replay_after_random_batches_failures_and_restarts(
    db_url: str,
) -> None:
    rng = random.Random(20261204)
    writer = _write_log(db_url, rng, fail_rate=0.15, scale=300)
    assert writer.flaky.failures >= 2 and writer.restarts >= 1
    store = writer.store
    source = store.derived_source()
    size = LogView(store).latest().size
    for at in sorted({size, *rng.sample(range(1, size), 5)}):
        point = source.flush_point(at)
        assert point is not None
        replayed = _replayed(store, point)
        stored = StoredProtocolState(source, point, writable=False)
        last = replayed.log_time_ms_at(point - 1)
        for audit in (last, last + 10 * DAY_MS, last + 200 * DAY_MS):
            assert_aggregates_agree(stored, replayed, audit)
        rows, _ = expected_rows(replayed)
        assert _stored_rows(source, point) == rows
    assert check_derived(store, ORIGIN) == (size, None)


def test_a_changed_or_missing_aggregate_row_is_named(sqlite_url: str) -> None:
    rng = random.Random(5)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=40)
    store = writer.store
    with store.engine.begin() as conn:
        row = conn.exec_driver_sql(
            "SELECT key, from_size, data FROM derived_records WHERE kind = 'ruling' "
            "AND to_size IS NULL ORDER BY key LIMIT 1"
        ).one()
        conn.exec_driver_sql(
            "UPDATE derived_records SET data = ? WHERE kind = 'ruling' AND key = ? "
            "AND from_size = ?",
            (b'[0, null, "broken", null]', row[0], row[1]),
        )
    _, difference = check_derived(store, ORIGIN)
    assert difference is not None and difference.startswith(
        f"ruling key {bytes(row[0]).hex()}: stored"
    ), difference
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE derived_records SET data = ? WHERE kind = 'ruling' AND key = ? "
            "AND from_size = ?",
            (bytes(row[2]), row[0], row[1]),
        )
        conn.exec_driver_sql(
            "DELETE FROM derived_records WHERE kind = 'by_subject' AND to_size IS NULL "
            "AND key = (SELECT min(key) FROM derived_records WHERE kind = 'by_subject')"
        )
    _, difference = check_derived(store, ORIGIN)
    assert difference is not None and "by_subject key" in difference, difference
    assert "missing from the stored state" in difference


def test_a_flush_point_of_an_older_release_is_completed_once(db_url: str) -> None:
    """Derived state written without aggregates (an older release) is completed at its latest
    flush point, and the result is what a replay computes."""
    rng = random.Random(11)
    writer = _write_log(db_url, rng, fail_rate=0.0, scale=120)
    store = writer.store
    size = LogView(store).latest().size
    with store.engine.begin() as conn:
        kinds = ", ".join(f"'{kind}'" for kind in AGGREGATE_KINDS)
        conn.exec_driver_sql(f"DELETE FROM derived_records WHERE kind IN ({kinds})")
        conn.execute(
            text("DELETE FROM derived_records WHERE kind = 'meta' AND key = :key"),
            {"key": b"tallies"},
        )
    source = store.derived_source()
    assert not has_aggregates(StoredProtocolState(source, size, writable=False))
    assert check_derived(store, ORIGIN) == (size, None)  # nothing to compare them with
    assert complete_aggregates(store) == size
    assert complete_aggregates(store) is None
    stored = StoredProtocolState(source, size, writable=False)
    replayed = _replayed(store, size)
    assert_aggregates_agree(stored, replayed, replayed.log_time_ms_at(size - 1) + 90 * DAY_MS)
    assert check_derived(store, ORIGIN) == (size, None)


def test_the_served_summary_from_aggregates_equals_the_scanned_one(sqlite_url: str) -> None:
    """``GET /v1/precedent/summary``'s answer from the aggregates is, field for field, the one
    computed by every rule over every record (``api.present.precedent_summary``)."""
    from api.heads import TreeHeadInfo
    from api.present import precedent_summary
    from api.routes.precedent import aggregated_summary

    rng = random.Random(3)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=150)
    store = writer.store
    view = LogView(store)
    signed = view.latest()
    head = TreeHeadInfo(
        ORIGIN, signed.size, signed.checkpoint.root_hash, signed, view.witnessed(signed)
    )
    stored = StoredProtocolState(store.derived_source(), signed.size, writable=False)
    replayed = _replayed(store, signed.size)
    last = replayed.log_time_ms_at(signed.size - 1)
    for audit in (last, last + 5 * DAY_MS, last + 365 * DAY_MS):
        ours = aggregated_summary(stored, head, audit)
        assert ours == precedent_summary(replayed, head, audit)
        assert ours.first_applicant is not None and ours.first_applicant.judgements


def test_a_streamed_report_is_byte_for_byte_the_encoded_one(db_url: str) -> None:
    """``GET /v1/precedent`` sends the report in pieces, built item by item from the stored
    state; joined, they are exactly the one ``json.dumps`` of ``{"checkpoint", "report"}`` the
    service used to send (keys sorted, the same separators), the report from the dict builder
    on the replayed state."""
    import json

    from api.heads import TreeHeadInfo
    from api.present import tree_head
    from api.report_sections import checkpoint_summary
    from api.routes import precedent as routes
    from ledger.protocol.audit import precedent_pieces, precedent_report

    rng = random.Random(9)
    writer = _write_log(db_url, rng, fail_rate=0.0, scale=120)
    store = writer.store
    view = LogView(store)
    signed = view.latest()
    size = signed.size
    head = TreeHeadInfo(ORIGIN, size, signed.checkpoint.root_hash, signed, view.witnessed(signed))
    replayed = _replayed(store, size)
    stored = StoredProtocolState(store.derived_source(), size, writable=False)
    checkpoint = checkpoint_summary(head)
    for audit in (replayed.log_time_ms_at(size - 1), replayed.log_time_ms_at(size - 1) + DAY_MS):
        report = precedent_report(replayed, checkpoint=checkpoint, audit_time_ms=audit)
        assert len(report["subjects"]) > 10
        value = {"checkpoint": tree_head(head).model_dump(mode="json"), "report": report}
        want = json.dumps(value, ensure_ascii=False, sort_keys=True)
        pieces = list(
            routes._framed(
                head, precedent_pieces(stored, checkpoint=checkpoint, audit_time_ms=audit)
            )
        )
        assert "".join(pieces) == want
        assert len(pieces) > 10
