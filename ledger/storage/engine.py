"""Connecting to the store's database: SQLite or PostgreSQL, with the durability settings the
store relies on and a bound on every wait.

SQLite: WAL journal, ``synchronous=FULL`` (a commit is on disk when it returns), transactions
begun by us (``BEGIN`` or ``BEGIN IMMEDIATE``), and a bounded wait for another process's write
lock. PostgreSQL (psycopg 3): every session carries a connect timeout, TCP keepalives, and
statement, lock-wait and idle-in-transaction timeouts (:class:`StorageTimeouts`), so a database
that is down, frozen or locked by a frozen writer costs a caller a bounded wait and a
:class:`~ledger.errors.StorageError`, never a hang; the pool waits a bounded time for a free
connection and checks each connection before use (``pool_pre_ping``), so the same process
recovers by itself when the database returns.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalise_database_url(url: str) -> str:
    """Accept ``sqlite:///path``, a bare file path, or ``postgresql://`` (driven by psycopg 3)."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file a ``sqlite:///`` URL names, or None (another engine, or an in-memory one)."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


@dataclass(frozen=True, slots=True)
class StorageTimeouts:
    """How long the store waits on the database, at most, in seconds (see the module).

    ``statement_s`` bounds one statement (PostgreSQL ``statement_timeout``); ``lock_s`` a wait
    for a row lock (``lock_timeout``: a writer frozen while holding the write lock stalls the
    others at most this long) and, on SQLite, for the file's write lock (``busy_timeout``);
    ``idle_in_transaction_s`` ends the session of a writer that holds a transaction open without
    working (a frozen or dead process), which releases its write lock; ``connect_s`` bounds
    opening a connection (also the pool's wait for a free one); ``keepalive_s`` is the TCP
    keepalive idle time, after which a silent peer is probed and, unanswered, dropped.
    """

    connect_s: float = 5.0
    statement_s: float = 10.0
    lock_s: float = 5.0
    idle_in_transaction_s: float = 30.0
    keepalive_s: int = 10

    def postgresql_connect_args(self) -> dict[str, Any]:
        """libpq connection parameters (psycopg 3) that apply these bounds to every session."""
        options = " ".join(
            [
                f"-c statement_timeout={int(self.statement_s * 1000)}",
                f"-c lock_timeout={int(self.lock_s * 1000)}",
                f"-c idle_in_transaction_session_timeout={int(self.idle_in_transaction_s * 1000)}",
            ]
        )
        return {
            # libpq takes whole seconds (at least 2); round up so the bound is never shorter.
            "connect_timeout": max(2, int(self.connect_s + 0.999)),
            "keepalives": 1,
            "keepalives_idle": self.keepalive_s,
            "keepalives_interval": max(1, self.keepalive_s // 3),
            "keepalives_count": 3,
            "options": options,
        }


DEFAULT_TIMEOUTS = StorageTimeouts()

SQLITE_CACHE_BUDGET_MIB = 32
"""The default budget of SQLite's page caches in one process, in MiB (see
:func:`set_sqlite_cache_budget`): what a serving process holds beyond its fixed costs whatever
the log's size, and enough for appends at a million entries."""


def set_sqlite_cache_budget(mib: int) -> None:
    """Bound the memory of SQLite's page caches in this process, all connections together, to
    about ``mib`` MiB, from now on: SQLite's soft heap limit, which is per process (the last
    value set holds). Past it, each connection recycles its own least recently used pages
    instead of taking more. Without it, each connection that once read a large log keeps its
    own 64 MiB (``cache_size``), and a serving process — a pool of up to 24 connections, a
    report's and the integrity sweep's among them — grows with the log up to 24 times that.
    Raises :class:`ValueError` below 1 MiB."""
    if mib < 1:
        raise ValueError(f"couldn't bound SQLite's page caches to {mib} MiB: at least 1")
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute(f"PRAGMA soft_heap_limit={mib << 20}")


def sqlite_cache_budget_mib() -> int | None:
    """The budget in force (see :func:`set_sqlite_cache_budget`), None if there is none."""
    with closing(sqlite3.connect(":memory:")) as conn:
        limit = int(conn.execute("PRAGMA soft_heap_limit").fetchone()[0])
    return limit >> 20 if limit else None


def _configure_sqlite(engine: Engine, busy_ms: int) -> None:
    """WAL, synchronous=FULL, and transactions begun by us (``BEGIN`` or ``BEGIN IMMEDIATE``).

    pysqlite's own implicit transaction handling is switched off so that the ``begin`` event
    below is the only place a transaction starts; append transactions ask for ``IMMEDIATE`` so
    the write lock is held before the head checkpoint is read.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        # Bounded: a process frozen while holding the write lock stalls the others this long
        # at most, then they answer "storage unavailable" instead of hanging.
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        # 64 MiB of page cache, a fixed bound whatever the log's size. Appends need little of
        # it: entries, tiles and checkpoints grow at their right edge, and the statement-id
        # index (ledger.storage.sql, "The statement-id index") writes new rows into a small
        # level and moves older ones up in sorted slices, so the pages a batch touches do not
        # grow with the log. The rest serves reads (tiles for proofs, entries).
        cursor.execute("PRAGMA cache_size=-65536")
        # ... within one budget for the whole process, 32 MiB by default (set_sqlite_cache_budget):
        # durable appends at a million entries ran as fast under it as with 64 MiB for each
        # connection (scripts/bench_log.py, docs/PERFORMANCE.md).
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, timeouts: StorageTimeouts = DEFAULT_TIMEOUTS) -> Engine:
    """Build an engine for ``url`` with the durability settings and the bounded waits
    (``timeouts``) this store relies on."""
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        # A pool of connections (each configured once on connect), shared by threads.
        engine = create_engine(
            url,
            pool_size=8,
            max_overflow=16,
            pool_pre_ping=False,
            pool_timeout=timeouts.connect_s,
        )
        _configure_sqlite(engine, int(timeouts.lock_s * 1000))
        if sqlite_cache_budget_mib() is None:  # the default, unless the process chose one
            set_sqlite_cache_budget(SQLITE_CACHE_BUDGET_MIB)
        return engine
    return create_engine(
        url,
        # A connection broken by an outage is found and replaced on checkout: recovery
        # without a restart.
        pool_pre_ping=True,
        pool_size=8,
        max_overflow=8,
        pool_timeout=timeouts.connect_s,
        connect_args=timeouts.postgresql_connect_args(),
    )
