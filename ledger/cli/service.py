"""CLI command ``amnesty mcp``: an MCP server for AI clients over a running log service."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from ledger.cli.common import KeyPolicyOption, fail, fail_with
from ledger.errors import LedgerError
from ledger.tlog.checkpoint import pin_log_key


def mcp(
    url: Annotated[str, typer.Argument(help="the log service's base URL, e.g. http://host:8080")],
    vkey: Annotated[
        str,
        typer.Option(
            "--vkey",
            envvar="AMNESTY_LOG_VKEY",
            help="the log's vkey, obtained independently of the server: every answer is "
            "verified against it (or its vkeys separated by spaces, Ed25519 and ML-DSA-44)",
        ),
    ],
    key_policy: KeyPolicyOption = None,
    http: Annotated[
        bool,
        typer.Option("--http", help="serve MCP streamable HTTP instead of stdio"),
    ] = False,
    host: Annotated[str, typer.Option("--host", help="address for --http")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port for --http (path /mcp)")] = 8765,
    trusted_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--trusted-checkpoint",
            help="a checkpoint note verified earlier: every checkpoint the server shows must "
            "be consistent with it",
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="keep the local verified replica in this trust-state file (as `amnesty verify "
            "--state` writes it): read at start, written as it advances and at exit, so a "
            "restart verifies only what is new",
        ),
    ] = None,
    max_catch_up: Annotated[
        int,
        typer.Option(
            "--max-catch-up",
            min=0,
            help="new entries verified within one tool call; beyond that, answers about the "
            "precedent, subjects and the offer are labelled UNVERIFIED while the replica "
            "catches up in the background",
        ),
    ] = 10_000,
) -> None:
    """Serve the log to a model client over MCP (stdio by default), labelling every answer
    [verified: …] (checked here against the vkey) or [UNVERIFIED: …] (the server's word).

    Tools: get_offer, list_offer_versions, get_precedent, get_subject, get_due, get_entry,
    get_inclusion_proof, verify_tlog_proof, verify_statement, prepare_application,
    submit_statement, get_log_info. See docs/MCP.md for client configuration.
    """
    from ledger.client.mcp_server import serve

    try:
        pin_log_key(vkey, key_policy)
    except LedgerError as exc:
        fail_with(exc, 2, "couldn't parse --vkey")
    note: bytes | None = None
    if trusted_checkpoint is not None:
        try:
            note = trusted_checkpoint.read_bytes()
        except OSError as exc:
            fail(f"couldn't read {trusted_checkpoint}: {exc}")
    # stdout is the MCP channel under stdio: logs go to stderr only.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    transport: Literal["stdio", "streamable-http"] = "streamable-http" if http else "stdio"
    try:
        serve(
            url,
            vkey,
            transport=transport,
            host=host,
            port=port,
            trusted_checkpoint=note,
            state_path=state,
            max_catch_up=max_catch_up,
            key_policy=key_policy,
        )
    except LedgerError as exc:
        fail_with(exc, 1)


def register(app: typer.Typer) -> None:
    """Add ``amnesty mcp`` to the ``amnesty`` app."""
    app.command()(mcp)
