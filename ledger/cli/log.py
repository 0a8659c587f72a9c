"""The log's own commands: ``keygen``, ``init``, ``serve``, ``append`` and ``add-mldsa-key``."""

from __future__ import annotations

import json
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
    error_code,
    error_object,
    fail,
    fail_with,
    read_file,
    read_log_signers,
    write_private_key,
)
from ledger.errors import LedgerError
from ledger.tlog.checkpoint import Checkpoint, LogSigners
from ledger.tlog.merkle import EMPTY_ROOT

EXIT_UNTRUSTED = 3
"""``amnesty serve`` exit code when the store cannot be trusted: damaged, or not an extension of
the checkpoint the signer remembers publishing (a restored older backup). Nothing was signed."""

# -- keys ---------------------------------------------------------------------------------------


def keygen(
    name: Annotated[str, typer.Argument(help="key name (for a log: its origin)")],
    out: Annotated[Path, typer.Option("--out", help="private key file to create (0600)")],
    log_key: Annotated[
        bool,
        typer.Option(
            "--log",
            help="a log's key file: Ed25519 and ML-DSA-44 keys, both named NAME (the origin)",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate an Ed25519 key (with ``--log``: and an ML-DSA-44 key); write the private key
    file and print the vkey(s), Ed25519 first, one a line."""
    try:
        signers = LogSigners.generate(name, mldsa44=log_key)
    except LedgerError as exc:
        fail_with(exc, 2)
    write_private_key(out, signers.text().rstrip("\n"))
    vkeys = signers.keys().vkeys()
    emit({"vkey": vkeys[0], "vkeys": vkeys, "key_file": str(out)}, as_json, "\n".join(vkeys))


# -- logs ---------------------------------------------------------------------------------------


def init(
    db: DbOption,
    origin: Annotated[
        str, typer.Option("--origin", help="the log's origin line, e.g. example.org/amnesty")
    ],
    key: Annotated[
        Path,
        typer.Option(
            "--key",
            help="the log's key file (name = origin; from `amnesty keygen --log`: Ed25519 and "
            "ML-DSA-44)",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Create a new, empty log (an explicit act: refuses if the database already holds one).

    A key file with an ML-DSA-44 line makes a hybrid log: every checkpoint carries both
    signatures, and the ML-DSA-44 vkey is fixed in the log's identity beside the Ed25519 one."""
    from ledger.storage.base import LogIdentity
    from ledger.storage.sql import SqlLogStore

    signers = read_log_signers(key)
    if signers.name != origin:
        fail(
            f"couldn't create log {origin!r}: the key is named {signers.name!r}; a log key's name is its origin"
        )
    keys = signers.keys()
    try:
        checkpoint = signers.sign(Checkpoint(origin=origin, size=0, root_hash=EMPTY_ROOT))
        store = SqlLogStore(db, create=True)
        store.create_log(
            LogIdentity(
                origin=origin,
                log_vkey=keys.vkey(),
                created_ms=time.time_ns() // 1_000_000,
                key_path=str(key.resolve()),
                mldsa_vkey=keys.mldsa44.vkey() if keys.mldsa44 is not None else None,
            ),
            checkpoint,
        )
        store.close()
    except LedgerError as exc:
        fail_with(exc, 2)
    lines = [f"created log {origin}", f"log vkey: {keys.vkey()}"]
    if keys.mldsa44 is not None:
        lines.append(f"log ML-DSA-44 vkey: {keys.mldsa44.vkey()}")
    else:
        lines.append("no ML-DSA-44 key (make a hybrid log key with `amnesty keygen --log`)")
    emit(
        {"origin": origin, "log_vkey": keys.vkey(), "log_vkeys": keys.vkeys(), "db": db},
        as_json,
        "\n".join(lines),
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
    database, whose write lock and checkpoint compare-and-swap keep them from forking the log,
    and they exit when this supervisor does, even when it is killed. SIGTERM (or Ctrl-C) stops
    taking connections, lets requests in flight finish for up to ``AMNESTY_SHUTDOWN_TIMEOUT_S``,
    commits what the sequencer holds, and exits 0. An empty or missing database is a one-line
    error naming ``amnesty init`` (or ``amnesty demo``).
    """
    import uvicorn
    from pydantic import ValidationError

    from api.app import SUPERVISOR_ENV, create_app
    from api.limits import HEAD_TIMEOUT_ENV, SlowClientProtocol
    from api.observability import configure_json_logging
    from api.settings import Settings

    configure_json_logging(log_level.upper())
    try:
        # Flags only when given, so that AMNESTY_PUBLIC_URL, AMNESTY_KEY_PATH and
        # AMNESTY_READ_ONLY still apply without them (docs/API.md, Settings).
        extra: dict[str, Any] = {} if public_url is None else {"public_url": public_url}
        if key is not None:
            extra["key_path"] = key
        if read_only:
            extra["read_only"] = True
        settings = Settings(db=db, witness_policy=witness_policy, **extra)
    except ValidationError as exc:
        problems = "; ".join(
            f"AMNESTY_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        fail(f"couldn't start: bad setting ({problems}); see docs/API.md, Settings")
    from api.app import preflight
    from ledger.server.published import UntrustedStoreError

    try:
        # Before uvicorn starts: a missing database, a key that is not the log's, or a store
        # that cannot be trusted (damaged, or behind what this log published) is a one-line
        # error here, not a traceback from the application's startup.
        try:
            preflight(settings)
        except UntrustedStoreError as exc:
            fail(f"couldn't start: {exc}", EXIT_UNTRUSTED)
        # The edges every process serves with (docs/OPERATIONS.md, "Hardened edges"): a
        # connection must deliver a request's head in time (SlowClientProtocol reads the bound
        # from the environment, in every worker), idle kept-alive connections close, and on
        # SIGTERM in-flight requests get a bounded time to finish before the sequencer drains.
        os.environ[HEAD_TIMEOUT_ENV] = str(settings.header_timeout_s)
        edges: dict[str, Any] = {
            "http": SlowClientProtocol,
            "timeout_keep_alive": max(1, int(settings.keep_alive_s)),
            "timeout_graceful_shutdown": max(1, int(settings.shutdown_timeout_s)),
            "h11_max_incomplete_event_size": settings.max_header_bytes,
        }
        if workers == 1:
            uvicorn.run(
                create_app(settings),
                host=host,
                port=port,
                log_level=log_level,
                access_log=False,
                **edges,
            )
            return
        # Workers die with this supervisor: each watches that its parent is still this process
        # (and, on Linux, asks the kernel for SIGTERM when it dies), so a supervisor killed
        # with SIGKILL leaves nothing serving or writing (api.app.die_with_supervisor).
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
        # Several processes: each builds the app from the same settings, passed by environment.
        os.environ["AMNESTY_DB"] = settings.db
        os.environ["AMNESTY_READ_ONLY"] = "true" if settings.read_only else "false"
        if settings.key_path is not None:
            os.environ["AMNESTY_KEY_PATH"] = str(settings.key_path.resolve())
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
            **edges,
        )
    except LedgerError as exc:
        fail(str(exc), 1)


BreakOption = Annotated[
    list[str] | None,
    typer.Option(
        "--i-know-this-breaks",
        metavar="COMMITMENT",
        help="append even though the statement breaks this commitment (repeat per commitment): "
        "the log must be able to record a breach honestly, never by accident",
    ),
]


def refuse_breaches(previews: list[Any], allowed: list[str] | None) -> None:
    """Fail (exit 1, code ``would-break``) unless every commitment the previewed statements
    would newly break is acknowledged in ``allowed``; the message names each one."""
    unacknowledged = [
        (number, commitment)
        for number, preview in enumerate(previews)
        for commitment in preview.breaks
        if commitment not in (allowed or [])
    ]
    if unacknowledged:
        named = "; ".join(
            f"statement {number} would break {commitment}" for number, commitment in unacknowledged
        )
        fail(
            f"couldn't append: {named} (see `amnesty statement check`; to record the breach "
            "anyway, pass --i-know-this-breaks COMMITMENT)",
            1,
            kind="would-break",
        )


def append(
    db: DbOption,
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="signed statement files (default: one note per stdin record)"),
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="log key file (default: the one given to init)")
    ] = None,
    i_know_this_breaks: BreakOption = None,
    as_json: JsonOption = False,
) -> None:
    """Append signed statements to a local log, safely alongside a running server, and print
    each one's index and Ref (to cite it in a later statement).

    Statements come from FILES, or from stdin where records are separated by a line holding
    only ``%%`` (a statement note itself contains blank lines). Each is first previewed against
    the log (as ``amnesty statement check`` does): one that would break a commitment is refused
    unless ``--i-know-this-breaks COMMITMENT`` names it.
    """
    import base64

    from ledger.protocol.quoting import quote
    from ledger.server.derived import backfill_derived
    from ledger.server.log_key import LogKeyPolicy, check_key_file
    from ledger.server.logview import LogView
    from ledger.server.published import (
        PublishedCheckpoint,
        UntrustedStoreError,
        published_path_for,
    )
    from ledger.server.sequencer import Receipt, Sequencer
    from ledger.statements.preview import preview_batch
    from ledger.storage.sql import SqlLogStore
    from ledger.tlog.merkle import leaf_hash

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
    except LedgerError as exc:
        fail_with(exc, 2)
    if key is not None:
        key_path = key
    elif view.identity.key_path:
        key_path = Path(view.identity.key_path)
    else:
        fail(
            f"couldn't append to {db}: the log records no key file (it was not created with "
            "`amnesty init`); give the log's private key with --key FILE"
        )
    signers = read_log_signers(key_path)
    try:
        check_key_file(signers, view.identity)
        # The protocol state in the store's derived state, kept current with what is appended
        # (a log without it gets it first, as a starting server would give it).
        backfill_derived(store, view.origin)
        # As a writing server's: the ML-DSA-44 key signs from the entry that anchors it.
        policy = LogKeyPolicy(
            view.origin, store.derived_source(), signers=signers, identity=view.identity
        )
        # The signer's memory of what it published, beside its key (as for `amnesty serve`):
        # a restored older database is refused before anything is signed.
        published = PublishedCheckpoint(published_path_for(key_path), view.log_key, view.origin)
        sequencer = Sequencer(
            store,
            signers.ed25519,
            policy,
            published=published,
            checkpoint_signers=policy.checkpoint_signers,
        )
        prepared = []
        for number, blob in enumerate(blobs):
            try:
                prepared.append(policy.prepare(blob))
            except LedgerError as exc:
                fail_with(exc, 2, f"couldn't append statement {number}")
        sequencer.warm_up()  # the protocol state at the latest checkpoint, for the preview
        latest = view.latest().checkpoint
        state = policy.state
        last = state.log_time_ms_at(state.size - 1) if state.size else 0
        at = max(time.time_ns() // 1_000_000, last)
        previews = preview_batch(
            state, blobs, origin=view.origin, prev_root=latest.root_hash, log_time_ms=at
        )
        refuse_breaches(previews, i_know_this_breaks)
        results = sequencer.sequence_now(prepared)
        if sequencer.fatal is not None:
            raise sequencer.fatal
    except UntrustedStoreError as exc:
        fail_with(exc, EXIT_UNTRUSTED)
    except LedgerError as exc:
        fail_with(exc, 1)
    out: list[dict[str, Any]] = []
    failed = False
    for number, result in enumerate(results):
        if isinstance(result, Receipt):
            ref = {
                "index": result.index,
                "leaf_hash": base64.b64encode(leaf_hash(result.entry)).decode(),
            }
            out.append(
                {
                    "statement": number,
                    "ok": True,
                    "index": result.index,
                    "duplicate": result.duplicate,
                    "ref": ref,
                }
            )
        else:
            failed = True
            out.append(
                {
                    "statement": number,
                    "ok": False,
                    "error": error_object(str(result), error_code(result), 1),
                }
            )
    emit(
        out,
        as_json,
        "\n".join(
            f"statement {o['statement']}: "
            + (
                f"index {o['index']}"
                + (" (already logged)" if o["duplicate"] else "")
                + f", Ref {json.dumps(o['ref'], sort_keys=True)}"
                if o["ok"]
                else f"refused: {quote(o['error']['detail'])}"
            )
            for o in out
        ),
    )
    if failed:
        raise typer.Exit(1)


def add_mldsa_key(
    db: DbOption,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="the log's key file (default: the one given to init)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="write the unsigned statement here (default: stdout)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an ML-DSA-44 key to a log that has none: generate it (named after the origin),
    write it as the key file's second line (the Ed25519 line kept; the file replaced
    atomically), and print the unsigned ``log_key`` statement for the body's members to sign
    (``amnesty sign``) and submit like any statement.

    Until that statement is logged the log signs with Ed25519 only; from the checkpoint that
    includes it on, with both keys. Running it again keeps the key already in the file and
    prints the statement again (docs/OPERATIONS.md, "Adding an ML-DSA-44 key to an existing
    log")."""
    from ledger.server.log_key import (
        add_mldsa_key_to_file,
        check_key_file,
        latest_state,
        log_key_statement,
        vkey_label,
    )
    from ledger.server.logview import LogView
    from ledger.storage.sql import SqlLogStore

    try:
        store = SqlLogStore(db)
        view = LogView(store)
    except LedgerError as exc:
        fail_with(exc, 2)
    origin = view.origin
    if view.identity.mldsa_vkey is not None:
        fail(
            f"couldn't add an ML-DSA-44 key to {origin}: it signs with "
            f"{vkey_label(view.identity.mldsa_vkey)} already; a log adds one ML-DSA-44 key, once"
        )
    key_path = key if key is not None else Path(view.identity.key_path or "")
    if key is None and not view.identity.key_path:
        fail(
            f"couldn't add an ML-DSA-44 key to {origin}: the log records no key file; give "
            "it with --key FILE"
        )
    signers = read_log_signers(key_path)
    try:
        check_key_file(signers, view.identity)
        state = latest_state(store, origin)
        if state.log_key is not None:
            fail(
                f"couldn't add an ML-DSA-44 key to {origin}: entry {state.log_key.index} "
                f"added {vkey_label(state.log_key.vkey)} already"
            )
        keyset = state.keyset
        if keyset is None:
            fail(f"couldn't add an ML-DSA-44 key to {origin}: the log has no keyset yet")
        signers, added = add_mldsa_key_to_file(key_path)
        assert signers.mldsa44 is not None  # add_mldsa_key_to_file gives one
        statement = log_key_statement(
            origin,
            sorted(keyset.members),
            signers.mldsa44.verifier_key,
            time.time_ns() // 1_000_000,
        )
    except LedgerError as exc:
        fail_with(exc, 2)
    finally:
        store.close()
    if out is not None:
        try:
            out.write_text(statement.text, encoding="utf-8")
        except OSError as exc:
            fail(f"couldn't write {out}: {exc}")
    vkey = signers.mldsa44.vkey
    done = "added" if added else "kept (the key file held it already)"
    note = (
        f"ML-DSA-44 key {vkey_label(vkey)} {done} in {key_path}; "
        f"{keyset.threshold} of the {len(keyset.members)} members of the keyset at index "
        f"{keyset.index} sign the statement, then submit it"
    )
    if not as_json:
        print(note, file=sys.stderr)
    emit(
        {
            "mldsa_vkey": vkey,
            "key_file": str(key_path),
            "added": added,
            "statement": statement.text,
            "threshold": keyset.threshold,
            "signers": list(statement.signers),
        },
        as_json,
        statement.text if out is None else f"wrote the unsigned statement to {out}",
    )


def register(app: typer.Typer) -> None:
    """Add the log's commands to ``app``."""
    app.command()(keygen)
    app.command()(init)
    app.command()(serve)
    app.command()(append)
    app.command("add-mldsa-key")(add_mldsa_key)
