"""The transparency-log formats: RFC 6962/9162 Merkle math and proofs, C2SP signed notes,
checkpoints, cosignatures, tlog-tiles and tlog-proof. Pure; imports only ``ledger.errors``.
"""
