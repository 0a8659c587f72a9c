"""The statement-id index: a leveled ``statement_keys`` table instead of a UNIQUE index.

Revision ID: 0006_statement_keys
Revises: 0005

A UNIQUE index on ``entries.statement_id`` took each new SHA-256 id on a random page of a
B-tree: past a few hundred thousand entries a batch of 1,024 dirtied about 1,000 index pages,
each written to the WAL and back into the file, and durable appends fell by half at a million
entries. ``statement_keys (level, key, idx)`` replaces it: ``key`` is the id's first 8 bytes
(signed big-endian), ``level`` groups the rows so that new ones land together and older ones
move up a level in sorted slices (``ledger.storage.statement_keys``, states the
layout and the invariant). The store finds a statement by ``(level, key)`` and confirms it against
``entries.statement_id``, which stays (unindexed) as the exact record.

The upgrade writes one row per stored entry at its level for the log's size, then drops the
UNIQUE constraint (SQLite cannot drop it in place: the ``entries`` table is rebuilt, copying
every row once, in the migration's transaction). Nothing else changes: entries, tiles and
checkpoints are untouched. The downgrade restores the UNIQUE index and drops the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_statement_keys"
down_revision = "0005"
branch_labels = None
depends_on = None

# The layout at this revision, frozen here (ledger.storage.statement_keys holds the live copy; a test
# checks that a migrated log's rows are exactly those the store would have written).
_BASE = 4096
_FANOUT = 8
_TOP = 17
_BLOCKS = (0, *(_BASE * _FANOUT ** (level - 1) for level in range(1, _TOP + 1)))
_CHUNK = 20_000


def _level(index: int, key: int, size: int) -> int:
    """``ledger.storage.statement_keys.statement_key_level`` at this revision."""
    level = 0
    for candidate in range(1, _TOP + 1):
        block = _BLOCKS[candidate]
        done = size - (index // block + 1) * block
        if done <= 0:
            break
        if done < block // 2 and key >= -(2**63) + (done << 64) // (block // 2):
            break
        level = candidate
    return level


def _key(statement_id: bytes) -> int:
    return int.from_bytes(statement_id[:8], "big", signed=True)


def _fill(conn: sa.Connection, keys: sa.Table) -> None:
    """One ``statement_keys`` row per stored entry, read in bounded chunks by index."""
    entries = sa.table(
        "entries", sa.column("idx", sa.BigInteger()), sa.column("statement_id", sa.LargeBinary())
    )
    size = conn.execute(sa.text("SELECT size FROM log_head WHERE id = 1")).scalar()
    size = int(size) if size is not None else 0
    after = -1
    while True:
        rows = conn.execute(
            sa.select(entries.c.idx, entries.c.statement_id)
            .where(entries.c.idx > after)
            .order_by(entries.c.idx)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        conn.execute(
            keys.insert(),
            [
                {
                    "level": _level(int(i), _key(bytes(s)), size),
                    "key": _key(bytes(s)),
                    "idx": int(i),
                }
                for i, s in rows
            ],
        )
        after = int(rows[-1][0])


def _drop_unique_statement_id(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        for constraint in sa.inspect(conn).get_unique_constraints("entries"):
            if constraint["column_names"] == ["statement_id"] and constraint["name"]:
                op.drop_constraint(constraint["name"], "entries", type_="unique")
        for index in sa.inspect(conn).get_indexes("entries"):
            if index["column_names"] == ["statement_id"] and index["unique"]:
                op.drop_index(str(index["name"]), table_name="entries")
        return
    # SQLite keeps an unnamed UNIQUE in the table's definition: rebuild the table without it.
    op.create_table(
        "entries_0006",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("statement_id", sa.LargeBinary(), nullable=False),
        sa.Column("statement_type", sa.String(64), nullable=False),
        sa.Column("log_time_ms", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO entries_0006 (idx, data, statement_id, statement_type, log_time_ms) "
        "SELECT idx, data, statement_id, statement_type, log_time_ms FROM entries ORDER BY idx"
    )
    op.drop_table("entries")
    op.rename_table("entries_0006", "entries")
    op.create_index("ix_entries_type_idx", "entries", ["statement_type", "idx"])
    op.create_index("ix_entries_time", "entries", ["log_time_ms"])


def upgrade() -> None:
    """Create and fill ``statement_keys``, then drop the UNIQUE constraint on statement ids."""
    keys = op.create_table(
        "statement_keys",
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("key", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    assert keys is not None
    conn = op.get_bind()
    _fill(conn, keys)
    _drop_unique_statement_id(conn)


def downgrade() -> None:
    """Restore a UNIQUE index on ``entries.statement_id`` and drop ``statement_keys``."""
    op.create_index("uq_entries_statement_id", "entries", ["statement_id"], unique=True)
    op.drop_table("statement_keys")
