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

from ledger.atomic import write_atomically
from ledger.cli.common import JsonOption, emit, fail, fail_with, read_file, read_signer
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
    ref: Annotated[
        list[str] | None,
        typer.Option(
            "--ref",
            metavar="FIELD=INDEX",
            help="set body FIELD (dotted path; FIELD[] appends to a list) to the Ref of entry "
            "INDEX, its leaf hash read from --log (repeat)",
        ),
    ] = None,
    log: Annotated[
        str | None,
        typer.Option("--log", help="the log the Refs are read from: URL, mirror or database"),
    ] = None,
    vkey: Annotated[
        str | None, typer.Option("--vkey", help="the log's vkey (URLs and mirror directories)")
    ] = None,
) -> None:
    """Write an unsigned statement (header line + canonical JSON line), checked against its schema.

    With ``--ref FIELD=INDEX --log SOURCE`` a reference is filled in from the log, each entry
    proven in the log's signed checkpoint: ``--ref application=5`` sets ``body.application``
    to ``{"index": 5, "leaf_hash": …}``; ``--ref findings[]=7`` appends to ``body.findings``.
    """
    registered = STATEMENT_TYPES.get(statement_type)
    if registered is None:
        fail(
            f"couldn't build statement: unknown type {statement_type!r}; one of {sorted(STATEMENT_TYPES)}"
        )
    body_value = _load_json(body)
    if ref:
        if log is None:
            fail("couldn't fill --ref: give the log to read entries from with --log SOURCE")
        _fill_refs(body_value, ref, log, vkey)
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
        fail_with(exc, 2)
    if out is None:
        sys.stdout.write(statement.text)
    else:
        out.write_text(statement.text, encoding="utf-8")


def _fill_refs(body: Any, refs: list[str], log: str, vkey: str | None) -> None:
    """Set each ``FIELD=INDEX`` of ``refs`` in ``body`` to the Ref of entry INDEX of ``log``,
    read with an inclusion proof against its signed checkpoint (never a guessed hash)."""
    from ledger.cli.body import ref_of
    from ledger.cli.common import fail_with, open_source
    from ledger.verifier.proofs import entry_proof, verify_entry_proof

    if not isinstance(body, dict):
        fail("couldn't fill --ref: the body is not a JSON object")
    log_source, log_key = open_source(log, vkey)
    for spec in refs:
        field, sep, number = spec.rpartition("=")
        if not sep or not field or not number.isdecimal():
            fail(f"couldn't read --ref {spec!r}: write FIELD=INDEX, e.g. application=5")
        index = int(number)
        try:
            proven = verify_entry_proof(entry_proof(log_source, log_key, index), log_key)
        except LedgerError as exc:
            fail_with(exc, 1, f"couldn't read entry {index} for --ref {spec!r}")
        value = ref_of(index, proven.entry.leaf_hash())
        *parents, last = field.split(".")
        target = body
        for name in parents:
            target = target.setdefault(name, {})
            if not isinstance(target, dict):
                fail(f"couldn't set --ref {spec!r}: body.{name} is not an object")
        if last.endswith("[]"):
            items = target.setdefault(last[:-2], [])
            if not isinstance(items, list):
                fail(f"couldn't set --ref {spec!r}: body.{last[:-2]} is not a list")
            items.append(value)
        else:
            target[last] = value


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
        fail_with(exc, 1)
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
        write_atomically(file, signed, what=f"the signed statement {file}")
    except LedgerError as exc:
        fail_with(exc, 2)
    typer.echo(f"signed {file} as {signer.vkey}", err=True)


def submit(
    file: Annotated[Path, typer.Argument(help="signed statement file")],
    url: Annotated[str, typer.Option("--url", envvar="AMNESTY_URL", help="the log service URL")],
    proof_out: Annotated[
        Path | None, typer.Option("--proof-out", help="write the C2SP tlog-proof here")
    ] = None,
    vkey: Annotated[
        str | None,
        typer.Option(
            "--vkey",
            envvar="AMNESTY_LOG_VKEY",
            help="the log's vkey: verify the log and preview the statement first (as "
            "`statement check`), refusing one that would break a commitment",
        ),
    ] = None,
    i_know_this_breaks: Annotated[
        list[str] | None,
        typer.Option(
            "--i-know-this-breaks",
            metavar="COMMITMENT",
            help="submit even though the statement breaks this commitment (repeat)",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a signed statement; prints its index and Ref once it is durably logged.

    With ``--vkey`` (or ``AMNESTY_LOG_VKEY``) the log is verified here and the statement
    previewed against it first: one that would break a commitment is refused unless
    ``--i-know-this-breaks COMMITMENT`` names it."""
    import base64

    from ledger.cli.common import fail_with
    from ledger.client.source import HttpLogSource
    from ledger.tlog.merkle import leaf_hash

    data = read_file(file)
    if vkey is None:
        typer.echo(
            "note: no --vkey: the statement was not previewed against the log (see "
            "`amnesty statement check`)",
            err=True,
        )
    else:
        from ledger.cli.body import judged_time, preview_against, verified_log
        from ledger.cli.log import refuse_breaches

        result = verified_log(url, vkey, None, quiet=True)
        refuse_breaches(
            [preview_against(result, data, judged_time(result, None))], i_know_this_breaks
        )
    source = HttpLogSource(url)
    try:
        receipt = source.post_statement(data)
    except LedgerError as exc:
        fail_with(exc, 1)
    finally:
        source.close()
    if proof_out is not None:
        proof_out.write_text(receipt["tlog_proof"], encoding="utf-8")
    # The Ref is computed here from the entry bytes the receipt carries.
    entry = base64.b64decode(str(receipt.get("entry_b64", "")))
    ref = {"index": receipt["index"], "leaf_hash": base64.b64encode(leaf_hash(entry)).decode()}
    emit(
        {**receipt, "ref": ref},
        as_json,
        f"logged at index {receipt['index']}"
        + (" (already logged)" if receipt.get("duplicate") else "")
        + f", Ref {json.dumps(ref, sort_keys=True)}",
    )


def register(app: typer.Typer) -> None:
    """Add the statement workflow commands to the ``amnesty`` app."""
    app.add_typer(statement_app, name="statement")
    app.command()(sign)
    app.command()(submit)
