"""Storage adapters: the contract (:mod:`ledger.storage.base`) and its SQLAlchemy implementation
for SQLite and PostgreSQL. Imports ``ledger.errors`` and ``ledger.tlog`` (and SQLAlchemy, Alembic).
"""
