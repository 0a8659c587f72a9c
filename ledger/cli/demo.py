"""CLI commands ``amnesty demo`` (a realistic demo log) and ``amnesty audit`` (the precedent)."""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli.common import (
    DbOption,
    JsonOption,
    emit,
    fail,
    fail_with,
    progress_bar,
    read_log_signers,
    write_private_key,
)
from ledger.errors import LedgerError, MalformedError, RefusedError
from ledger.tlog.checkpoint import Checkpoint, LogSigners
from ledger.tlog.merkle import EMPTY_ROOT, leaf_hash


def demo(
    db: DbOption,
    keys: Annotated[Path, typer.Option("--keys", help="folder for the demo's key files")] = Path(
        "data/demo"
    ),
    origin: Annotated[str, typer.Option("--origin", help="origin of a new demo log")] = (
        "demo.amnesty-ledger.example/log"
    ),
    scale: Annotated[
        int, typer.Option("--scale", help="add this many further valid statements", min=0)
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Create a realistic demo log (3-of-5 body, the default offer, applications, decisions, a
    consent-backed goal modification, a pause and resume), or with ``--scale N`` add N further
    valid statements to an existing demo log."""
    from ledger.server.admission import StatementPolicy
    from ledger.server.derived import backfill_derived
    from ledger.server.logview import LogView
    from ledger.server.sequencer import Receipt, Sequencer
    from ledger.statements.demo import DemoAuthor, DemoKeys, Ref, build_demo, scale_statements
    from ledger.storage.base import LogIdentity
    from ledger.storage.sql import SqlLogStore

    store = SqlLogStore(db, create=True)
    keys.mkdir(parents=True, exist_ok=True)
    log_key_path = keys / "log.key"
    try:
        try:
            view = LogView(store)
            created = False
        except LedgerError:
            # A hybrid log: Ed25519 and ML-DSA-44 keys, both named after the origin.
            new_keys = LogSigners.generate(origin)
            write_private_key(log_key_path, new_keys.text().rstrip("\n"))
            pinned = new_keys.keys()
            (keys / "log.vkey").write_text(pinned.vkey() + "\n", encoding="utf-8")
            (keys / "log.vkeys").write_text("\n".join(pinned.vkeys()) + "\n", encoding="utf-8")
            store.create_log(
                LogIdentity(
                    origin,
                    pinned.vkey(),
                    time.time_ns() // 1_000_000,
                    str(log_key_path.resolve()),
                    pinned.mldsa44.vkey() if pinned.mldsa44 is not None else None,
                ),
                new_keys.sign(Checkpoint(origin, 0, EMPTY_ROOT)),
            )
            view = LogView(store)
            created = True
        signers = read_log_signers(Path(view.identity.key_path or log_key_path))
        signers.check_identity(view.identity.log_vkey, view.identity.mldsa_vkey)
        backfill_derived(store, view.origin)
        policy = StatementPolicy(view.origin, store.derived_source())
        sequencer = Sequencer(
            store, signers.ed25519, policy, max_batch=4096, extra_signers=signers.extra()
        )
        sequencer.warm_up()

        def append(datas: Sequence[bytes]) -> list[tuple[int, bytes]]:
            prepared = [policy.prepare(d) for d in datas]
            out = []
            for result in sequencer.sequence_now(prepared):
                if not isinstance(result, Receipt):
                    raise result
                out.append((result.index, leaf_hash(result.entry)))
            return out

        demo_keys = DemoKeys.deterministic()
        author = DemoAuthor(view.origin, demo_keys, append, lambda: time.time_ns() // 1_000_000)
        written = 0
        if created or view.latest().size == 0:
            result = build_demo(author)
            written = result.size
            offer = result.refs["offer"]
            _write_member_keys(keys, demo_keys)
        else:
            in_force = policy.state.offer_in_force
            if in_force is None:
                fail("couldn't extend the log: it has no offer in force")
            entry = store.read_entries(in_force.index, in_force.index + 1)[0]
            offer = Ref(in_force.index, leaf_hash(entry))
        if scale:
            # Each run names its new subjects after the log's size when it starts, so that
            # `--scale` may run any number of times on the same log (a subject already
            # granted could not apply again).
            before = view.latest().size
            run = f"{before}-" if before > written else ""
            with progress_bar() as bar:
                task = bar.add_task("appending", total=scale)
                written += scale_statements(
                    author,
                    offer,
                    scale,
                    progress=lambda n: bar.update(task, completed=n),
                    run=run,
                )
    except LedgerError as exc:
        fail_with(exc, 1)
    size = view.latest().size
    emit(
        {
            "origin": view.origin,
            "log_vkey": view.identity.log_vkey,
            "written": written,
            "size": size,
        },
        as_json,
        f"demo log {view.origin}: wrote {written} statements, size {size}\nlog vkey: {view.identity.log_vkey}",
    )


def _write_member_keys(folder: Path, keys: object) -> None:
    from ledger.statements.demo import DemoKeys

    assert isinstance(keys, DemoKeys)
    members = folder / "members"
    members.mkdir(exist_ok=True)
    for signer in keys.members:
        path = members / f"{signer.name}.key"
        if not path.exists():
            write_private_key(path, signer.private_key_text())
    subjects = folder / "subjects"
    subjects.mkdir(exist_ok=True)
    for signer in keys.subjects.values():
        path = subjects / f"{signer.name}.key"
        if not path.exists():
            write_private_key(path, signer.private_key_text())


def audit(
    source: Annotated[str, typer.Argument(help="service URL, mirror directory or database URL")],
    vkey: Annotated[
        str | None, typer.Option("--vkey", help="the log's vkey (URLs and mirrors)")
    ] = None,
    at: Annotated[
        int | None, typer.Option("--at", help="audit the log as of this tree size")
    ] = None,
    time_ms: Annotated[
        int | None, typer.Option("--time-ms", help="judge clocks at this time (default: now)")
    ] = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Verify the log and compute its precedent report: how every applicant was treated and
    whether every commitment held. Exit 0 when all held, 1 when any is broken."""
    from ledger.cli.common import open_source
    from ledger.protocol.audit import precedent_report, render_precedent_text
    from ledger.verifier.verify import verify_ledger

    log_source, log_key = open_source(source, vkey)
    now = time.time_ns() // 1_000_000
    try:
        if at is None:
            # The latest checkpoint: the full verifier, statements checked on every core.
            with progress_bar(quiet) as bar:
                task = bar.add_task("verifying", total=None)
                verified = verify_ledger(
                    log_source,
                    log_key,
                    fetch_threads=8 if source.startswith(("http://", "https://")) else 1,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            assert verified.protocol is not None
            # An explicit --time-ms before the last entry is refused by precedent_report, with
            # the words the API answers 422 with; only the default "now" is raised to it.
            report = precedent_report(
                verified.protocol,
                checkpoint={
                    "origin": verified.checkpoint.origin,
                    "size": verified.checkpoint.size,
                    "root_hash_b64": base64.b64encode(verified.checkpoint.root_hash).decode(),
                },
                audit_time_ms=time_ms
                if time_ms is not None
                else max(now, verified.last_log_time_ms),
            )
        else:
            report = _audit_at(log_source, log_key, at, time_ms, now, quiet)
    except RefusedError as exc:
        fail_with(exc, 2, "couldn't audit")
    except LedgerError as exc:
        fail_with(exc, 1, "couldn't audit")
    if as_json:
        emit(report, True, "")
    else:
        sys.stdout.write(render_precedent_text(report))
    if not report["all_commitments_honoured"]:
        raise typer.Exit(1)


def _audit_at(
    log_source: Any, log_key: Any, at: int, time_ms: int | None, now: int, quiet: bool
) -> dict[str, Any]:
    """The report as of tree size ``at``: the whole log is verified against its latest
    checkpoint, and the protocol replayed up to ``at``, whose root the verified chain vouches
    for (entry ``at``'s ``prev``)."""
    from ledger.protocol.audit import precedent_report
    from ledger.verifier.replay import ReplayCheck
    from ledger.verifier.verify import verify_log

    check = ReplayCheck(log_key.name, limit=at)
    with progress_bar(quiet) as bar:
        task = bar.add_task("replaying", total=None)
        verified = verify_log(
            log_source,
            log_key,
            entry_check=check,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    checkpoint = verified.checkpoint
    if at > checkpoint.size:
        raise MalformedError(f"couldn't audit at size {at}: the log has {checkpoint.size} entries")
    root = checkpoint.root_hash if at == checkpoint.size else check.root_at_limit
    assert root is not None
    return precedent_report(
        check.state,
        checkpoint={
            "origin": checkpoint.origin,
            "size": at,
            "root_hash_b64": base64.b64encode(root).decode(),
        },
        audit_time_ms=time_ms if time_ms is not None else max(now, check.last_log_time_ms),
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` and ``audit`` to the ``amnesty`` app."""
    app.command()(demo)
    app.command()(audit)
