"""Alembic environment: migrations run on the connection :func:`ledger.storage.sql.migrate` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ledger.storage.sql import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ledger.storage.sql.migrate(engine)")
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
