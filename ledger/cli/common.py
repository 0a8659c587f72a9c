"""What every command group of ``amnesty`` shares: the typer app, common options, output and
error helpers, key files, the progress bar, and turning a SOURCE argument into a log source.

Conventions every command keeps: results go to stdout (``--json`` for machines), progress and
logs to stderr, and the exit code carries the verdict (0 ok, 1 verification or audit failed, 2 bad
usage or input)."""

from __future__ import annotations

import json
import os
import sys
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

from ledger.errors import LedgerError
from ledger.tlog.note import Signer, VerifierKey

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


def open_source(source: str, vkey: str | None) -> tuple[Any, VerifierKey]:
    """Turn SOURCE into a LogSource and the log key to check it with."""
    from ledger.verifier.sources import DirectorySource

    if source.startswith(("http://", "https://")):
        from ledger.client.source import HttpLogSource

        if vkey is None:
            fail("--vkey is required to verify a log over HTTP (trust the key, not the server)")
        return HttpLogSource(source), parse_vkey_option(vkey)
    if Path(source).is_dir():
        if vkey is None:
            fail("--vkey is required to verify a mirror directory")
        return DirectorySource(Path(source)), parse_vkey_option(vkey)
    from ledger.server.logview import LogView
    from ledger.storage.sql import SqlLogStore

    try:
        view = LogView(SqlLogStore(source))
    except LedgerError as exc:
        fail(str(exc))
    key = parse_vkey_option(vkey) if vkey is not None else view.log_key
    if key.vkey() != view.log_key.vkey():
        fail(
            f"couldn't verify: the database's log key {view.log_key.vkey()} is not {key.vkey()}", 1
        )
    return view, key


def parse_vkey_option(vkey: str) -> VerifierKey:
    try:
        return VerifierKey.parse(vkey)
    except LedgerError as exc:
        fail(f"couldn't parse --vkey: {exc}")
