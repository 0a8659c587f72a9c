"""What every command group of ``amnesty`` shares: the typer app, common options, output and
error helpers, key files, the progress bar, and turning a SOURCE argument into a log source.

Conventions every command keeps: results go to stdout (``--json`` for machines), progress and
logs to stderr, and the exit code carries the verdict (0 ok, 1 verification or audit failed, 2 bad
usage or input).

Errors: every command reports a failure the same way, through :func:`fail` — a line on stderr,
and with ``--json`` also one object on stdout, ``{"ok": false, "error": {"code", "type",
"detail", "exit"}}`` (:func:`error_object`), whose ``code`` is one of :data:`ERROR_CODES`, the
same as the last path segment of the HTTP API's problem ``type`` for the same error family
(``api/problems.py``; ``tests/test_cli_errors.py`` holds them equal)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

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
from ledger.tlog.note import Signer

if TYPE_CHECKING:
    from ledger.tlog.checkpoint import LogKey, LogSigners

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


ERROR_TYPE_BASE = "https://amnesty-ledger.invalid/problems/"
"""The base of the API's problem types; a CLI error's ``type`` is this plus its ``code``."""

ERROR_CODES: dict[str, str] = {
    "not-found": "nothing at that index, id or key",
    "duplicate": "already logged",
    "signature": "a signature or the signers' authority failed",
    "verification": "the log, a proof or a checkpoint failed verification",
    "malformed": "input not in the format",
    "refused": "refused by the protocol's admission rules (or a time the log refuses)",
    "would-break": "refused: the statement would break a commitment (see --i-know-this-breaks)",
    "busy": "the sequencer's queue is full",
    "halted": "the log halted",
    "storage": "the database failed or is unavailable",
    "invalid-parameters": "bad usage: an option, argument or file",
    "bad-request": "any other error",
}
"""Every stable error code of ``--json`` output, with what it means (docs/CLI-ERRORS in
docs/WALKTHROUGH.md)."""


def error_code(exc: LedgerError) -> str:
    """The stable code of an error family: the API's problem kind for it."""
    from ledger.errors import (
        ConflictError,
        DuplicateError,
        FatalError,
        MalformedError,
        RefusedError,
        SignatureError,
        StorageError,
        VerificationError,
    )

    if type(exc).__name__ == "NotFoundError":  # ledger.server.logview's, imported lazily
        return "not-found"
    if isinstance(exc, DuplicateError):
        return "duplicate"
    if isinstance(exc, SignatureError):
        return "signature"
    if isinstance(exc, VerificationError):
        return "verification"
    if isinstance(exc, MalformedError):
        return "malformed"
    if isinstance(exc, RefusedError):
        return "refused"
    if type(exc).__name__ == "QueueFullError":
        return "busy"
    if isinstance(exc, FatalError):
        return "halted"
    if isinstance(exc, ConflictError | StorageError):
        return "storage"
    return "bad-request"


def error_object(detail: str, code: str, exit_code: int) -> dict[str, Any]:
    """The one JSON shape of an error: ``{"code", "type", "detail", "exit"}``."""
    return {"code": code, "type": ERROR_TYPE_BASE + code, "detail": detail, "exit": exit_code}


def _json_requested() -> bool:
    """Whether the command being run was given ``--json`` (its ``as_json`` parameter)."""
    # typer vendors click: the running command's context is kept there.
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    return bool(ctx is not None and ctx.params.get("as_json"))


def fail(message: str, code: int = 2, *, kind: str | None = None) -> NoReturn:
    """Report an error and exit with ``code``: a line on stderr, and under ``--json`` the
    :func:`error_object` on stdout too. ``kind`` is its :data:`ERROR_CODES` code (default:
    ``invalid-parameters`` for exit 2, else ``bad-request``)."""
    if kind is None:
        kind = "invalid-parameters" if code == 2 else "bad-request"
    if _json_requested():
        sys.stdout.write(
            json.dumps({"ok": False, "error": error_object(message, kind, code)}, sort_keys=True)
            + "\n"
        )
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def fail_with(exc: LedgerError, code: int, context: str | None = None) -> NoReturn:
    """:func:`fail` for a core error: its message (after ``context: ``, if given) and code."""
    fail(str(exc) if context is None else f"{context}: {exc}", code, kind=error_code(exc))


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
        fail_with(exc, 2, f"couldn't load key {path}")


def read_log_signers(path: Path) -> LogSigners:
    """Load a log's key file: an Ed25519 line, then (a hybrid log) an ML-DSA-44 line."""
    from ledger.tlog.checkpoint import LogSigners

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"couldn't read key {path}: {exc}")
    try:
        return LogSigners.parse(text)
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


KeyPolicyOption = Annotated[
    str | None,
    typer.Option(
        "--key-policy",
        envvar="AMNESTY_KEY_POLICY",
        help="which pinned log key(s) must sign each checkpoint: ed25519, mldsa44 or both "
        "(default: both when --vkey pins both)",
    ),
]


def open_source(source: str, vkey: str | None, key_policy: str | None = None) -> tuple[Any, LogKey]:
    """Turn SOURCE into a LogSource and the log key(s) to check it with.

    ``vkey`` holds the log's vkeys separated by whitespace (Ed25519, and its ML-DSA-44 vkey to
    pin a hybrid log); ``key_policy`` says which must verify (:class:`KeyPolicy`). A database
    source defaults to the keys it was created with."""
    from ledger.verifier.sources import DirectorySource

    if source.startswith(("http://", "https://")):
        from ledger.client.source import HttpLogSource

        if vkey is None:
            fail("--vkey is required to verify a log over HTTP (trust the key, not the server)")
        return HttpLogSource(source), parse_vkey_option(vkey, key_policy)
    if Path(source).is_dir():
        if vkey is None:
            fail("--vkey is required to verify a mirror directory")
        return DirectorySource(Path(source)), parse_vkey_option(vkey, key_policy)
    from ledger.server.logview import LogView
    from ledger.storage.sql import SqlLogStore

    try:
        view = LogView(SqlLogStore(source))
    except LedgerError as exc:
        fail_with(exc, 2)
    if vkey is not None:
        key = parse_vkey_option(vkey, key_policy)
    else:
        key = parse_vkey_option(" ".join(view.log_keys.vkeys()), key_policy)
    if key.vkey() != view.log_key.vkey():
        fail(
            f"couldn't verify: the database's log key {view.log_key.vkey()} is not {key.vkey()}", 1
        )
    return view, key


def parse_vkey_option(vkey: str, key_policy: str | None = None) -> LogKey:
    """``--vkey``: one vkey, or the log's vkeys separated by whitespace (as ``/v1/log``'s
    ``log_vkeys``), with ``--key-policy``; a single Ed25519 vkey without a policy stays a
    bare key."""
    from ledger.tlog.checkpoint import pin_log_key

    try:
        return pin_log_key(vkey, key_policy)
    except LedgerError as exc:
        fail_with(exc, 2, "couldn't parse --vkey")
