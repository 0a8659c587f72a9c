"""Witness cosignatures of the log's checkpoints, kept beside the log's own signed note.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """One cosignature/v1 line per (checkpoint size, witness key)."""
    op.create_table(
        "cosignatures",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("witness", sa.Text(), primary_key=True),
        sa.Column("line", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    """Forget the cosignatures (the log's own checkpoints are untouched)."""
    op.drop_table("cosignatures")
