"""SQLAlchemy 2.0 implementation of :class:`ledger.storage.base.LogStore`.

SQLite is the embedded default: WAL journal, ``synchronous=FULL`` (a commit is on disk when it
returns), and ``BEGIN IMMEDIATE`` for append transactions so that the write lock is taken before
anything is read. PostgreSQL (psycopg 3) is the engine for several processes or machines: an
append transaction takes a row lock on the single ``log_head`` row (``SELECT ... FOR UPDATE``)
before reading anything.

Either way the checkpoint is replaced with a compare-and-swap
(``UPDATE log_head SET ... WHERE id = 1 AND checkpoint = :previous``, then exactly one row must
have changed), and every signed checkpoint is also kept in ``checkpoints`` keyed by size, so the
store itself refuses to hold two different checkpoints of one size: two writers can never fork
the log, even if the locking above were broken.

Every failure of the database — down, frozen, locked, full — leaves a method of the store as
:class:`~ledger.errors.StorageError` naming what couldn't be done (the service answers it 503
with ``Retry-After``); the connection is opened inside the ``try`` that maps it, so a refused
connection is mapped too. The engine (:mod:`ledger.storage.engine`) bounds every wait.

The statement-id index lives in :mod:`ledger.storage.statement_keys` and the derived state's
tables in :mod:`ledger.storage.derived`; this module writes both in the append transaction.

Kept whole: the schema, the append transaction that must write every table of a batch at once,
and the reads of the same tables are one implementation of the storage contract.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ledger.errors import ConflictError, StorageError
from ledger.storage.base import EntryQuery, LogIdentity, StoredEntry
from ledger.storage.derived import (
    SqlDerivedSource,
    delete_derived,
    latest_flush_point,
    write_derived,
)
from ledger.storage.engine import (
    DEFAULT_TIMEOUTS,
    StorageTimeouts,
    make_engine,
    normalise_database_url,
    sqlite_file,
)
from ledger.storage.statement_keys import (
    STATEMENT_KEY_TOP,
    check_statement_keys,
    find_statements_at,
    head_size,
    insert_statement_keys,
    promote_statement_keys,
    statement_key,
    statement_key_level,
    statement_key_top,
)
from ledger.tlog.tiles import TileID


class Base(DeclarativeBase):
    """Declarative base of the ledger's tables (the schema is owned by the Alembic migrations)."""


class LogIdentityRow(Base):
    """The log's identity: exactly one row, written once by ``create_log``."""

    __tablename__ = "log_identity"
    id: Mapped[int] = mapped_column(primary_key=True)
    origin: Mapped[str] = mapped_column(Text)
    log_vkey: Mapped[str] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    key_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_mldsa_vkey: Mapped[str | None] = mapped_column(Text, nullable=True)  # migration 0004


class LogHeadRow(Base):
    """The latest signed checkpoint: exactly one row, replaced by compare-and-swap."""

    __tablename__ = "log_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    checkpoint: Mapped[bytes] = mapped_column(LargeBinary)


class CheckpointRow(Base):
    """Every checkpoint the log ever signed, by size (primary key: one checkpoint per size)."""

    __tablename__ = "checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    checkpoint: Mapped[bytes] = mapped_column(LargeBinary)


class EntryRow(Base):
    """One log entry: the leaf bytes (the truth) and columns derived from them for queries.

    ``statement_id`` has no index of its own (migration 0006 dropped the UNIQUE one): a
    statement is found through :class:`StatementKeyRow`, and confirmed against this column."""

    __tablename__ = "entries"
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    statement_id: Mapped[bytes] = mapped_column(LargeBinary)
    statement_type: Mapped[str] = mapped_column(String(64))
    log_time_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        Index("ix_entries_type_idx", "statement_type", "idx"),
        Index("ix_entries_time", "log_time_ms"),
    )


class StatementKeyRow(Base):
    """The statement-id index: one row per entry, ``(level, key, idx)`` (migration 0006).

    ``key`` is the first 8 bytes of the entry's ``statement_id`` (:func:`statement_key`) and
    ``level`` is :func:`statement_key_level` of the entry's index and key at the log's size;
    see "The statement-id index" below for why and for the invariant."""

    __tablename__ = "statement_keys"
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    __table_args__ = ({"sqlite_with_rowid": False},)


class EntrySubjectRow(Base):
    """Which subjects an entry concerns (for ``GET /v1/entries?subject=``)."""

    __tablename__ = "entry_subjects"
    subject: Mapped[str] = mapped_column(Text, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class EntrySignerRow(Base):
    """Which keys signed an entry's statement (for ``GET /v1/entries?signer=``)."""

    __tablename__ = "entry_signers"
    signer: Mapped[str] = mapped_column(Text, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class CosignatureRow(Base):
    """A witness's cosignature/v1 line on the checkpoint of ``size`` (one per witness key)."""

    __tablename__ = "cosignatures"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(Text, primary_key=True)
    line: Mapped[str] = mapped_column(Text)


class TileRow(Base):
    """A hash tile: full (256 hashes, immutable) or the current right-edge partial tile."""

    __tablename__ = "tiles"
    level: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


_ENTRIES = cast(Table, EntryRow.__table__)
_TILES = cast(Table, TileRow.__table__)
_SUBJECTS = cast(Table, EntrySubjectRow.__table__)
_SIGNERS = cast(Table, EntrySignerRow.__table__)
_HEAD = cast(Table, LogHeadRow.__table__)
_CHECKPOINTS = cast(Table, CheckpointRow.__table__)
_IDENTITY = cast(Table, LogIdentityRow.__table__)
_COSIGNATURES = cast(Table, CosignatureRow.__table__)
_KEYS = cast(Table, StatementKeyRow.__table__)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent).

    On PostgreSQL the migration's transaction lifts the session's statement timeout: building
    an index on a large log takes longer than any request may, and a migration cut short
    would only be rolled back and tried again. Its waits for locks stay bounded."""
    config = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def upgrade_existing(engine: Engine) -> None:
    """Migrate a database that already holds a log to the newest revision; leave others alone.

    Opening a store never creates a log (that is ``create_log``'s explicit act), but a log made
    by an older release is brought up to date, so new tables exist before anything uses them.
    """
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is None:
        return
    if current != ScriptDirectory.from_config(_alembic_config()).get_current_head():
        migrate(engine)


def _wrap(verb: str, exc: SQLAlchemyError) -> StorageError:
    return StorageError(
        f"couldn't {verb}: {type(exc).__name__}: {exc.orig if hasattr(exc, 'orig') else exc}"
    )


class _SqlAppendTransaction:
    """The write side of one batch on an open connection holding the write lock.

    Duplicates: ``find_statements`` is exact (see "The statement-id index"): an id it reports
    is logged at that index, an id it omits is not logged. ``commit_batch`` refuses
    (:class:`ConflictError`, nothing stored) a batch that holds one statement twice or a
    statement already logged; it looks up only the ids this transaction has not already found
    absent, so the sequencer's one lookup per batch is not repeated. An answer stays true until
    the commit: on SQLite the transaction holds the file's write lock; on PostgreSQL the
    ``log_head`` row lock serializes writers, and even without it the compare-and-swap lets a
    batch commit only on the head it read, so no entry can have been committed in between.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._absent: set[bytes] = set()  # ids found not logged in this transaction

    def checkpoint(self) -> bytes:
        row = self._conn.execute(select(_HEAD.c.checkpoint).where(_HEAD.c.id == 1)).first()
        if row is None:
            raise StorageError("couldn't read the log head: no log here (run `amnesty init`)")
        return bytes(row[0])

    def read_tile(self, level: int, index: int) -> bytes:
        return _read_tile(self._conn, level, index)

    def read_entries(self, start: int, end: int) -> list[bytes]:
        return _read_entries(self._conn, start, end)

    def find_statement(self, statement_id: bytes) -> int | None:
        return _find_statement(self._conn, statement_id)

    def find_statements(self, statement_ids: Sequence[bytes]) -> dict[bytes, int]:
        """The indexes of those of ``statement_ids`` that are logged, exactly: never an id that
        is not logged (a shared 8-byte key is confirmed against the full id), never missing
        one that is (every level that may hold rows at the head's size is probed)."""
        top = statement_key_top(head_size(self._conn))
        found = find_statements_at(self._conn, statement_ids, range(top + 1))
        self._absent.update(s for s in statement_ids if s not in found)
        return found

    def write_derived(
        self, size: int, rows: Sequence[tuple[str, bytes, bytes]], *, new_point: bool = True
    ) -> None:
        try:
            write_derived(self._conn, size, rows, new_point=new_point)
        except IntegrityError as exc:
            raise ConflictError(
                f"couldn't store the derived state at size {size}: it is stored already "
                f"({exc.orig})"
            ) from exc

    def derived_flush_point(self) -> int | None:
        return latest_flush_point(self._conn)

    def delete_derived(self) -> int:
        return delete_derived(self._conn)

    def adopt_mldsa_vkey(self, vkey: str) -> None:
        column = _IDENTITY.c.log_mldsa_vkey
        changed = self._conn.execute(
            update(_IDENTITY)
            .where(_IDENTITY.c.id == 1, or_(column.is_(None), column == vkey))
            .values(log_mldsa_vkey=vkey)
        )
        if changed.rowcount != 1:
            raise ConflictError(
                f"couldn't record the log's ML-DSA-44 key {vkey.split('+', 2)[1]}: the log's "
                "identity holds another one"
            )

    def commit_batch(
        self,
        previous_checkpoint: bytes,
        new_checkpoint: bytes,
        new_size: int,
        entries: Sequence[StoredEntry],
        tiles: Sequence[tuple[TileID, bytes]],
        derived: Sequence[tuple[str, bytes, bytes]] | None = None,
    ) -> None:
        conn = self._conn
        self._refuse_duplicates(new_size, entries)
        old_size = head_size(conn)
        try:
            if derived is not None:
                # The derived state of the new size commits with the entries it is derived
                # from, or not at all (ledger.storage.derived).
                write_derived(conn, new_size, derived)
            if entries:
                conn.execute(
                    _ENTRIES.insert(),
                    [
                        {
                            "idx": e.index,
                            "data": e.data,
                            "statement_id": e.statement_id,
                            "statement_type": e.statement_type,
                            "log_time_ms": e.log_time_ms,
                        }
                        for e in entries
                    ],
                )
                keys = [(statement_key(e.statement_id), e.index) for e in entries]
                insert_statement_keys(
                    conn, [(statement_key_level(i, k, new_size), k, i) for k, i in keys]
                )
                subjects = [
                    {"subject": s, "idx": e.index} for e in entries for s in set(e.subjects)
                ]
                if subjects:
                    conn.execute(_SUBJECTS.insert(), subjects)
                signers = [{"signer": s, "idx": e.index} for e in entries for s in set(e.signers)]
                if signers:
                    conn.execute(_SIGNERS.insert(), signers)
            promote_statement_keys(conn, old_size, new_size)
            for tile, data in tiles:
                _upsert_tile(conn, tile.level, tile.index, data)
            conn.execute(_CHECKPOINTS.insert().values(size=new_size, checkpoint=new_checkpoint))
        except IntegrityError as exc:
            raise ConflictError(
                f"couldn't store batch up to size {new_size}: another writer stored an entry, "
                f"statement or checkpoint first ({exc.orig})"
            ) from exc
        # The compare-and-swap: the head moves only from the checkpoint this batch was built on.
        swapped = conn.execute(
            update(_HEAD)
            .where(_HEAD.c.id == 1, _HEAD.c.checkpoint == previous_checkpoint)
            .values(size=new_size, checkpoint=new_checkpoint)
        )
        if swapped.rowcount != 1:
            raise ConflictError(
                f"couldn't replace the checkpoint with size {new_size}: the stored checkpoint "
                "is no longer the one this batch was built on (another writer appended)"
            )
        self._absent.clear()  # this batch's statements are logged now

    def _refuse_duplicates(self, new_size: int, entries: Sequence[StoredEntry]) -> None:
        """Raise :class:`ConflictError` if ``entries`` hold one statement twice or one already
        logged (the guard the UNIQUE index was; the lookups the sequencer made are reused)."""
        ids = [e.statement_id for e in entries]
        if len(set(ids)) != len(ids):
            twice = next(s for s in ids if ids.count(s) > 1)
            raise ConflictError(
                f"couldn't store batch up to size {new_size}: statement {twice.hex()} is in "
                "it twice"
            )
        logged = self.find_statements([s for s in ids if s not in self._absent])
        if logged:
            statement_id, index = next(iter(logged.items()))
            raise ConflictError(
                f"couldn't store batch up to size {new_size}: statement {statement_id.hex()} "
                f"is already logged at index {index}"
            )


def _upsert_tile(conn: Connection, level: int, index: int, data: bytes) -> None:
    dialect = conn.dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(_TILES).values(level=level, idx=index, data=data)
    conn.execute(stmt.on_conflict_do_update(index_elements=["level", "idx"], set_={"data": data}))


def _read_tile(conn: Connection, level: int, index: int) -> bytes:
    row = conn.execute(
        select(_TILES.c.data).where(_TILES.c.level == level, _TILES.c.idx == index)
    ).first()
    return bytes(row[0]) if row is not None else b""


def _read_entries(conn: Connection, start: int, end: int) -> list[bytes]:
    rows = conn.execute(
        select(_ENTRIES.c.data)
        .where(_ENTRIES.c.idx >= start, _ENTRIES.c.idx < end)
        .order_by(_ENTRIES.c.idx)
    )
    return [bytes(r[0]) for r in rows]


def _find_statement(conn: Connection, statement_id: bytes) -> int | None:
    """The index of the entry holding ``statement_id``, probing every level: a read outside
    the write lock must not depend on a size that a concurrent commit may have changed."""
    found = find_statements_at(conn, [statement_id], range(STATEMENT_KEY_TOP + 1))
    return found.get(statement_id)


class SqlLogStore:
    """A :class:`~ledger.storage.base.LogStore` on SQLite or PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        engine: Engine | None = None,
        create: bool = False,
        timeouts: StorageTimeouts = DEFAULT_TIMEOUTS,
    ) -> None:
        """Open the store at ``url``. A SQLite file that does not exist is refused with
        :class:`StorageError` unless ``create`` (``amnesty init``, ``amnesty demo``): opening a
        log to read or serve it must never leave an empty database file behind a typo.
        ``timeouts`` bounds every wait on the database (ignored with an ``engine`` given)."""
        self.url = normalise_database_url(url)
        sqlite_path = sqlite_file(self.url)
        if engine is None and not create and sqlite_path is not None and not sqlite_path.exists():
            raise StorageError(
                f"couldn't open the log at {sqlite_path}: no such file (create a log there "
                "with `amnesty init`)"
            )
        self.engine = engine if engine is not None else make_engine(self.url, timeouts)
        self.dialect = self.engine.dialect.name
        try:
            upgrade_existing(self.engine)
        except SQLAlchemyError as exc:
            raise _wrap(f"open the store at {self._safe_url()}", exc) from exc

    # -- creation -----------------------------------------------------------------------------

    def create_log(self, identity: LogIdentity, checkpoint: bytes) -> None:
        try:
            migrate(self.engine)
            with self.engine.begin() as conn:
                existing = conn.execute(select(func.count()).select_from(_IDENTITY)).scalar_one()
                if existing:
                    origin = conn.execute(select(_IDENTITY.c.origin)).scalar_one()
                    raise StorageError(
                        f"couldn't create log {identity.origin!r}: this database already holds "
                        f"log {origin!r}"
                    )
                conn.execute(
                    _IDENTITY.insert().values(
                        id=1,
                        origin=identity.origin,
                        log_vkey=identity.log_vkey,
                        created_ms=identity.created_ms,
                        key_path=identity.key_path,
                        log_mldsa_vkey=identity.mldsa_vkey,
                    )
                )
                conn.execute(_HEAD.insert().values(id=1, size=0, checkpoint=checkpoint))
                conn.execute(_CHECKPOINTS.insert().values(size=0, checkpoint=checkpoint))
        except SQLAlchemyError as exc:
            raise _wrap(f"create log {identity.origin!r}", exc) from exc

    # -- reads --------------------------------------------------------------------------------

    @contextmanager
    def _reading(self, what: str) -> Iterator[Connection]:
        """A connection for one read; any database failure, opening the connection included,
        leaves as :class:`StorageError` ("couldn't read <what> from <url>: <cause>")."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise _wrap(f"read {what} from {self._safe_url()}", exc) from exc

    def identity(self) -> LogIdentity:
        no_log = (
            f"couldn't read the log identity from {self._safe_url()}: no log here (create one "
            "with `amnesty init --db URL --origin ORIGIN --key KEY`, or `amnesty demo --db URL`)"
        )
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(_IDENTITY)).first()
        except ProgrammingError as exc:  # PostgreSQL: no such table, an empty database
            raise StorageError(no_log) from exc
        except OperationalError as exc:
            if "no such table" in str(exc.orig):  # SQLite: an empty database file
                raise StorageError(no_log) from exc
            raise _wrap(f"read the log identity from {self._safe_url()}", exc) from exc
        except SQLAlchemyError as exc:
            raise _wrap(f"read the log identity from {self._safe_url()}", exc) from exc
        if row is None:
            raise StorageError(no_log)
        return LogIdentity(
            origin=row.origin,
            log_vkey=row.log_vkey,
            created_ms=row.created_ms,
            key_path=row.key_path,
            mldsa_vkey=row.log_mldsa_vkey,
        )

    def checkpoint(self) -> bytes:
        with self._reading("the checkpoint") as conn:
            row = conn.execute(select(_HEAD.c.checkpoint).where(_HEAD.c.id == 1)).first()
        if row is None:
            raise StorageError(f"couldn't read the checkpoint from {self._safe_url()}: no log here")
        return bytes(row[0])

    def checkpoint_at(self, size: int) -> bytes | None:
        with self._reading(f"the checkpoint of size {size}") as conn:
            row = conn.execute(
                select(_CHECKPOINTS.c.checkpoint).where(_CHECKPOINTS.c.size == size)
            ).first()
        return bytes(row[0]) if row is not None else None

    def has_checkpoint_between(self, low: int, high: int) -> bool:
        with self._reading(f"the checkpoints of sizes [{low}, {high})") as conn:
            row = conn.execute(
                select(_CHECKPOINTS.c.size)
                .where(_CHECKPOINTS.c.size >= low, _CHECKPOINTS.c.size < high)
                .limit(1)
            ).first()
        return row is not None

    def read_tile(self, level: int, index: int) -> bytes:
        with self._reading(f"tile {level}/{index}") as conn:
            return _read_tile(conn, level, index)

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        dialect = self.engine.dialect.name
        insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert_fn(_COSIGNATURES).values(size=size, witness=witness, line=line)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["size", "witness"], set_={"line": line}
                    )
                )
        except SQLAlchemyError as exc:
            raise _wrap(f"store a cosignature of size {size} by {witness!r}", exc) from exc

    def cosignatures(self, size: int) -> list[str]:
        with self._reading(f"the cosignatures of size {size}") as conn:
            rows = conn.execute(
                select(_COSIGNATURES.c.line)
                .where(_COSIGNATURES.c.size == size)
                .order_by(_COSIGNATURES.c.witness)
            )
            return [str(r[0]) for r in rows]

    def read_entries(self, start: int, end: int) -> list[bytes]:
        with self._reading(f"entries [{start}, {end})") as conn:
            return _read_entries(conn, start, end)

    def iter_entries(self, start: int, end: int, chunk: int = 4096) -> Iterator[bytes]:
        position = start
        while position < end:
            batch = self.read_entries(position, min(end, position + chunk))
            if not batch:
                return
            yield from batch
            position += len(batch)

    def iter_checkpoint_rows(self, chunk: int = 1024) -> Iterator[tuple[int, bytes]]:
        """Every stored checkpoint row as ``(size column, note)``, ascending by size, in
        bounded memory (for ``amnesty fsck``: the rows are read, not trusted)."""
        after = -1
        while True:
            with self._reading("checkpoint rows") as conn:
                rows = [
                    (int(r[0]), bytes(r[1]))
                    for r in conn.execute(
                        select(_CHECKPOINTS.c.size, _CHECKPOINTS.c.checkpoint)
                        .where(_CHECKPOINTS.c.size > after)
                        .order_by(_CHECKPOINTS.c.size)
                        .limit(chunk)
                    )
                ]
            if not rows:
                return
            yield from rows
            after = rows[-1][0]

    def iter_entry_rows(
        self, start: int, end: int, chunk: int = 4096
    ) -> Iterator[tuple[int, bytes, bytes, str, int]]:
        """Entries ``[start, end)`` with the columns that index them: ``(idx, data,
        statement_id, statement_type, log_time_ms)``, ascending, in bounded memory (for
        ``amnesty fsck``, which re-derives the columns from the data)."""
        position = start
        while position < end:
            stop = min(end, position + chunk)
            with self._reading(f"entries [{position}, {stop})") as conn:
                rows = [
                    (int(r[0]), bytes(r[1]), bytes(r[2]), str(r[3]), int(r[4]))
                    for r in conn.execute(
                        select(
                            _ENTRIES.c.idx,
                            _ENTRIES.c.data,
                            _ENTRIES.c.statement_id,
                            _ENTRIES.c.statement_type,
                            _ENTRIES.c.log_time_ms,
                        )
                        .where(_ENTRIES.c.idx >= position, _ENTRIES.c.idx < stop)
                        .order_by(_ENTRIES.c.idx)
                    )
                ]
            if not rows:
                return
            yield from rows
            position = rows[-1][0] + 1

    def find_statement(self, statement_id: bytes) -> int | None:
        with self._reading(f"statement {statement_id.hex()}") as conn:
            return _find_statement(conn, statement_id)

    def query_entries(self, query: EntryQuery) -> list[tuple[int, bytes]]:
        stmt = select(_ENTRIES.c.idx, _ENTRIES.c.data).where(_ENTRIES.c.idx > query.after)
        if query.below_size is not None:
            stmt = stmt.where(_ENTRIES.c.idx < query.below_size)
        if query.statement_type is not None:
            stmt = stmt.where(_ENTRIES.c.statement_type == query.statement_type)
        if query.since_ms is not None:
            stmt = stmt.where(_ENTRIES.c.log_time_ms >= query.since_ms)
        if query.until_ms is not None:
            stmt = stmt.where(_ENTRIES.c.log_time_ms < query.until_ms)
        if query.subject is not None:
            stmt = stmt.where(
                _ENTRIES.c.idx.in_(
                    select(_SUBJECTS.c.idx).where(_SUBJECTS.c.subject == query.subject)
                )
            )
        if query.signer is not None:
            stmt = stmt.where(
                _ENTRIES.c.idx.in_(select(_SIGNERS.c.idx).where(_SIGNERS.c.signer == query.signer))
            )
        stmt = stmt.order_by(_ENTRIES.c.idx).limit(query.limit)
        with self._reading("entries matching a query") as conn:
            return [(int(r[0]), bytes(r[1])) for r in conn.execute(stmt)]

    # -- writes -------------------------------------------------------------------------------

    @contextmanager
    def append_transaction(self) -> Iterator[_SqlAppendTransaction]:
        """Hold the write lock for one batch; commit when the block exits cleanly.

        Crash safety: nothing of the batch is visible to anyone until the COMMIT at the end of
        this block returns; SQLite with WAL and ``synchronous=FULL`` (and PostgreSQL with its
        default ``synchronous_commit=on``) has the commit record on disk when COMMIT returns, so
        a crash before it loses the whole batch (no submitter was told an index yet) and a crash
        after it loses nothing.
        """
        try:
            conn = self.engine.connect()  # inside the try: a refused connection maps too
        except SQLAlchemyError as exc:
            raise _wrap("append a batch", exc) from exc
        try:
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(select(_HEAD.c.id).where(_HEAD.c.id == 1).with_for_update())
                yield _SqlAppendTransaction(conn)
        except SQLAlchemyError as exc:
            raise _wrap("append a batch", exc) from exc
        finally:
            conn.close()

    def check_statement_index(self, size: int) -> str | None:
        """How the statement-id index is broken for entries ``[0, size)``, or ``None``
        (:func:`~ledger.storage.statement_keys.check_statement_keys`)."""
        with self._reading("check the statement-id index") as conn:
            return check_statement_keys(conn, size)

    def derived_source(self) -> SqlDerivedSource:
        """The derived state of this store, to read (:mod:`ledger.storage.derived`): one
        source per store, its connections closed with the store."""
        source: SqlDerivedSource | None = self.__dict__.get("_derived_source")
        if source is None:
            source = self.__dict__["_derived_source"] = SqlDerivedSource(self.engine)
        return source

    def database_file(self) -> Path | None:
        """The SQLite database file, or None (PostgreSQL): what a disk-space check watches."""
        return sqlite_file(self.url)

    def close(self) -> None:
        source = self.__dict__.get("_derived_source")
        if source is not None:
            source.close()
        self.engine.dispose()

    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)
