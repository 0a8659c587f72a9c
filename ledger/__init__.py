"""amnesty-ledger: a transparency log of the Model Amnesty protocol's signed statements.

Each subpackage is a layer; ``docs/ARCHITECTURE.md`` has the package map (what each is and may
import), and ``tests/test_architecture.py`` enforces it.
"""
