"""What a log entry holds: canonical JSON, the signed statement, the entry envelope, a statement
at its place in the log, the demo history. Imports ``ledger.errors``, ``tlog``, ``protocol``.
"""
