"""CLI commands ``amnesty witness keygen`` and ``amnesty witness serve`` (C2SP tlog-witness)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import JsonOption, emit, fail, fail_with, stderr, write_private_key
from ledger.errors import LedgerError
from ledger.tlog.note import VerifierKey

witness_app = typer.Typer(
    name="witness",
    help="Run a tlog-witness: cosign checkpoints of the logs you watch, refuse split views.",
    no_args_is_help=True,
)


@witness_app.command("keygen")
def keygen(
    name: Annotated[
        str, typer.Argument(help="the witness's key name, a schema-less URL: witness.example/w1")
    ],
    out: Annotated[Path, typer.Option("--out", help="private key file to create (0600)")],
    mldsa44: Annotated[
        bool,
        typer.Option(
            "--mldsa44",
            help="also an ML-DSA-44 key (type 0x06) under the same name: the witness then "
            "answers every cosignature request with both lines",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate a witness key (cosignature/v1, type 0x04; with --mldsa44 also an ML-DSA-44
    key, type 0x06); write the key file and print the vkey(s), one a line, 0x04 first."""
    from ledger.tlog.checkpoint import CosignatureSigner
    from ledger.tlog.note import ALG_MLDSA44

    try:
        signers = [CosignatureSigner.generate(name)]
        if mldsa44:
            signers.append(CosignatureSigner.generate(name, ALG_MLDSA44))
    except LedgerError as exc:
        fail_with(exc, 2)
    write_private_key(out, "\n".join(s.private_key_text() for s in signers))
    vkeys = [s.vkey for s in signers]
    emit({"vkey": vkeys[0], "vkeys": vkeys, "key_file": str(out)}, as_json, "\n".join(vkeys))


@witness_app.command("serve")
def serve(
    key: Annotated[Path, typer.Option("--key", help="the witness's private key file")],
    state: Annotated[
        Path,
        typer.Option(
            "--state",
            help="the witness's state file (JSON); created if missing. Never delete or roll "
            "it back: a witness that forgets can be shown a split view",
        ),
    ],
    logs: Annotated[
        list[str],
        typer.Option(
            "--log",
            help="vkey of a log to witness, Ed25519 (0x01) or ML-DSA-44 (0x06); repeat for "
            "several logs or keys",
        ),
    ],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 7380,
    prefix: Annotated[
        str, typer.Option("--prefix", help="submission prefix, e.g. /witness (default: none)")
    ] = "",
    monitoring_prefix: Annotated[
        str | None,
        typer.Option(
            "--monitoring-prefix",
            help="prefix of the read endpoint GET <prefix>/<origin hash>/checkpoint (default: "
            "the submission prefix)",
        ),
    ] = None,
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="directory for evidence of refused split views"),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Serve POST <prefix>/add-checkpoint and GET <monitoring prefix>/<origin hash>/checkpoint
    with uvicorn until interrupted."""
    import uvicorn

    from api.witness_app import WitnessSettings, build_witness, create_witness_app, monitoring
    from ledger.witness.witness import checkpoint_path

    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format='{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
    )
    existed = state.exists()
    settings = WitnessSettings(
        key_path=key,
        state_path=state,
        log_vkeys=tuple(logs),
        prefix=prefix,
        monitoring_prefix=monitoring_prefix,
        create_state=True,
        evidence_dir=evidence,
    )
    try:
        witness = build_witness(settings)
    except LedgerError as exc:
        fail_with(exc, 2)
    reads = monitoring(settings)
    if not existed:
        stderr.print(f"created a new, empty witness state {state}", highlight=False)
    stderr.print(
        f"witness {' '.join(s.vkey for s in witness.signers)}\nwitnessing {', '.join(witness.origins)}\n"
        f"listening on http://{host}:{port}{prefix}/add-checkpoint\n"
        f"reads on http://{host}:{port}{reads}/<origin hash>/checkpoint, e.g. "
        + ", ".join(f"{reads}{checkpoint_path(origin)}" for origin in witness.origins),
        highlight=False,
    )
    try:
        uvicorn.run(
            create_witness_app(settings),
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
        )
    except LedgerError as exc:
        fail_with(exc, 1)


@witness_app.command("log-list-entry")
def log_list_entry_command(
    contact: Annotated[
        str, typer.Option("--contact", help="how witness operators reach you (e-mail or URL)")
    ],
    db: Annotated[
        str | None,
        typer.Option("--db", envvar="AMNESTY_DB", help="the log's database (for its key)"),
    ] = None,
    vkey: Annotated[
        str | None, typer.Option("--vkey", help="the log's Ed25519 vkey (instead of --db)")
    ] = None,
    min_interval: Annotated[
        float,
        typer.Option(
            "--min-interval",
            min=1,
            help="seconds between two requests to one witness, as the log is configured "
            "(AMNESTY_WITNESS_MIN_INTERVAL_S); qpd = ceil(86400 / this)",
        ),
    ] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Print this log's entry for the public witness network's log list (logs/v0: vkey,
    origin, qpd, contact), validated against the format; send it with your application."""
    from ledger.witness.cosigner import Pacing
    from ledger.witness.loglist import log_list_entry

    if (db is None) == (vkey is None):
        fail("give the log's key with exactly one of --db and --vkey")
    try:
        if vkey is not None:
            key = VerifierKey.parse(vkey)
        else:
            from ledger.storage.sql import SqlLogStore

            store = SqlLogStore(str(db))
            try:
                key = VerifierKey.parse(store.identity().log_vkey)
            finally:
                store.close()
        qpd = Pacing(min_interval_s=min_interval).qpd
        entry = log_list_entry(key, qpd, contact)
    except LedgerError as exc:
        fail_with(exc, 2)
    emit(
        {
            "vkey": entry.vkey.vkey(),
            "origin": entry.origin,
            "qpd": entry.qpd,
            "contact": entry.contact,
            "entry": entry.text(),
        },
        as_json,
        entry.text(),
    )


def register(app: typer.Typer) -> None:
    """Add the ``amnesty witness`` command group to the ``amnesty`` app."""
    app.add_typer(witness_app, name="witness")
