"""Witnessing (C2SP tlog-witness): a witness's rules and state, the log's cosigner, the client
that asks a witness. Imports ``errors``, ``atomic``, ``tlog``, ``server``, ``verifier``, ``client``.
"""
