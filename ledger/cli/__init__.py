"""The ``amnesty`` command line: a typer adapter, one module per group of commands.

May import every ledger package and ``api`` (``serve`` builds the app); nothing imports it but
its entry points (``ledger.cli.main:main``, ``python -m ledger``).
"""
