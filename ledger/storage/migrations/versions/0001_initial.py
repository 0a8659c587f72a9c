"""The initial schema: identity, head, checkpoints, entries (and their query indexes), tiles.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table of the log store."""
    op.create_table(
        "log_identity",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("log_vkey", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("key_path", sa.Text(), nullable=True),
    )
    op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("statement_id", sa.LargeBinary(), nullable=False, unique=True),
        sa.Column("statement_type", sa.String(64), nullable=False),
        sa.Column("log_time_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_entries_type_idx", "entries", ["statement_type", "idx"])
    op.create_index("ix_entries_time", "entries", ["log_time_ms"])
    op.create_table(
        "entry_subjects",
        sa.Column("subject", sa.Text(), primary_key=True),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
    )
    op.create_table(
        "entry_signers",
        sa.Column("signer", sa.Text(), primary_key=True),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
    )
    op.create_table(
        "tiles",
        sa.Column("level", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    """Drop every table (destroys the log)."""
    for table in (
        "tiles",
        "entry_signers",
        "entry_subjects",
        "entries",
        "checkpoints",
        "log_head",
        "log_identity",
    ):
        op.drop_table(table)
