"""The FastAPI adapter: the service (reads, submissions, tlog-tiles, the web page) and the witness
server. May import every ``ledger`` package but ``cli``, and ``schemas``; only the CLI imports it.
"""
