"""Entries indexed by public key: a key is its public key, whatever name a vkey gives it.

Revision ID: 0003
Revises: 0002

``entry_subjects`` and ``entry_signers`` held vkey strings (``name+hex8+base64(0x01 ‖ key)``),
so a query by one vkey missed the entries a key signed or was named in under another name. From
this revision both hold, for a key, its 32-byte public key in standard base64 (44 characters,
``ledger.protocol.keys.key_label``); subject ids (decimal entry indexes) are unchanged. The
upgrade rewrites every stored vkey; two vkeys of one public key on one entry become one row.
Only the read index changes: the entries themselves, the tree and the checkpoints are untouched.
"""

from __future__ import annotations

import base64
import binascii

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = (("entry_subjects", "subject"), ("entry_signers", "signer"))


def _public_key_label(vkey: str) -> str | None:
    """The base64 public key of a stored vkey, or ``None`` for a string that is not one."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        return None
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 33:
        return None
    return base64.b64encode(raw[1:]).decode("ascii")


def upgrade() -> None:
    """Rewrite each stored vkey as its public key, merging rows that become equal."""
    conn = op.get_bind()
    for table, column in _TABLES:
        rows = sa.table(table, sa.column(column, sa.Text()), sa.column("idx", sa.BigInteger()))
        key = rows.c[column]
        vkeys = [
            value for (value,) in conn.execute(sa.select(key).distinct().where(key.like("%+%")))
        ]
        for vkey in vkeys:
            label = _public_key_label(vkey)
            if label is None:
                continue
            have = sa.select(rows.c.idx).where(key == label).scalar_subquery()
            conn.execute(
                rows.update()
                .where(key == vkey)
                .where(rows.c.idx.not_in(have))
                .values({column: label})
            )
            conn.execute(rows.delete().where(key == vkey))


def downgrade() -> None:
    """Not reversible: which name a public key was indexed under is not kept."""
    raise NotImplementedError("couldn't downgrade 0003: vkey names were merged into public keys")
