"""The ``amnesty`` command (typer, rich): one module per group of commands, helpers in ``common``.
May import every other package and ``api``; nothing imports it but its entry points.

Entry points: ``ledger.cli.main:main`` (the ``amnesty`` console script) and ``python -m ledger``.
"""
