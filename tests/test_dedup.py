"""A statement is logged once (FORMAT.md F5.5): the statement-id index, on SQLite and PostgreSQL.

The store finds statements through ``statement_keys`` (an 8-byte key per entry, grouped in
levels; ``ledger.storage.sql``, "The statement-id index") and confirms every candidate against
the entry's full ``statement_id``. These tests check that the lookup is exact — a shared key
never refuses a new statement, a logged statement is always found, whatever level its row is
at — that the rows are exactly the layout the store promises after every batch, and that a log
made before migration 0006 keeps both properties once migrated.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic import command

from ledger.errors import ConflictError
from ledger.server.sequencer import Prepared, Receipt, Sequencer
from ledger.storage.base import StoredEntry
from ledger.storage.engine import normalise_database_url
from ledger.storage.sql import SqlLogStore, _alembic_config
from ledger.storage.statement_keys import (
    STATEMENT_KEY_BASE,
    STATEMENT_KEY_BLOCKS,
    statement_key,
    statement_key_level,
    statement_key_top,
)
from tests.support import OpaquePolicy, create_log, make_signer

SHARED = bytes.fromhex("a11ce5ba5eba11ed")  # the 8-byte key the crafted statement ids share


def shared_id(name: str) -> bytes:
    """A statement id whose first 8 bytes are SHARED (the rest from ``name``)."""
    return SHARED + hashlib.sha256(name.encode()).digest()[8:]


class SharedKeyPolicy(OpaquePolicy):
    """OpaquePolicy whose statement ids all share their first 8 bytes: every lookup of the
    index finds every logged entry as a candidate, and only the full id tells them apart."""

    def prepare(self, submission: bytes) -> Prepared:
        prepared = super().prepare(submission)
        return Prepared(
            statement=prepared.statement,
            statement_id=shared_id(prepared.statement),
            statement_type=prepared.statement_type,
        )


def _sequence(seq: Sequencer, policy: OpaquePolicy, payloads: list[str]) -> list[Receipt]:
    results = seq.sequence_now([policy.prepare(p.encode()) for p in payloads])
    assert all(isinstance(r, Receipt) for r in results), results
    return [r for r in results if isinstance(r, Receipt)]


def _rows(store: SqlLogStore) -> set[tuple[int, int, int]]:
    with store.engine.connect() as conn:
        return {
            (int(r[0]), int(r[1]), int(r[2]))
            for r in conn.execute(sa.text("SELECT level, key, idx FROM statement_keys"))
        }


def _entry_ids(store: SqlLogStore) -> dict[int, bytes]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT idx, statement_id FROM entries"))
        return {int(r[0]): bytes(r[1]) for r in rows}


def _expected_rows(ids: dict[int, bytes], size: int) -> set[tuple[int, int, int]]:
    return {
        (statement_key_level(i, statement_key(s), size), statement_key(s), i)
        for i, s in ids.items()
    }


def _synthetic_batch(start: int, count: int, make_id: Callable[[int], bytes]) -> list[StoredEntry]:
    return [
        StoredEntry(index=i, data=b"{}", statement_id=make_id(i), statement_type="t", log_time_ms=i)
        for i in range(start, start + count)
    ]


def _commit(store: SqlLogStore, entries: list[StoredEntry], new_size: int) -> None:
    """Store a batch straight through the append transaction (the store checks no signature:
    the checkpoints here are placeholders that only the compare-and-swap compares)."""
    with store.append_transaction() as tx:
        tx.commit_batch(tx.checkpoint(), b"checkpoint %d" % new_size, new_size, entries, [])


def _id(i: int) -> bytes:
    """One synthetic id in eight shares SHARED (with 7, 15, 23, …); the others are plain hashes."""
    digest = hashlib.sha256(b"entry %d" % i).digest()
    return SHARED + digest[8:] if i % 8 == 7 else digest


# -- the layout --------------------------------------------------------------------------------


def _layout(size: int, keys: list[int]) -> list[int]:
    return [statement_key_level(i, keys[i], size) for i in range(size)]


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 5000, 6144, 8192, 32768, 40000, 300_001])
def test_rows_stay_within_the_probed_levels_and_the_lower_levels_stay_small(size: int) -> None:
    keys = [statement_key(_id(i)) for i in range(size)]
    levels = _layout(size, keys)
    top = statement_key_top(size)
    assert max(levels) <= top
    assert top == 0 or STATEMENT_KEY_BLOCKS[top] <= size
    # Level 0 holds the last incomplete block of 4,096 and what of the one before is still
    # moving: at most 1.5 blocks; level i at most 8 blocks of its own plus half of the next.
    assert levels.count(0) <= STATEMENT_KEY_BASE * 3 // 2
    for level in range(1, top + 1):
        assert levels.count(level) <= STATEMENT_KEY_BLOCKS[level] * 17 // 2


def test_rows_only_move_up_and_a_moved_row_has_passed_every_level_below() -> None:
    rng = random.Random(6)
    for _ in range(3000):
        index = rng.randrange(3_000_000)
        key = statement_key(rng.randbytes(8))
        size = index + 1 + rng.randrange(3_000_000)
        grown = size + rng.randrange(1, 300_000)
        assert statement_key_level(index, key, size) <= statement_key_level(index, key, grown)
    # A block's rows move over the next half block, key slice by key slice.
    block = STATEMENT_KEY_BLOCKS[2]
    keys = [statement_key(_id(i)) for i in range(block)]
    half = block // 2
    moved = [
        sum(1 for i in range(block) if statement_key_level(i, keys[i], block + d) >= 2)
        for d in (0, half // 4, half // 2, half - 1, half)
    ]
    assert moved[0] == 0 and moved[-1] == block
    assert moved == sorted(moved) and 0 < moved[2] < block


def test_the_key_is_the_ids_first_8_bytes_signed() -> None:
    assert statement_key(b"\x00" * 7 + b"\x01" + b"\xff" * 24) == 1
    assert statement_key(b"\xff" * 32) == -1
    assert statement_key(b"\x80" + b"\x00" * 31) == -(2**63)


# -- exact lookups, on both engines ------------------------------------------------------------


def test_statements_sharing_the_key_are_all_admitted_and_found(db_url: str) -> None:
    signer = make_signer()
    store = create_log(db_url, signer)
    policy = SharedKeyPolicy()
    seq = Sequencer(store, signer, policy)
    first = _sequence(seq, policy, ["a", "b", "c"])
    assert [(r.index, r.duplicate) for r in first] == [(0, False), (1, False), (2, False)]
    second = _sequence(seq, policy, ["d", "b", "e"])
    assert [(r.index, r.duplicate) for r in second] == [(3, False), (1, True), (4, False)]
    for index, name in enumerate("abcde"):
        assert store.find_statement(shared_id(name)) == index
    assert store.find_statement(shared_id("never logged")) is None
    with store.append_transaction() as tx:
        found = tx.find_statements([shared_id("x"), shared_id("c"), shared_id("y")])
    assert found == {shared_id("c"): 2}


def test_a_duplicate_within_a_batch_and_across_batches(db_url: str) -> None:
    signer = make_signer()
    store = create_log(db_url, signer)
    policy = SharedKeyPolicy()
    seq = Sequencer(store, signer, policy)
    once = _sequence(seq, policy, ["p", "q", "p", "p"])
    assert [(r.index, r.duplicate) for r in once] == [(0, False), (1, False), (0, True), (0, True)]
    again = _sequence(seq, policy, ["q", "r", "q", "p"])
    assert [(r.index, r.duplicate) for r in again] == [(1, True), (2, False), (1, True), (0, True)]
    assert len(store.read_entries(0, 100)) == 3


def test_commit_batch_refuses_a_statement_twice_and_stores_nothing(db_url: str) -> None:
    store = create_log(db_url, make_signer())
    _commit(store, _synthetic_batch(0, 10, _id), 10)
    head = store.checkpoint()
    twice = [*_synthetic_batch(10, 2, _id), StoredEntry(12, b"{}", _id(10), "t", 0)]
    logged = [*_synthetic_batch(10, 2, _id), StoredEntry(12, b"{}", _id(7), "t", 0)]
    for batch, why in ((twice, "is in it twice"), (logged, "already logged at index 7")):
        with pytest.raises(ConflictError, match=why), store.append_transaction() as tx:
            tx.commit_batch(tx.checkpoint(), b"checkpoint 13", 13, batch, [])
        assert store.checkpoint() == head
        assert len(store.read_entries(0, 100)) == 10
        assert len(_rows(store)) == 10
    # A new statement sharing the key of entry 7 is stored.
    fresh = [StoredEntry(10, b"{}", SHARED + b"\x00" * 24, "t", 0)]
    _commit(store, fresh, 11)
    assert store.find_statement(SHARED + b"\x00" * 24) == 10


def test_the_index_stays_exact_as_rows_move_up_the_levels(db_url: str) -> None:
    """Batches of uneven sizes cross the 4,096 and 32,768 boundaries and stop half way
    through blocks' moves: after each, the rows are exactly the layout
    ``statement_key_level`` promises, every logged id is found at its index and ids that
    share a logged key but are new are not."""
    store = create_log(db_url, make_signer())
    size = 0
    for count in (1000, 3096, 1, 700, 700, 5000, 23671, 1, 3000, 3000, 4095, 9000):
        _commit(store, _synthetic_batch(size, count, _id), size + count)
        size += count
        ids = _entry_ids(store)
        assert _rows(store) == _expected_rows(ids, size)
        sample = [*random.Random(size).sample(sorted(ids), 300), 0, size - 1]
        with store.append_transaction() as tx:
            found = tx.find_statements(
                [ids[i] for i in sample] + [shared_id(f"new {i}") for i in range(50)]
            )
        assert found == {ids[i]: i for i in sample}
    assert {level for level, _, _ in _rows(store)} == {0, 1, 2}
    # A duplicate of a row at level 2 is refused; single lookups probe every level.
    with (
        pytest.raises(ConflictError, match="already logged at index 7"),
        store.append_transaction() as tx,
    ):
        tx.commit_batch(
            tx.checkpoint(), b"x", size + 1, [StoredEntry(size, b"{}", _id(7), "t", 0)], []
        )
    assert store.find_statement(_id(7)) == 7
    assert store.find_statement(_id(size - 1)) == size - 1
    assert store.find_statement(shared_id("absent")) is None


def test_two_writers_racing_with_the_same_statements_log_each_once(db_url: str) -> None:
    """Two sequencers on two connections pools submit overlapping statements at once: the
    write lock and the compare-and-swap serialize them, and each statement is logged once."""
    signer = make_signer()
    create_log(db_url, signer).close()
    stores = [SqlLogStore(db_url), SqlLogStore(db_url)]
    policies = [SharedKeyPolicy(), SharedKeyPolicy()]
    seqs = [Sequencer(s, signer, p) for s, p in zip(stores, policies, strict=True)]
    names = [f"s{i}" for i in range(60)]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        order = names[:] if n == 0 else names[::-1]
        try:
            for start in range(0, len(order), 6):
                _sequence(seqs[n], policies[n], order[start : start + 6])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = _entry_ids(stores[0])
    assert sorted(ids.values()) == sorted(shared_id(n) for n in names)
    assert sorted(ids) == list(range(len(names)))
    for store in stores:
        store.close()


# -- migration of a log made before 0006 --------------------------------------------------------


def test_a_log_made_at_revision_0004_is_migrated_and_stays_exact(db_url: str) -> None:
    """The old schema (UNIQUE index on statement ids) made by the migrations up to 0004, with
    entries in it; opening it migrates; the rows are the layout the store writes itself, the
    UNIQUE index is gone, and duplicates are found exactly, new ids sharing a key are not."""
    size = 36_000  # levels 0, 1 and 2
    engine = sa.create_engine(normalise_database_url(db_url))
    with engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(
            sa.text(
                "INSERT INTO log_identity (id, origin, log_vkey, created_ms) "
                "VALUES (1, 'o', 'k', 0)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO log_head (id, size, checkpoint) VALUES (1, :n, :c)"),
            {"n": size, "c": b"old head"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO entries (idx, data, statement_id, statement_type, log_time_ms) "
                "VALUES (:i, :d, :s, 't', :i)"
            ),
            [{"i": i, "d": b"{}", "s": _id(i)} for i in range(size)],
        )
    engine.dispose()
    store = SqlLogStore(db_url)  # opening a log of an older revision migrates it
    ids = _entry_ids(store)
    assert len(ids) == size
    assert _rows(store) == _expected_rows(ids, size)
    with store.engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        inspector = sa.inspect(conn)
        unique = [c for c in inspector.get_unique_constraints("entries")] + [
            i for i in inspector.get_indexes("entries") if i["unique"]
        ]
        indexes = {i["name"] for i in inspector.get_indexes("entries")}
    assert version == "0006_statement_keys"
    assert not [u for u in unique if u["column_names"] == ["statement_id"]]
    assert {"ix_entries_type_idx", "ix_entries_time"} <= indexes
    for index in (0, 1, 4095, 4096, 32767, 32768, size - 1):
        assert store.find_statement(_id(index)) == index
    assert store.find_statement(shared_id("absent")) is None
    with (
        pytest.raises(ConflictError, match="already logged at index 31"),
        store.append_transaction() as tx,
    ):
        tx.commit_batch(
            tx.checkpoint(), b"x", size + 1, [StoredEntry(size, b"{}", _id(31), "t", 0)], []
        )
    _commit(store, [StoredEntry(size, b"{}", shared_id("new"), "t", 0)], size + 1)
    assert store.find_statement(shared_id("new")) == size
    assert _rows(store) == _expected_rows(_entry_ids(store), size + 1)
    store.close()
