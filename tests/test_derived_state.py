"""The derived state in the database equals a replay of the log: after random batches, failed
commits and restarts, on SQLite and PostgreSQL; at every flush point and between them; and a
service that reads it answers as one that replays.

The reference is the in-memory :class:`~ledger.protocol.state.ProtocolState` replayed from
entry 0 — what a verifier computes — compared record by record
(:func:`~ledger.protocol.stored_compare.first_difference`) and through the precedent report.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import LedgerError, StorageError
from ledger.protocol.audit import precedent_report
from ledger.protocol.codec import decode_value, encode_value
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import FactCache, StoredProtocolState
from ledger.protocol.stored_compare import first_difference
from ledger.server.admission import StatementPolicy
from ledger.server.derived import backfill_derived, check_derived, delete_derived, replay_into
from ledger.server.logview import LogView
from ledger.server.sequencer import Receipt, Sequencer
from ledger.statements.demo import DemoAuthor, DemoKeys, build_demo, scale_statements
from ledger.storage.sql import SqlLogStore
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import Signer
from tests.support import create_log, make_signer

ORIGIN = "derived.test/log"


class FlakyStore:
    """The real store; each append transaction fails at its commit with probability
    ``fail_rate`` (after the batch, tiles, checkpoint and derived rows were staged): a lost
    connection. Nothing of a failed batch may survive, in the log or in the derived state."""

    def __init__(self, store: SqlLogStore, rng: random.Random, fail_rate: float) -> None:
        self._store = store
        self._rng = rng
        self.fail_rate = fail_rate
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextmanager
    def append_transaction(self) -> Iterator[Any]:
        fail = self._rng.random() < self.fail_rate
        with self._store.append_transaction() as tx:
            yield tx
            if fail:
                self.failures += 1
                raise StorageError("couldn't commit: the connection was lost (injected)")


class Writer:
    """A writing process: a sequencer whose protocol state is the store's derived state.
    ``restart`` is a new process (nothing kept in memory)."""

    def __init__(self, store: SqlLogStore, signer: Signer, rng: random.Random) -> None:
        self.store = store
        self.signer = signer
        self.rng = rng
        self.flaky = FlakyStore(store, rng, 0.0)
        self.restarts = 0
        self.start()

    def start(self) -> None:
        self.policy = StatementPolicy(
            ORIGIN, self.store.derived_source(), facts=FactCache(chunks=4), cache_records=40
        )
        self.sequencer = Sequencer(self.flaky, self.signer, self.policy, max_batch=4096)
        self.sequencer.warm_up()

    def append(self, datas: Sequence[bytes]) -> list[tuple[int, bytes]]:
        """Sequence ``datas`` in random batches, retrying a batch whose commit failed, and
        restarting now and then."""
        out: list[tuple[int, bytes]] = []
        position = 0
        while position < len(datas):
            size = self.rng.randint(1, 40)
            chunk = datas[position : position + size]
            prepared = [self.policy.prepare(d) for d in chunk]
            results = self.sequencer.sequence_now(prepared)
            if any(isinstance(r, StorageError) for r in results):
                continue  # the whole batch rolled back: send it again
            for result in results:
                if not isinstance(result, Receipt):
                    raise result
                out.append((result.index, leaf_hash(result.entry)))
            position += len(chunk)
            if self.rng.random() < 0.1:
                self.restarts += 1
                self.start()
        return out


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _replayed(store: SqlLogStore, size: int) -> ProtocolState:
    state = ProtocolState()
    replay_into(state, store, ORIGIN, size)
    return state


def _write_log(url: str, rng: random.Random, *, fail_rate: float, scale: int) -> Writer:
    signer = make_signer(ORIGIN)
    store = create_log(url, signer, ORIGIN)
    writer = Writer(store, signer, rng)
    writer.flaky.fail_rate = fail_rate
    author = DemoAuthor(ORIGIN, DemoKeys.deterministic(), writer.append, _now_ms)
    result = build_demo(author)
    scale_statements(author, result.refs["offer"], scale, batch=60)
    return writer


def test_derived_state_equals_a_replay_after_random_batches_failures_and_restarts(
    db_url: str,
) -> None:
    rng = random.Random(20261203)
    writer = _write_log(db_url, rng, fail_rate=0.15, scale=400)
    assert writer.flaky.failures >= 3 and writer.restarts >= 2, "the test must exercise both"
    store = writer.store
    source = store.derived_source()
    size = LogView(store).latest().size
    assert source.flush_point(size) == size, "every committed batch wrote its flush point"
    # At the latest flush point and at earlier ones: every record equals the replay's.
    sizes = sorted({size, *rng.sample(range(1, size), 6)})
    for at in sizes:
        point = source.flush_point(at)
        assert point is not None
        difference = first_difference(source, point, _replayed(store, point))
        assert difference is None, f"at flush point {point}: {difference}"
    assert check_derived(store, ORIGIN) == (size, None)


def test_a_state_between_flush_points_reports_as_the_replay_does(sqlite_url: str) -> None:
    rng = random.Random(7)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=300)
    store = writer.store
    source = store.derived_source()
    size = LogView(store).latest().size
    for at in [1, 2, 5, *rng.sample(range(6, size), 8), size]:
        point = source.flush_point(at)
        assert point is not None and point <= at
        stored = StoredProtocolState(source, point)
        replay_into(stored, store, ORIGIN, at)
        stored.writable = False
        replayed = _replayed(store, at)
        audit = replayed.log_time_ms_at(at - 1) + 86_400_000 * 40
        checkpoint = {"origin": ORIGIN, "size": at, "root_hash_b64": "A" * 43 + "="}
        assert precedent_report(
            stored, checkpoint=checkpoint, audit_time_ms=audit
        ) == precedent_report(replayed, checkpoint=checkpoint, audit_time_ms=audit), at


def test_a_failed_commit_is_undone_without_a_replay(sqlite_url: str) -> None:
    """Issue 13 part 5: the stored state forgets the failed batch's overlay; nothing is
    replayed (the policy's state stays pinned at the last committed flush point)."""
    rng = random.Random(3)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=50)
    state = writer.policy.state
    assert isinstance(state, StoredProtocolState)
    before = state.pinned
    writer.flaky.fail_rate = 1.0
    author = DemoAuthor(ORIGIN, DemoKeys.deterministic(), writer.append, _now_ms)
    data = author.by_subject(
        DemoKeys.deterministic().subject("Late"),
        "application",
        author.application(
            DemoKeys.deterministic().subject("Late"),
            "Late",
            # Any valid reference to the offer in force will do: its index and leaf hash.
            _offer_ref(writer),
            "is self-directed",
        ),
    )
    results = writer.sequencer.sequence_now([writer.policy.prepare(data)])
    assert isinstance(results[0], StorageError)
    state = writer.policy.state
    assert isinstance(state, StoredProtocolState)
    assert state.pinned == before and state.size == before and state.loaded_records == 0
    writer.flaky.fail_rate = 0.0
    (receipt,) = writer.sequencer.sequence_now([writer.policy.prepare(data)])
    assert isinstance(receipt, Receipt) and receipt.index == before
    assert check_derived(writer.store, ORIGIN) == (before + 1, None)


def _offer_ref(writer: Writer) -> Any:
    from ledger.statements.demo import Ref

    state = writer.policy.state
    offer = state.offer_in_force
    assert offer is not None
    data = writer.store.read_entries(offer.index, offer.index + 1)[0]
    return Ref(offer.index, leaf_hash(data))


def test_backfill_of_a_log_without_derived_state_resumes_after_a_crash(sqlite_url: str) -> None:
    rng = random.Random(11)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=500)
    store = writer.store
    size = LogView(store).latest().size
    delete_derived(store)
    assert store.derived_source().flush_point(size) is None

    class Crash(Exception):
        pass

    calls = 0

    def crash_after_two(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Crash

    with pytest.raises(Crash):
        backfill_derived(store, ORIGIN, chunk=97, progress=crash_after_two)
    resumed_from = store.derived_source().flush_point(size)
    assert resumed_from == 2 * 97, "the two chunks written before the crash are kept"
    assert backfill_derived(store, ORIGIN, chunk=97) == size - resumed_from
    assert check_derived(store, ORIGIN) == (size, None)
    assert backfill_derived(store, ORIGIN) == 0, "a current derived state is left alone"


def test_a_changed_derived_record_is_named(sqlite_url: str) -> None:
    rng = random.Random(5)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=100)
    store = writer.store
    with store.engine.begin() as conn:
        row = conn.exec_driver_sql(
            "SELECT key, from_size, data FROM derived_records WHERE kind = 'application' "
            "AND to_size IS NULL ORDER BY key LIMIT 1"
        ).one()
        conn.exec_driver_sql(
            "UPDATE derived_records SET data = ? WHERE kind = 'application' AND key = ? "
            "AND from_size = ?",
            (bytes(row[2]).replace(b'"granted"', b'"denied"'), row[0], row[1]),
        )
    _, difference = check_derived(store, ORIGIN)
    assert difference is not None and difference.startswith(
        f"application at index {int.from_bytes(row[0], 'big')}: stored"
    ), difference


def test_every_record_of_the_demo_round_trips_through_the_codec(sqlite_url: str) -> None:
    rng = random.Random(1)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=30)
    state = _replayed(writer.store, LogView(writer.store).latest().size)
    records: list[Any] = [
        *state.subjects.values(),
        *state.applications.values(),
        *state.consents.values(),
        *state.findings.values(),
        *state.revocations.values(),
        *state.enforcement_actions.values(),
        *state.grievances.values(),
        *state.pause_periods,
        *state.offer_versions,
        *state.keysets,
    ]
    shared = {("p", p.index): p for p in state.pause_periods} | {
        ("a", a.index): a for a in state.applications.values()
    }
    kinds = {type(r).__name__ for r in records}
    assert {"SubjectRecord", "PausePeriod", "EnforcementRecord", "OfferVersion"} <= kinds
    for record in records:
        data = encode_value(record)
        again = decode_value(data, lambda tag, index: shared[(tag, index)])
        assert again == record
        assert encode_value(again) == data


def test_a_read_only_stored_state_refuses_to_change(sqlite_url: str) -> None:
    rng = random.Random(2)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=10)
    source = writer.store.derived_source()
    size = LogView(writer.store).latest().size
    state = StoredProtocolState(source, size, writable=False)
    with pytest.raises(TypeError, match="read-only"):
        state._details[size + 5] = "x"
    assert state.size == size and state.subjects


def test_restarting_a_writer_costs_no_replay(tmp_path: Path) -> None:
    """A writer's start reads the flush point; it replays nothing however long the log."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    rng = random.Random(9)
    writer = _write_log(url, rng, fail_rate=0.0, scale=600)
    size = LogView(writer.store).latest().size

    class CountingPolicy(StatementPolicy):
        replayed = 0

        def catch_up(self, entry: Any, leaf: bytes) -> None:
            CountingPolicy.replayed += 1
            super().catch_up(entry, leaf)

    policy = CountingPolicy(ORIGIN, writer.store.derived_source())
    started = time.perf_counter()
    Sequencer(writer.store, writer.signer, policy).warm_up()
    assert policy.size == size and CountingPolicy.replayed == 0, time.perf_counter() - started


def test_refused_statements_leave_the_derived_state_alone(sqlite_url: str) -> None:
    rng = random.Random(4)
    writer = _write_log(sqlite_url, rng, fail_rate=0.0, scale=20)
    size = LogView(writer.store).latest().size
    again = writer.store.read_entries(3, 4)[0]
    from ledger.statements.entry import LogEntry

    statement = LogEntry.decode(again).statement.encode()
    (result,) = writer.sequencer.sequence_now([writer.policy.prepare(statement)])
    assert isinstance(result, Receipt) and result.duplicate and result.index == 3
    with pytest.raises(LedgerError):
        writer.policy.prepare(b"not a statement")
    assert LogView(writer.store).latest().size == size
    assert check_derived(writer.store, ORIGIN) == (size, None)
