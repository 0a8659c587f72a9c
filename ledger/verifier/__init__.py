"""The verifier: full and incremental verification over any LogSource, trust state, split-view
evidence, offline proofs, monitor, mirror. Imports errors, atomic, tlog, protocol, statements.
Never server, storage, client, witness, api, cli.
"""
