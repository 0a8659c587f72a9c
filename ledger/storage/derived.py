"""The derived state's tables in SQL: record versions by flush point (migration ``0005``).

:class:`SqlDerivedSource` is the :class:`~ledger.protocol.stored.DerivedSource` of a SQL store:
what a :class:`~ledger.protocol.stored.StoredProtocolState` reads. :func:`write_derived` writes
the rows of one flush point inside a transaction that already holds the store's write lock —
the sequencer's append transaction (so the derived state commits with the entries it is derived
from, or not at all) or a backfill's.

Layout (``docs/ARCHITECTURE.md``, "Derived state"): ``derived_records(kind, key, from_size,
to_size, data)``, one row per version of a record, current while ``to_size`` is NULL; and
``derived_flushes(size)``, the flush points. The version of a record at flush point ``P`` is the
row with ``from_size <= P`` and (``to_size`` NULL or ``to_size > P``).

Crash safety: a flush writes its rows, marks the versions they replace and records the flush
point in one transaction; a crash before the commit leaves the previous flush point intact and
nothing of the new one, a crash after it leaves all of it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    func,
    select,
    update,
)

from ledger.errors import FatalError, StorageError
from ledger.tlog.merkle import leaf_hash

_METADATA = MetaData()
DERIVED_RECORDS = Table(
    "derived_records",
    _METADATA,
    Column("kind", String(16), primary_key=True),
    Column("key", LargeBinary, primary_key=True),
    Column("from_size", BigInteger, primary_key=True, autoincrement=False),
    Column("to_size", BigInteger, nullable=True),
    Column("data", LargeBinary, nullable=False),
)
DERIVED_FLUSHES = Table(
    "derived_flushes",
    _METADATA,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
)
_ENTRIES = Table(
    "entries",
    _METADATA,
    Column("idx", BigInteger, primary_key=True),
    Column("data", LargeBinary),
    Column("statement_id", LargeBinary),
    Column("statement_type", String(64)),
    Column("log_time_ms", BigInteger),
)

SCAN_CHUNK = 2000
"""The most rows fetched per round trip while scanning a kind."""
_KEY_END = b"\xff" * 27
"""Above every record key (keys are at most 26 bytes: a precedent clock's or by-subject row's,
:mod:`ledger.protocol.aggregates`), for open ranges."""


def write_derived(
    conn: Connection,
    size: int,
    rows: Sequence[tuple[str, bytes, bytes]],
    *,
    new_point: bool = True,
) -> None:
    """Write flush point ``size``: the record versions ``rows`` (``(kind, key, data)``), each
    replacing the current version of its record, and the flush point itself. An empty ``data``
    deletes the record (the precedent's aggregate indexes): its current version ends at
    ``size`` and no new one begins.

    The caller holds the store's write lock and commits (or rolls back) the transaction of
    ``conn``; ``size`` must be larger than every flush point already written (the sequencer's
    sizes only grow; a backfill checks :meth:`SqlDerivedSource.flush_point` under the lock).

    With ``new_point`` false, ``size`` is the latest flush point already written and ``rows``
    are records it lacks (none of them has a version yet): they complete it, as the precedent's
    aggregates complete a flush point written by an older release
    (:func:`ledger.server.derived.complete_aggregates`)."""
    if rows:
        conn.execute(
            update(DERIVED_RECORDS)
            .where(
                and_(
                    DERIVED_RECORDS.c.kind == bindparam("b_kind"),
                    DERIVED_RECORDS.c.key == bindparam("b_key"),
                    DERIVED_RECORDS.c.to_size.is_(None),
                )
            )
            .values(to_size=size),
            [{"b_kind": kind, "b_key": key} for kind, key, _ in rows],
        )
        written = [
            {"kind": kind, "key": key, "from_size": size, "to_size": None, "data": data}
            for kind, key, data in rows
            if data
        ]
        if written:
            conn.execute(DERIVED_RECORDS.insert(), written)
    if new_point:
        conn.execute(DERIVED_FLUSHES.insert().values(size=size))


def delete_derived(conn: Connection) -> int:
    """Delete every flush point and record version (the caller holds the write lock)."""
    conn.execute(DERIVED_FLUSHES.delete())
    return int(conn.execute(DERIVED_RECORDS.delete()).rowcount or 0)


def latest_flush_point(conn: Connection) -> int | None:
    """The largest flush point written, or ``None``."""
    value = conn.execute(select(func.max(DERIVED_FLUSHES.c.size))).scalar()
    return None if value is None else int(value)


TYPES_AT_BATCH = 100
"""Entries whose type and log time one read fetches by index
(:meth:`SqlDerivedSource.entry_types_and_times_at`)."""

_TYPES_AT = "SELECT idx, statement_type, log_time_ms FROM entries WHERE idx IN ({})".format(  # noqa: S608
    ", ".join("?" * TYPES_AT_BATCH)  # placeholders only: the indexes are bound parameters
)

_SCAN_SUPERSEDED = (
    "SELECT key, data FROM derived_records WHERE kind = ? AND to_size > ? "
    "AND from_size <= ? AND key > ? AND key < ? ORDER BY key LIMIT ?"
)
_SCAN_SUPERSEDED_SQLITE = (
    "SELECT key, data FROM derived_records INDEXED BY ix_derived_superseded WHERE kind = ? "
    "AND to_size > ? AND from_size <= ? AND key > ? AND key < ? ORDER BY key LIMIT ?"
)


class SqlDerivedSource:
    """The derived state and entry facts of a SQL store (a
    :class:`~ledger.protocol.stored.DerivedSource`).

    Reads are many and small (a record per lookup), so they go straight to the driver with
    fixed SQL on one connection per thread, kept out of the engine's pool and in autocommit
    (each read is its own snapshot; no transaction is left open). What a flush point holds
    never changes, so reads at one flush point agree with each other. A connection that fails
    is dropped and the next read opens another; the failure is a
    :class:`~ledger.errors.StorageError`.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._open: list[Any] = []
        self._open_lock = threading.Lock()
        mark = "%s" if engine.dialect.name == "postgresql" else "?"
        self._binary = engine.dialect.name == "postgresql"
        # Versions superseded after a flush point are found by (kind, to_size): none at the
        # latest flush point, few near it. SQLite, without statistics, would walk every version
        # of the kind by key instead (the primary key), a scan of the whole kind.
        superseded = (
            _SCAN_SUPERSEDED if engine.dialect.name == "postgresql" else _SCAN_SUPERSEDED_SQLITE
        )
        self._sql = {
            name: text.replace("?", mark)
            for name, text in {
                "flush_point": "SELECT max(size) FROM derived_flushes WHERE size <= ?",
                "read": (
                    "SELECT data, to_size FROM derived_records WHERE kind = ? AND key = ? "
                    "AND from_size <= ? ORDER BY from_size DESC LIMIT 1"
                ),
                "scan_current": (
                    "SELECT key, data FROM derived_records WHERE kind = ? AND to_size IS NULL "
                    "AND from_size <= ? AND key > ? AND key < ? ORDER BY key LIMIT ?"
                ),
                "scan_superseded": superseded,
                "facts": (
                    "SELECT statement_type, log_time_ms, data FROM entries "
                    "WHERE idx >= ? AND idx < ? ORDER BY idx"
                ),
                "types_and_times": (
                    "SELECT statement_type, log_time_ms FROM entries "
                    "WHERE idx >= ? AND idx < ? ORDER BY idx"
                ),
                "types_and_times_at": _TYPES_AT,
                "tile": "SELECT data FROM tiles WHERE level = 0 AND idx = ?",
            }.items()
        }

    def _query(self, name: str, params: tuple[Any, ...], verb: str) -> list[Any]:
        conn = getattr(self._local, "conn", None)
        try:
            if conn is None:
                fairy = self._engine.raw_connection()
                fairy.detach()  # this thread's own, outside the pool's count
                conn = fairy.dbapi_connection
                if self._engine.dialect.name == "postgresql":
                    conn.autocommit = True  # type: ignore[union-attr]
                self._local.conn = conn
                with self._open_lock:
                    self._open.append(conn)
            # Results in PostgreSQL's binary format: a record's bytes as they are, not as
            # hexadecimal text twice their size that the driver then decodes.
            cursor = conn.cursor(binary=True) if self._binary else conn.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(self._sql[name], params)
                return list(cursor.fetchall())
            finally:
                cursor.close()
        except Exception as exc:
            self._local.conn = None
            if conn is not None:
                with self._open_lock:
                    if conn in self._open:
                        self._open.remove(conn)
                with contextlib.suppress(Exception):  # already failing: the first error counts
                    conn.close()
            raise StorageError(f"couldn't {verb}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Close every connection this source opened (in any thread). A later read opens a new
        one. (SQLite checkpoints its WAL into the database file when the last connection to it
        closes: the store's ``close`` calls this.)"""
        with self._open_lock:
            conns, self._open = self._open, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    def flush_point(self, size: int) -> int | None:
        rows = self._query("flush_point", (size,), "read the derived state's flush points")
        value = rows[0][0] if rows else None
        return None if value is None else int(value)

    def read(self, kind: str, key: bytes, at: int) -> bytes | None:
        rows = self._query("read", (kind, key, at), f"read a {kind} record of the derived state")
        if not rows:
            return None
        data, to_size = rows[0]
        # A version that ended at or below ``at`` with none after it: deleted by then.
        return None if to_size is not None and to_size <= at else bytes(data)

    def _scan_part(
        self, kind: str, at: int, current: bool, after: bytes, before: bytes
    ) -> Iterator[tuple[bytes, bytes]]:
        """The versions at ``at`` that are current now (``current``) or were superseded after
        ``at``, with keys between ``after`` and ``before``, in key order, in growing chunks
        (a short range costs one small read, a long one :data:`SCAN_CHUNK` rows a read)."""
        limit = 64
        verb = f"scan the {kind} records of the derived state"
        while True:
            if current:
                rows = self._query("scan_current", (kind, at, after, before, limit), verb)
            else:
                rows = self._query("scan_superseded", (kind, at, at, after, before, limit), verb)
            for key, data in rows:
                yield bytes(key), bytes(data)
            if len(rows) < limit:
                return
            after = bytes(rows[-1][0])
            limit = min(SCAN_CHUNK, limit * 4)

    def scan(
        self, kind: str, at: int, after: bytes = b"", before: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        # A record has one version at ``at``: current now, or superseded after ``at``.
        end = _KEY_END if before is None else before
        superseded = self._scan_part(kind, at, False, after, end)
        first = next(superseded, None)
        if first is None:  # none superseded (the latest flush point): no merge, row by row
            yield from self._scan_part(kind, at, True, after, end)
            return
        yield from heapq.merge(
            self._scan_part(kind, at, True, after, end),
            itertools.chain((first,), superseded),
            key=lambda r: r[0],
        )

    def entry_types_and_times(self, start: int, end: int) -> list[tuple[str, int]]:
        """See :class:`~ledger.protocol.stored.DerivedSource`: the ``statement_type`` and
        ``log_time_ms`` columns, without reading or hashing the entries' bytes."""
        rows = self._query(
            "types_and_times", (start, end), f"read the types of entries [{start}, {end})"
        )
        return [(str(statement_type), int(time_ms)) for statement_type, time_ms in rows]

    def entry_types_and_times_at(self, indexes: Sequence[int]) -> list[tuple[int, str, int]]:
        """See :class:`~ledger.protocol.stored.DerivedSource`: :data:`TYPES_AT_BATCH` entries a
        read (one fixed statement; a short batch is padded with -1, which no entry has)."""
        found: list[tuple[int, str, int]] = []
        for start in range(0, len(indexes), TYPES_AT_BATCH):
            batch = list(indexes[start : start + TYPES_AT_BATCH])
            batch += [-1] * (TYPES_AT_BATCH - len(batch))
            rows = self._query(
                "types_and_times_at",
                tuple(batch),
                f"read the types of {len(indexes)} entries from entry {indexes[start]}",
            )
            found += [(int(i), str(t), int(time_ms)) for i, t, time_ms in rows]
        return found

    def entry_facts(self, start: int, end: int) -> list[tuple[str, int, bytes]]:
        """See :class:`~ledger.protocol.stored.DerivedSource`. ``start`` and ``end`` lie in one
        level-0 tile (the fact cache reads whole tiles): each entry's leaf hash, computed from
        its bytes, must be the one that tile holds (the tiles hash to the signed root), or the
        store is damaged: :class:`~ledger.errors.FatalError` naming the entry."""
        rows = self._query("facts", (start, end), f"read the facts of entries [{start}, {end})")
        tiles = self._query("tile", (start // 256,), f"read the level-0 tile of entry {start}")
        tile = bytes(tiles[0][0]) if tiles else b""
        facts = []
        for offset, (statement_type, time_ms, data) in enumerate(rows):
            index = start + offset
            leaf = leaf_hash(bytes(data))
            at = (index % 256) * 32
            if tile[at : at + 32] != leaf:
                raise FatalError(
                    f"couldn't read entry {index}: it does not hash to the leaf hash in the "
                    "stored level-0 tile (a corrupted store?)"
                )
            facts.append((str(statement_type), int(time_ms), leaf))
        return facts


__all__ = [
    "DERIVED_FLUSHES",
    "DERIVED_RECORDS",
    "SqlDerivedSource",
    "delete_derived",
    "latest_flush_point",
    "write_derived",
]
