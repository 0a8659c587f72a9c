"""Storage adapters: the contract (:mod:`ledger.storage.base`) and its SQLAlchemy implementation."""
