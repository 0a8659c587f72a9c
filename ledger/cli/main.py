"""The ``amnesty`` console entry point: the app with every command group registered."""

from __future__ import annotations

import typer

from ledger.cli.common import app

_COMMAND_MODULES: tuple[str, ...] = (
    "ledger.cli.log",
    "ledger.cli.verifier",
    "ledger.cli.demo",
    "ledger.cli.statements",
    "ledger.cli.service",
    "ledger.cli.witness",
    "ledger.cli.integrity",
    "ledger.cli.body",
)
"""Modules that add commands with ``register(app)``; each owns one group of commands."""


_registered: list[bool] = []


def build_app() -> typer.Typer:
    """The ``amnesty`` app with every command module registered (idempotent).

    Registration is not done at import time: the command modules import this module.
    """
    import importlib

    if not _registered:
        _registered.append(True)
        for name in _COMMAND_MODULES:
            importlib.import_module(name).register(app)
    return app


def main() -> None:
    """Console entry point."""
    build_app()()
