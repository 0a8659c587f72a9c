"""Derived state: the protocol state's records, versioned by the log size they were written at.

Revision ID: 0005
Revises: 0004

``derived_records`` holds one row per record version: ``(kind, key)`` names the record (a
subject, an application, the ``meta`` scalars, …: :data:`ledger.protocol.stored.TABLE_KINDS`),
``from_size`` is the flush point (log size) it was written at, ``to_size`` the flush point that
replaced it (NULL while it is current), ``data`` the record (:mod:`ledger.protocol.codec`).
``derived_flushes`` lists the flush points: the record versions at flush point ``P`` are exactly
the protocol state after entries ``[0, P)``. Both are a cache the service trusts and a verifier
never reads; ``amnesty check-derived`` compares them with a replay of the log. Logs made before
this revision have none: a writing server fills them in (backfill) when it starts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the two tables and the indexes of current and superseded versions."""
    op.create_table(
        "derived_records",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.LargeBinary(), primary_key=True),
        sa.Column("from_size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("to_size", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_index(
        "ix_derived_current",
        "derived_records",
        ["kind", "key"],
        sqlite_where=sa.text("to_size IS NULL"),
        postgresql_where=sa.text("to_size IS NULL"),
    )
    op.create_index("ix_derived_superseded", "derived_records", ["kind", "to_size"])
    op.create_table(
        "derived_flushes",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
    )


def downgrade() -> None:
    """Drop the derived state (a cache: the log itself is untouched)."""
    op.drop_table("derived_flushes")
    op.drop_index("ix_derived_superseded", table_name="derived_records")
    op.drop_index("ix_derived_current", table_name="derived_records")
    op.drop_table("derived_records")
