"""The log's ML-DSA-44 key: a second vkey fixed when the log is created.

Revision ID: 0004
Revises: 0003

A log created with a hybrid key file signs every checkpoint with its Ed25519 key (``log_vkey``)
and its ML-DSA-44 key (type 0x06, named after the origin, C2SP tlog-cosignature ``subtree/v1``).
``log_mldsa_vkey`` holds that key's vkey, so every server of the log, read-only ones too,
publishes it (``/v1/log``). Logs made before this revision have none (NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``log_mldsa_vkey`` column."""
    with op.batch_alter_table("log_identity") as batch:
        batch.add_column(sa.Column("log_mldsa_vkey", sa.Text(), nullable=True))


def downgrade() -> None:
    """Forget the ML-DSA-44 vkey (the checkpoints keep their lines; Ed25519 verifiers ignore them)."""
    with op.batch_alter_table("log_identity") as batch:
        batch.drop_column("log_mldsa_vkey")
