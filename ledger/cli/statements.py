"""CLI commands for the offline signing workflow: ``statement new``, ``sign``, ``submit``.

A body signs a statement k-of-n like this, with nothing online until the last step::

    amnesty statement new offer --origin example.org/amnesty --body offer.json \\
        --signer "$(cat alice.vkey)" --signer "$(cat bob.vkey)" ... > offer.note
    amnesty sign offer.note --key alice.key      # each member, in any order
    amnesty sign offer.note --key bob.key
    amnesty submit offer.note --url https://ledger.example.org
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli.common import JsonOption, emit, fail, read_file, read_signer
from ledger.errors import LedgerError
from ledger.protocol.statements import STATEMENT_TYPES, parse_body
from ledger.statements.statement import (
    new_statement,
    parse_statement,
    parse_unsigned_statement,
    sign_statement,
    verified_signers,
)

statement_app = typer.Typer(help="Create and inspect statements.", no_args_is_help=True)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"couldn't read JSON from {path}: {exc}")


@statement_app.command("new")
def statement_new(
    statement_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="statement type, e.g. offer")
    ],
    origin: Annotated[str, typer.Option("--origin", help="the log's origin")],
    body: Annotated[Path, typer.Option("--body", help="JSON file with the statement body")],
    signer: Annotated[
        list[str], typer.Option("--signer", help="vkey of a key that may sign (repeat)")
    ],
    time_ms: Annotated[
        int | None, typer.Option("--time-ms", help="signer's time (default now)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="write here instead of stdout")] = None,
) -> None:
    """Write an unsigned statement (header line + canonical JSON line), checked against its schema."""
    registered = STATEMENT_TYPES.get(statement_type)
    if registered is None:
        fail(
            f"couldn't build statement: unknown type {statement_type!r}; one of {sorted(STATEMENT_TYPES)}"
        )
    body_value = _load_json(body)
    try:
        parse_body(statement_type, registered[0], body_value)
        statement = new_statement(
            type=statement_type,
            v=registered[0],
            origin=origin,
            signers=signer,
            time_ms=time_ms if time_ms is not None else time.time_ns() // 1_000_000,
            body=body_value,
        )
    except LedgerError as exc:
        fail(str(exc))
    if out is None:
        sys.stdout.write(statement.text)
    else:
        out.write_text(statement.text, encoding="utf-8")


@statement_app.command("show")
def statement_show(
    file: Annotated[Path, typer.Argument(help="statement file (signed or not)")],
    as_json: JsonOption = False,
) -> None:
    """Decode a statement and report which listed signers' signatures verify."""
    data = read_file(file)
    try:
        if b"\n\n" in data:
            signed = parse_statement(data)
            statement = signed.statement
            verified = sorted(verified_signers(signed))
        else:
            statement = parse_unsigned_statement(data)
            verified = []
        parse_body(statement.type, statement.v, statement.body)
    except LedgerError as exc:
        fail(str(exc), 1)
    result = {
        "type": statement.type,
        "v": statement.v,
        "origin": statement.origin,
        "time_ms": statement.time_ms,
        "statement_id": statement.statement_id.hex(),
        "signers": list(statement.signers),
        "verified_signers": verified,
        "body": statement.body,
    }
    emit(
        result,
        as_json,
        f"{statement.type} v{statement.v} for {statement.origin}\n"
        f"statement id {statement.statement_id.hex()}\n"
        f"signed by {len(verified)} of {len(statement.signers)} listed signers",
    )


def sign(
    file: Annotated[
        Path, typer.Argument(help="statement file; the signature line is added in place")
    ],
    key: Annotated[Path, typer.Option("--key", help="your private key file")],
) -> None:
    """Add your signature line to a statement (idempotent; order of members does not matter)."""
    signer = read_signer(key)
    try:
        signed = sign_statement(read_file(file), signer)
    except LedgerError as exc:
        fail(str(exc))
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_bytes(signed)
    tmp.replace(file)
    typer.echo(f"signed {file} as {signer.vkey}", err=True)


def submit(
    file: Annotated[Path, typer.Argument(help="signed statement file")],
    url: Annotated[str, typer.Option("--url", envvar="AMNESTY_URL", help="the log service URL")],
    proof_out: Annotated[
        Path | None, typer.Option("--proof-out", help="write the C2SP tlog-proof here")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a signed statement; prints its index once it is durably logged."""
    from ledger.client.source import HttpLogSource

    data = read_file(file)
    source = HttpLogSource(url)
    try:
        receipt = source.post_statement(data)
    except LedgerError as exc:
        fail(str(exc), 1)
    finally:
        source.close()
    if proof_out is not None:
        proof_out.write_text(receipt["tlog_proof"], encoding="utf-8")
    emit(
        receipt,
        as_json,
        f"logged at index {receipt['index']}"
        + (" (already logged)" if receipt.get("duplicate") else ""),
    )


def register(app: typer.Typer) -> None:
    """Add the statement workflow commands to the ``amnesty`` app."""
    app.add_typer(statement_app, name="statement")
    app.command()(sign)
    app.command()(submit)
