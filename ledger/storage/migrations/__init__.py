"""Alembic migrations of the SQL store (run on open by :class:`~ledger.storage.sql.SqlLogStore`)."""
