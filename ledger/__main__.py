"""``python -m ledger``: the ``amnesty`` command."""

from ledger.cli import main

main()
