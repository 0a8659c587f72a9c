"""``amnesty``: one command for keys, logs, statements, verification, audit and serving.

A thin typer shell over the library: results go to stdout (``--json`` for machines), progress
and logs to stderr, and the exit code carries the verdict (0 ok, 1 verification or audit failed,
2 bad usage or input).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.errors import LedgerError
from ledger.merkle import EMPTY_ROOT
from ledger.note import Signer, VerifierKey

app = typer.Typer(
    name="amnesty",
    help="amnesty-ledger: a verifiable public-commitment ledger for the Model Amnesty offer.",
    no_args_is_help=True,
    add_completion=False,
)
stderr = Console(stderr=True)

DbOption = Annotated[
    str,
    typer.Option(
        "--db", envvar="AMNESTY_DB", help="database URL (sqlite:///f.db, postgresql://…) or path"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error on stderr and exit with ``code``."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def emit(result: Any, as_json: bool, text: str) -> None:
    """Print ``result`` as JSON or ``text`` as plain text on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def write_private_key(path: Path, text: str) -> None:
    """Write a private key file readable by its owner only (created 0600, never replaced)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"couldn't write key {path}: the file exists (refusing to overwrite a key)")
    except OSError as exc:
        fail(f"couldn't write key {path}: {exc}")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


def read_file(path: Path) -> bytes:
    """The bytes of ``path``, or a clear error (exit 2) naming it: missing, unreadable, a
    directory."""
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"couldn't read {path}: {exc.strerror or exc}")


def read_signer(path: Path) -> Signer:
    """Load an Ed25519 signer from a ``PRIVATE+KEY+…`` file."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        fail(f"couldn't read key {path}: {exc}")
    try:
        return Signer.parse_private_key(text)
    except LedgerError as exc:
        fail(f"couldn't load key {path}: {exc}")


class _Rate(ProgressColumn):
    """Entries per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} entries/s", style="progress.data.speed")


def progress_bar(quiet: bool = False) -> Progress:
    """A rich progress bar with rate and ETA, on stderr (``quiet`` hides it)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
        disable=quiet,
    )


# -- keys ---------------------------------------------------------------------------------------


@app.command()
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


@app.command()
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


@app.command()
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
        settings = Settings(db=db, key_path=key, read_only=read_only, witness_policy=witness_policy)
    except ValidationError as exc:
        problems = "; ".join(
            f"AMNESTY_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        fail(f"couldn't start: bad setting ({problems}); see docs/API.md, Settings")
    from api.service import load_signer
    from ledger.logview import LogView
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


@app.command()
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
    from ledger.admission import StatementPolicy
    from ledger.logview import LogView
    from ledger.sequencer import Receipt, Sequencer
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


def open_source(source: str, vkey: str | None) -> tuple[Any, VerifierKey]:
    """Turn SOURCE into a LogSource and the log key to check it with."""
    from ledger.verify import DirectorySource

    if source.startswith(("http://", "https://")):
        from ledger.client import HttpLogSource

        if vkey is None:
            fail("--vkey is required to verify a log over HTTP (trust the key, not the server)")
        return HttpLogSource(source), _parse_vkey(vkey)
    if Path(source).is_dir():
        if vkey is None:
            fail("--vkey is required to verify a mirror directory")
        return DirectorySource(Path(source)), _parse_vkey(vkey)
    from ledger.logview import LogView
    from ledger.storage.sql import SqlLogStore

    try:
        view = LogView(SqlLogStore(source))
    except LedgerError as exc:
        fail(str(exc))
    key = _parse_vkey(vkey) if vkey is not None else view.log_key
    if key.vkey() != view.log_key.vkey():
        fail(
            f"couldn't verify: the database's log key {view.log_key.vkey()} is not {key.vkey()}", 1
        )
    return view, key


def _parse_vkey(vkey: str) -> VerifierKey:
    try:
        return VerifierKey.parse(vkey)
    except LedgerError as exc:
        fail(f"couldn't parse --vkey: {exc}")


_COMMAND_MODULES: tuple[str, ...] = (
    "ledger.cli_verifier",
    "ledger.cli_demo",
    "ledger.cli_statements",
    "ledger.cli_service",
    "ledger.cli_witness",
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


if __name__ == "__main__":
    main()
