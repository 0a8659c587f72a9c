"""The storage contract and the sequencer, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from ledger.errors import ConflictError, FatalError, StorageError
from ledger.server.logview import LogView, NotFoundError
from ledger.server.sequencer import Receipt, Sequencer
from ledger.statements.entry import LogEntry
from ledger.storage.base import EntryQuery, StoredEntry
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from ledger.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.tlog.tiles import ENTRIES_LEVEL, TiledTree, TileID, decode_bundle
from ledger.verifier.verify import verify_log
from tests.support import ORIGIN, OpaquePolicy, create_log, make_signer


def _append(seq: Sequencer, policy: OpaquePolicy, payloads: list[str]) -> list[Receipt]:
    results = seq.sequence_now([policy.prepare(p.encode()) for p in payloads])
    out = []
    for r in results:
        assert isinstance(r, Receipt), r
        out.append(r)
    return out


def test_create_is_explicit_and_once(db_url: str) -> None:
    signer = make_signer()
    store = create_log(db_url, signer)
    assert store.identity().origin == ORIGIN
    with pytest.raises(StorageError, match="already holds log"):
        create_log(db_url, signer)
    store.close()


def test_missing_log_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "none.db"
    with pytest.raises(StorageError, match="no such file"):
        SqlLogStore(f"sqlite:///{missing}")
    with pytest.raises(StorageError, match="no such file"):
        SqlLogStore(str(missing))
    assert not missing.exists()  # reading a typo'd path leaves nothing behind
    store = SqlLogStore(f"sqlite:///{missing}", create=True)
    with pytest.raises(StorageError, match="no log here"):
        store.identity()


def test_batches_produce_the_same_tiles_as_a_fresh_tree(db_url: str) -> None:
    signer = make_signer()
    store = create_log(db_url, signer)
    policy = OpaquePolicy()
    seq = Sequencer(store, signer, policy)
    payloads = [f"entry {i}" for i in range(700)]
    receipts: list[Receipt] = []
    for start in range(0, 700, 97):
        receipts += _append(seq, policy, payloads[start : start + 97])
    assert [r.index for r in receipts] == list(range(700))
    view = LogView(store)
    latest = view.latest()
    assert latest.size == 700
    # Every entry's prev is the root of the entries before it.
    expected = TiledTree.empty()
    for i, data in enumerate(store.read_entries(0, 700)):
        entry = LogEntry.decode(data)
        assert entry.index == i and entry.prev == expected.root()
        assert entry.statement == payloads[i]
        expected.append(leaf_hash(data))
    assert expected.root() == latest.checkpoint.root_hash
    for tile, data in expected.changed_tiles():
        assert view.tile(tile) == data, tile.path()
    # Proofs from stored tiles verify.
    for index in (0, 1, 255, 256, 511, 699):
        proof = view.inclusion_proof(index, 700)
        verify_inclusion(index, 700, view.leaf_hash(index), proof, latest.checkpoint.root_hash)
    old = view.checkpoint_at(97 * 3)
    verify_consistency(
        old.size,
        700,
        view.consistency_proof(old.size, 700),
        old.checkpoint.root_hash,
        latest.checkpoint.root_hash,
    )
    # Full verification from the database passes.
    assert verify_log(view, signer.verifier_key).entries == 700
    store.close()


def test_partial_tiles_only_where_a_checkpoint_implies_them(sqlite_url: str) -> None:
    signer = make_signer()
    store = create_log(sqlite_url, signer)
    policy = OpaquePolicy()
    seq = Sequencer(store, signer, policy)
    _append(seq, policy, [f"a{i}" for i in range(10)])
    _append(seq, policy, [f"b{i}" for i in range(20)])
    view = LogView(store)
    assert len(view.tile(TileID(0, 0, 10))) == 320
    assert len(view.tile(TileID(0, 0, 30))) == 960
    assert len(decode_bundle(view.tile(TileID(ENTRIES_LEVEL, 0, 10)))) == 10
    for width in (5, 11, 29, 31):
        with pytest.raises(NotFoundError):
            view.tile(TileID(0, 0, width))
    with pytest.raises(NotFoundError):
        view.tile(TileID(0, 0, 256))
    with pytest.raises(NotFoundError):
        view.tile(TileID(ENTRIES_LEVEL, 1, 3))


def test_duplicates_are_never_logged_twice(db_url: str) -> None:
    signer = make_signer()
    store = create_log(db_url, signer)
    policy = OpaquePolicy()
    seq = Sequencer(store, signer, policy)
    first = _append(seq, policy, ["x", "y", "x"])
    assert [r.index for r in first] == [0, 1, 0]
    # The same statement twice in one batch: the second submitter is told it is a duplicate.
    assert [r.duplicate for r in first] == [False, False, True]
    assert first[2].entry == first[0].entry
    again = _append(seq, policy, ["y", "z"])
    assert (again[0].index, again[0].duplicate) == (1, True)
    assert again[1].index == 2
    assert store.find_statement(policy.prepare(b"z").statement_id) == 2


def test_refused_submission_does_not_stop_the_batch(sqlite_url: str) -> None:
    signer = make_signer()
    store = create_log(sqlite_url, signer)
    policy = OpaquePolicy()
    policy.refuse.add("bad")
    seq = Sequencer(store, signer, policy)
    results = seq.sequence_now([policy.prepare(p) for p in (b"ok1", b"bad", b"ok2")])
    assert isinstance(results[0], Receipt) and results[0].index == 0
    assert not isinstance(results[1], Receipt)
    assert isinstance(results[2], Receipt) and results[2].index == 1


def test_compare_and_swap_refuses_a_stale_checkpoint(db_url: str) -> None:
    signer = make_signer()
    store = create_log(db_url, signer)
    policy = OpaquePolicy()
    seq = Sequencer(store, signer, policy)
    _append(seq, policy, ["a"])
    stale = store.checkpoint_at(0)
    assert stale is not None
    forged = sign_checkpoint(Checkpoint(ORIGIN, 1, b"\x07" * 32), signer)
    with pytest.raises((ConflictError, StorageError)), store.append_transaction() as tx:
        tx.commit_batch(
            stale,
            forged,
            1,
            [StoredEntry(1, b"{}", b"\x01" * 32, "test", 0)],
            [],
        )
    assert open_checkpoint(store.checkpoint(), signer.verifier_key).size == 1
    assert len(store.read_entries(0, 10)) == 1


def test_two_sequencers_on_one_database_never_fork(db_url: str) -> None:
    signer = make_signer()
    create_log(db_url, signer).close()
    stores = [SqlLogStore(db_url), SqlLogStore(db_url)]
    policies = [OpaquePolicy(), OpaquePolicy()]
    seqs = [Sequencer(s, signer, p) for s, p in zip(stores, policies, strict=True)]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for round_ in range(15):
                _append(seqs[n], policies[n], [f"w{n}-{round_}-{i}" for i in range(7)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    view = LogView(stores[0])
    assert view.latest().size == 2 * 15 * 7
    verify_log(view, signer.verifier_key)
    # Every stored checkpoint is a prefix of the final tree.
    final = view.latest()
    for size in range(0, final.size + 1):
        note = stores[0].checkpoint_at(size)
        if note is None:
            continue
        cp = open_checkpoint(note, signer.verifier_key)
        verify_consistency(
            size,
            final.size,
            view.consistency_proof(size, final.size),
            cp.root_hash,
            final.checkpoint.root_hash,
        )


def test_tampered_tile_is_fatal_at_startup(sqlite_url: str) -> None:
    signer = make_signer()
    store = create_log(sqlite_url, signer)
    policy = OpaquePolicy()
    _append(Sequencer(store, signer, policy), policy, [f"e{i}" for i in range(40)])
    with store.engine.begin() as conn:
        data = bytearray(
            conn.exec_driver_sql("SELECT data FROM tiles WHERE level=0 AND idx=0").scalar_one()
        )
        data[5] ^= 0x01
        conn.exec_driver_sql("UPDATE tiles SET data=? WHERE level=0 AND idx=0", (bytes(data),))
    seq = Sequencer(store, signer, OpaquePolicy())
    with pytest.raises(FatalError, match="hash to"):
        seq.warm_up()


def test_tampered_last_entry_is_fatal_at_startup(sqlite_url: str) -> None:
    signer = make_signer()
    store = create_log(sqlite_url, signer)
    policy = OpaquePolicy()
    _append(Sequencer(store, signer, policy), policy, [f"e{i}" for i in range(5)])
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE entries SET data=? WHERE idx=4", (b"{}",))
    with pytest.raises(FatalError, match="entry 4"):
        Sequencer(store, signer, OpaquePolicy()).warm_up()


def test_clock_that_went_backwards_keeps_the_last_log_time(sqlite_url: str) -> None:
    """Log times never decrease, and time never halts the log (tests/test_clock.py)."""
    signer = make_signer()
    store = create_log(sqlite_url, signer)
    now = [10_000]
    policy = OpaquePolicy()
    seq = Sequencer(store, signer, policy, clock=lambda: now[0])
    _append(seq, policy, ["a"])
    now[0] = 9_999
    (result,) = seq.sequence_now([policy.prepare(b"b")])
    assert isinstance(result, Receipt) and LogEntry.decode(result.entry).log_time_ms == 10_000
    assert seq.fatal is None
    assert open_checkpoint(store.checkpoint(), signer.verifier_key).size == 2


def test_query_entries_filters(sqlite_url: str) -> None:
    signer = make_signer()
    store = create_log(sqlite_url, signer)
    policy = OpaquePolicy()
    _append(Sequencer(store, signer, policy), policy, [f"q{i}" for i in range(30)])
    rows = store.query_entries(EntryQuery(after=9, limit=5))
    assert [i for i, _ in rows] == [10, 11, 12, 13, 14]
    assert store.query_entries(EntryQuery(statement_type="nope")) == []


class _CountingReads:
    """Wraps a store's ``read_tile`` to count hash-tile reads."""

    def __init__(self, store: SqlLogStore) -> None:
        self.reads = 0
        self._read = store.read_tile
        store.read_tile = self  # type: ignore[method-assign]

    def __call__(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self._read(level, index)


def test_committed_tiles_serve_the_receipts_proofs_without_reads(sqlite_url: str) -> None:
    signer = make_signer()
    store = create_log(sqlite_url, signer)
    policy = OpaquePolicy()
    view = LogView(store)
    seq = Sequencer(store, signer, policy, on_commit=view.remember_tiles)
    _append(seq, policy, [f"warm {i}" for i in range(300)])
    counting = _CountingReads(store)
    for round_ in range(6):  # partial tiles at levels 0 and 1 grow each round
        receipts = _append(seq, policy, [f"r{round_}-{i}" for i in range(37)])
        signed = view.open(receipts[0].checkpoint)
        for r in receipts:
            proof = view.inclusion_proof(r.index, signed.size)
            verify_inclusion(
                r.index, signed.size, leaf_hash(r.entry), proof, signed.checkpoint.root_hash
            )
    assert counting.reads == 0
    # A fresh view (another process) reads the same tiles from the store and agrees.
    fresh = LogView(SqlLogStore(sqlite_url))
    size = view.latest().size
    for index in (0, 255, 256, 300, size - 1):
        assert fresh.inclusion_proof(index, size) == view.inclusion_proof(index, size)


def test_a_rolled_back_batch_hands_on_no_tiles(sqlite_url: str) -> None:
    signer = make_signer()
    store = create_log(sqlite_url, signer)
    policy = OpaquePolicy()
    handed: list[list[TileID]] = []
    seq = Sequencer(
        store, signer, policy, on_commit=lambda tiles: handed.append([t for t, _ in tiles])
    )
    _append(seq, policy, ["a", "b"])
    assert handed == [[TileID(0, 0, 2)]]

    def refuse(*_: object) -> None:
        raise StorageError("disk full (injected)")

    # The batch's commit fails inside its transaction: nothing may be handed on.
    real_begin = store.append_transaction

    class _Failing:
        def __init__(self) -> None:
            self._context = real_begin()

        def __enter__(self) -> object:
            tx = self._context.__enter__()
            tx.commit_batch = refuse  # type: ignore[method-assign]
            return tx

        def __exit__(self, *exc: object) -> object:
            return self._context.__exit__(*exc)  # type: ignore[arg-type]

    store.append_transaction = _Failing  # type: ignore[assignment,method-assign]
    results = seq.sequence_now([policy.prepare(b"c")])
    assert isinstance(results[0], StorageError)
    assert handed == [[TileID(0, 0, 2)]]
    store.append_transaction = real_begin  # type: ignore[method-assign]
    _append(seq, policy, ["c"])
    assert handed[-1] == [TileID(0, 0, 3)]
