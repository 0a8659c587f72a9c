"""The log's own commands: ``keygen``, ``init``, ``serve`` and ``append``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli.common import (
    DbOption,
    JsonOption,
    emit,
    fail,
    read_file,
    read_signer,
    write_private_key,
)
from ledger.errors import LedgerError
from ledger.tlog.checkpoint import Checkpoint, sign_checkpoint
from ledger.tlog.merkle import EMPTY_ROOT
from ledger.tlog.note import Signer

# -- keys ---------------------------------------------------------------------------------------


def keygen(
    name: Annotated[str, typer.Argument(help="key name (for a log: its origin)")],
    out: Annotated[Path, typer.Option("--out", help="private key file to create (0600)")],
    as_json: JsonOption = False,
) -> None:
    """Generate an Ed25519 key; write the private key file and print the vkey."""
    try:
        signer = Signer.generate(name)
    except LedgerError as exc:
        fail(str(exc))
    write_private_key(out, signer.private_key_text())
    emit({"vkey": signer.vkey, "key_file": str(out)}, as_json, signer.vkey)


# -- logs ---------------------------------------------------------------------------------------


def init(
    db: DbOption,
    origin: Annotated[
        str, typer.Option("--origin", help="the log's origin line, e.g. example.org/amnesty")
    ],
    key: Annotated[Path, typer.Option("--key", help="the log's private key file (name = origin)")],
    as_json: JsonOption = False,
) -> None:
    """Create a new, empty log (an explicit act: refuses if the database already holds one)."""
    from ledger.storage.base import LogIdentity
    from ledger.storage.sql import SqlLogStore

    signer = read_signer(key)
    if signer.name != origin:
        fail(
            f"couldn't create log {origin!r}: the key is named {signer.name!r}; a log key's name is its origin"
        )
    try:
        checkpoint = sign_checkpoint(
            Checkpoint(origin=origin, size=0, root_hash=EMPTY_ROOT), signer
        )
        store = SqlLogStore(db, create=True)
        store.create_log(
            LogIdentity(
                origin=origin,
                log_vkey=signer.vkey,
                created_ms=time.time_ns() // 1_000_000,
                key_path=str(key.resolve()),
            ),
            checkpoint,
        )
        store.close()
    except LedgerError as exc:
        fail(str(exc))
    emit(
        {"origin": origin, "log_vkey": signer.vkey, "db": db},
        as_json,
        f"created log {origin}\nlog vkey: {signer.vkey}",
    )


def serve(
    db: DbOption,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8080,
    key: Annotated[
        Path | None, typer.Option("--key", help="log key file (default: the one given to init)")
    ] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="serve reads only")] = False,
    witness_policy: Annotated[
        Path | None,
        typer.Option(
            "--witness-policy",
            help="tlog-policy file; its witnesses with URLs are asked to cosign every checkpoint",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="server processes; each runs its own sequencer on the shared database",
        ),
    ] = 1,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="the public base URL /llms.txt states (default: AMNESTY_PUBLIC_URL, else none)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Serve the log over HTTP (tlog-tiles, JSON API, web page) with uvicorn.

    Logs are JSON lines on stderr. With ``--workers N`` uvicorn runs N processes; they share the
    database, whose write lock and checkpoint compare-and-swap keep them from forking the log.
    """
    import uvicorn
    from pydantic import ValidationError

    from api.app import create_app
    from api.observability import configure_json_logging
    from api.settings import Settings

    configure_json_logging(log_level.upper())
    try:
        # --public-url only when given, so that AMNESTY_PUBLIC_URL still applies without it.
        extra: dict[str, Any] = {} if public_url is None else {"public_url": public_url}
        settings = Settings(
            db=db, key_path=key, read_only=read_only, witness_policy=witness_policy, **extra
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"AMNESTY_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        fail(f"couldn't start: bad setting ({problems}); see docs/API.md, Settings")
    from api.writer import load_signer
    from ledger.server.logview import LogView
    from ledger.storage.sql import SqlLogStore

    try:
        # Before uvicorn starts: a missing database or a key that is not the log's is a
        # one-line error here, not a traceback from the application's startup.
        preflight = SqlLogStore(settings.db)
        try:
            load_signer(settings, LogView(preflight))  # the key exists and is this log's
        finally:
            preflight.close()
        if workers == 1:
            uvicorn.run(
                create_app(settings), host=host, port=port, log_level=log_level, access_log=False
            )
            return
        # Several processes: each builds the app from the same settings, passed by environment.
        os.environ["AMNESTY_DB"] = settings.db
        os.environ["AMNESTY_READ_ONLY"] = "true" if read_only else "false"
        if key is not None:
            os.environ["AMNESTY_KEY_PATH"] = str(key.resolve())
        if witness_policy is not None:
            os.environ["AMNESTY_WITNESS_POLICY"] = str(witness_policy.resolve())
        if settings.public_url is not None:
            os.environ["AMNESTY_PUBLIC_URL"] = settings.public_url
        uvicorn.run(
            "api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=False,
        )
    except LedgerError as exc:
        fail(str(exc), 1)


def append(
    db: DbOption,
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="signed statement files (default: one note per stdin record)"),
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="log key file (default: the one given to init)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Append signed statements to a local log, safely alongside a running server.

    Statements come from FILES, or from stdin where records are separated by a line holding
    only ``%%`` (a statement note itself contains blank lines).
    """
    from ledger.server.admission import StatementPolicy
    from ledger.server.logview import LogView
    from ledger.server.sequencer import Receipt, Sequencer
    from ledger.storage.sql import SqlLogStore

    if files:
        blobs = [read_file(path) for path in files]
    else:
        blobs = [
            (chunk.strip("\n") + "\n").encode()
            for chunk in sys.stdin.read().split("\n%%\n")
            if chunk.strip()
        ]
    try:
        store = SqlLogStore(db)
        view = LogView(store)
        key_path = key if key is not None else Path(view.identity.key_path or "")
        signer = read_signer(key_path)
        policy = StatementPolicy(view.origin)
        sequencer = Sequencer(store, signer, policy)
        prepared = []
        for number, blob in enumerate(blobs):
            try:
                prepared.append(policy.prepare(blob))
            except LedgerError as exc:
                fail(f"couldn't append statement {number}: {exc}")
        results = sequencer.sequence_now(prepared)
    except LedgerError as exc:
        fail(str(exc), 1)
    out: list[dict[str, Any]] = []
    failed = False
    for number, result in enumerate(results):
        if isinstance(result, Receipt):
            out.append({"statement": number, "index": result.index, "duplicate": result.duplicate})
        else:
            failed = True
            out.append({"statement": number, "error": str(result)})
    emit(
        out,
        as_json,
        "\n".join(
            f"statement {o['statement']}: "
            + (
                f"index {o['index']}" + (" (already logged)" if o.get("duplicate") else "")
                if "index" in o
                else f"refused: {o['error']}"
            )
            for o in out
        ),
    )
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the log's commands to ``app``."""
    app.command()(keygen)
    app.command()(init)
    app.command()(serve)
    app.command()(append)
