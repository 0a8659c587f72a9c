"""CLI commands ``amnesty witness keygen`` and ``amnesty witness serve`` (C2SP tlog-witness)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import JsonOption, emit, fail, stderr, write_private_key
from ledger.errors import LedgerError

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
    as_json: JsonOption = False,
) -> None:
    """Generate a witness key (cosignature/v1, type 0x04); write it and print its vkey."""
    from ledger.tlog.checkpoint import CosignatureSigner

    try:
        signer = CosignatureSigner.generate(name)
    except LedgerError as exc:
        fail(str(exc))
    write_private_key(out, signer.private_key_text())
    emit({"vkey": signer.vkey, "key_file": str(out)}, as_json, signer.vkey)


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
        typer.Option("--log", help="vkey of a log to witness (repeat for several logs or keys)"),
    ],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 7380,
    prefix: Annotated[
        str, typer.Option("--prefix", help="submission prefix, e.g. /witness (default: none)")
    ] = "",
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="directory for evidence of refused split views"),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Serve POST <prefix>/add-checkpoint with uvicorn until interrupted."""
    import uvicorn

    from api.witness_app import WitnessSettings, build_witness, create_witness_app

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
        create_state=True,
        evidence_dir=evidence,
    )
    try:
        witness = build_witness(settings)
    except LedgerError as exc:
        fail(str(exc))
    if not existed:
        stderr.print(f"created a new, empty witness state {state}", highlight=False)
    stderr.print(
        f"witness {witness.signer.vkey}\nwitnessing {', '.join(witness.origins)}\n"
        f"listening on http://{host}:{port}{prefix}/add-checkpoint",
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
        fail(str(exc), 1)


def register(app: typer.Typer) -> None:
    """Add the ``amnesty witness`` command group to the ``amnesty`` app."""
    app.add_typer(witness_app, name="witness")
