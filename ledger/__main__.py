"""``python -m ledger``: the ``amnesty`` command."""

from ledger.cli.main import main

main()
