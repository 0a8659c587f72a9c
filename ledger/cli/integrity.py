"""The store's integrity commands: ``fsck`` (re-derive everything in a database and name the
first damage) and ``recover`` (bring back entries a database lost, from a verified copy).

``amnesty fsck DB`` checks, in order, and stops at the first bad object, naming it and the kind
of damage (exit 1; 0 when all is sound):

1. the log itself, as ``amnesty verify DB`` does (:func:`ledger.verifier.verify.verify_ledger`):
   the latest checkpoint's signature, every stored entry against its stored tile, every tile
   against the tree recomputed from the entries, the hash chain, every statement's signatures and
   the protocol replayed in order;
2. every stored checkpoint row (the history of signed checkpoints, served for old sizes): it
   verifies under the log key, names the log's origin, its size is its row's, and its root is the
   verified tree's root at that size;
3. every entry's index columns (``statement_id``, ``statement_type``, ``log_time_ms``), derived
   from the entry: a wrong ``statement_id`` would let a duplicate in, a wrong type or time would
   answer queries wrongly; and the statement-id index (``statement_keys``: one row per entry,
   with its id's key, :mod:`ledger.storage.statement_keys`);
4. if the signer's remembered checkpoint (``<key file>.published``) is found, that the database
   extends it (a restored older backup fails here);
5. the derived state (the protocol's tables the service reads instead of replaying the log,
   :mod:`ledger.protocol.stored`), where it exists: the records at its latest flush point equal
   the protocol state the verifier replayed to that size, record by record.

``amnesty check-derived DB`` runs step 5 on its own (a replay of the protocol, without the
signature and tile checks), and with ``--backfill`` first writes the derived state of entries
that have none (a log made by an older release; a writing server does it when it starts).

``amnesty recover --db DB --from SOURCE`` is the way back from a database that lost what was
published (a restored older backup): SOURCE (a mirror folder, a service URL or another database of
the same log) is verified in full against the log's key, must extend both the database and the
checkpoint the signer remembers publishing, and its missing entries are written to the database
with their tiles and SOURCE's signed checkpoint, in one transaction. Nothing is signed: the
checkpoint written is the one the log already signed. Then ``amnesty serve`` starts again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli.common import (
    DbOption,
    JsonOption,
    emit,
    error_code,
    error_object,
    fail,
    open_source,
    progress_bar,
)
from ledger.errors import LedgerError, VerificationError

if TYPE_CHECKING:  # imported lazily at run time: the CLI starts fast
    from ledger.protocol.state import ProtocolState
    from ledger.server.logview import LogView
    from ledger.storage.sql import SqlLogStore

Progress = Callable[[int], None] | None
"""Called with how many objects were checked so far."""

QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="the log's key file, beside which the signer remembers what it published "
        "(default: the one given to init)",
    ),
]


class DamageError(VerificationError):
    """``fsck`` found damage: ``where`` names the object, the message the kind of damage."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


def _published_file(view: LogView, key: Path | None) -> Path | None:
    from ledger.server.published import published_path_for

    key_path = key if key is not None else Path(view.identity.key_path or "")
    if not str(key_path) or str(key_path) == ".":
        return None
    return published_path_for(key_path)


# -- fsck -----------------------------------------------------------------------------------------


def check_checkpoint_rows(
    store: SqlLogStore, view: LogView, size: int, progress: Progress = None
) -> int:
    """Step 2 of the module docstring; returns the number of rows checked. Raises
    :class:`DamageError` naming the first bad row."""
    from ledger.tlog.merkle import root_at

    reader = view.node_reader(size)
    checked = 0
    for row_size, note in store.iter_checkpoint_rows():
        where = f"checkpoints row {row_size}"
        try:
            checkpoint = view.open(note).checkpoint
        except LedgerError as exc:
            raise DamageError(f"{where}: the checkpoint does not verify: {exc}", where) from None
        if checkpoint.size != row_size:
            raise DamageError(f"{where}: it holds a checkpoint of size {checkpoint.size}", where)
        if row_size > size:
            raise DamageError(f"{where}: beyond the latest checkpoint's size {size}", where)
        if root_at(row_size, reader) != checkpoint.root_hash:
            raise DamageError(
                f"{where}: its root is not the tree's root at size {row_size} (a signed "
                "checkpoint of another history)",
                where,
            )
        checked += 1
        if progress is not None:
            progress(checked)
    return checked


def check_entry_columns(store: SqlLogStore, size: int, progress: Progress = None) -> int:
    """Step 3 of the module docstring; returns the number of entries checked. Raises
    :class:`DamageError` naming the first bad entry row."""
    expected = 0
    for index, data, statement_id, statement_type, log_time_ms in store.iter_entry_rows(0, size):
        where = f"entries row {index}"
        if index != expected:
            raise DamageError(f"entries row {expected} is missing", f"entries row {expected}")
        # Step 1 decoded every entry strictly (canonical JSON, its fields): plain JSON is enough.
        entry = json.loads(data)
        if log_time_ms != entry["log_time_ms"]:
            raise DamageError(
                f"{where}: log_time_ms column {log_time_ms}, the entry says {entry['log_time_ms']}",
                where,
            )
        note: str = entry["statement"]
        text = note[: note.rindex("\n\n") + 1]
        if hashlib.sha256(text.encode("utf-8")).digest() != statement_id:
            raise DamageError(
                f"{where}: statement_id column is not the SHA-256 of the statement", where
            )
        declared = json.loads(text.split("\n", 2)[1]).get("type")
        if declared != statement_type:
            raise DamageError(
                f"{where}: statement_type column {statement_type!r}, the statement is a "
                f"{declared!r}",
                where,
            )
        expected += 1
        if progress is not None and expected % 4096 == 0:
            progress(expected)
    if expected != size:
        raise DamageError(f"entries row {expected} is missing", f"entries row {expected}")
    return expected


def fsck(
    db: Annotated[
        str, typer.Argument(help="database URL (sqlite:///f.db, postgresql://…) or path")
    ],
    key: KeyFileOption = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="processes checking statements")
    ] = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Re-derive everything in a log's database and name the first bad object (exit 1).

    Checks the log as `amnesty verify` does (entries, tiles, chain, signatures, protocol), then
    every stored checkpoint row, every entry's index columns, and that the database extends the
    checkpoint the signer remembers publishing (beside the key file)."""
    from ledger.server.integrity import check_stored_state
    from ledger.server.published import PublishedCheckpoint
    from ledger.verifier.verify import verify_ledger

    view, log_key = open_source(db, None)
    store = view.store
    report: dict[str, Any] = {"ok": False, "db": db}
    try:
        with progress_bar(quiet) as bar:
            task = bar.add_task("entries, tiles, chain", total=None)

            def entries_done(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = verify_ledger(view, log_key, workers=workers, progress=entries_done)
            size = result.checkpoint.size
            report.update(size=size, entries=result.entries, tiles=result.tiles_checked)
            rows = bar.add_task("checkpoint rows", total=None)
            report["checkpoint_rows"] = check_checkpoint_rows(
                store, view, size, lambda n: bar.update(rows, completed=n)
            )
            columns = bar.add_task("entry columns", total=size)
            report["entry_rows"] = check_entry_columns(
                store, size, lambda n: bar.update(columns, completed=n)
            )
            bar.update(columns, completed=size)
            problem = store.check_statement_index(size)
            if problem is not None:
                raise DamageError(problem, "statement_keys")
            derived = bar.add_task("derived state", total=None)
            report["derived_flush_point"] = _check_derived_at(
                store, view.origin, size, result.protocol
            )
            bar.update(derived, completed=1, total=1)
        path = _published_file(view, key)
        if path is not None and path.exists():
            check_stored_state(
                store,
                view.log_key,
                view.origin,
                PublishedCheckpoint(path, view.log_key, view.origin),
            )
            report["published_file"] = str(path)
    except LedgerError as exc:
        report["error"] = error_object(str(exc), error_code(exc), 1)
        report["where"] = getattr(exc, "where", None)
        report["index"] = getattr(exc, "index", None)
        emit(report, as_json, f"DAMAGED: {exc}")
        raise typer.Exit(1) from None
    except Exception as exc:  # a value of the wrong type in a row, a driver that chokes on it
        detail = f"the store could not be read: {type(exc).__name__}: {exc}"
        report["error"] = error_object(detail, "unreadable", 1)
        emit(report, as_json, f"DAMAGED: {detail}")
        raise typer.Exit(1) from None
    report["ok"] = True
    emit(
        report,
        as_json,
        f"OK: {view.origin} size {report['size']}: {report['entries']} entries, "
        f"{report['tiles']} tiles, {report['checkpoint_rows']} checkpoint rows and "
        f"{report['entry_rows']} entry rows re-derived"
        + (
            f"; the derived state at size {report['derived_flush_point']} equals the replay"
            if report.get("derived_flush_point") is not None
            else "; no derived state stored"
        )
        + (f"; it extends {report['published_file']}" if "published_file" in report else ""),
    )


class DerivedStateError(VerificationError):
    """The stored derived state differs from a replay of the log."""


def _check_derived_at(
    store: SqlLogStore, origin: str, size: int, replayed: ProtocolState | None
) -> int | None:
    """Compare the derived state at its latest flush point with the protocol replayed by the
    verifier (at ``size``; replayed again here when the flush point is below it). Returns the
    flush point checked, ``None`` when no derived state is stored; raises
    :class:`DerivedStateError` naming the first record that differs."""
    from ledger.protocol.stored_compare import first_difference
    from ledger.server.derived import check_derived

    source = store.derived_source()
    point = source.flush_point(size)
    if point is None:
        return None
    if replayed is not None and replayed.size == point:
        difference = first_difference(source, point, replayed)
    else:
        point, difference = check_derived(store, origin, at=size)
    if difference is not None:
        raise DerivedStateError(
            f"couldn't trust the derived state at size {point}: {difference} (rebuild it: "
            "`amnesty check-derived DB --rebuild`)"
        )
    return point


def check_derived_command(
    db: Annotated[
        str, typer.Argument(help="database URL (sqlite:///f.db, postgresql://…) or path")
    ],
    backfill: Annotated[
        bool,
        typer.Option("--backfill", help="first write the derived state of entries that have none"),
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild", help="first delete the derived state and write it again from the log"
        ),
    ] = False,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Replay the log and compare the stored derived state with it (exit 1 on a difference).

    The derived state is the protocol's tables the service reads at startup and for every
    query instead of replaying the log: a cache it trusts, that a verifier never reads. This
    names the first record that differs from a replay. `--backfill` writes what is missing
    (what a starting writer does); `--rebuild` deletes it all and writes it again (after a
    difference was found). Both take the log's write lock one chunk at a time: safe beside
    running servers."""
    from ledger.server.derived import backfill_derived, check_derived, delete_derived

    view, _ = open_source(db, None)
    store = view.store
    report: dict[str, Any] = {"ok": False, "db": db}
    try:
        with progress_bar(quiet) as bar:
            if rebuild:
                report["deleted_rows"] = delete_derived(store)
            if backfill or rebuild:
                task = bar.add_task("writing derived state", total=None)
                report["backfilled"] = backfill_derived(
                    store,
                    view.origin,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            replay = bar.add_task("replaying the log", total=None)
            point, difference = check_derived(
                store, view.origin, progress=lambda n: bar.update(replay, completed=n)
            )
    except LedgerError as exc:
        report["error"] = error_object(str(exc), error_code(exc), 1)
        emit(report, as_json, f"FAILED: {exc}")
        raise typer.Exit(1) from None
    report["flush_point"] = point
    if point is None:
        report["ok"] = True
        emit(
            report,
            as_json,
            f"NO DERIVED STATE: {view.origin} has none stored (a writing server, or "
            "`amnesty check-derived --backfill`, writes it)",
        )
        return
    if difference is not None:
        report["difference"] = difference
        report["error"] = error_object(
            f"the derived state at size {point} differs from the replay: {difference}",
            "derived-state-differs",
            1,
        )
        emit(
            report,
            as_json,
            f"DIFFERS at size {point}: {difference}\n(rebuild it: `amnesty check-derived "
            "DB --rebuild`)",
        )
        raise typer.Exit(1)
    report["ok"] = True
    emit(report, as_json, f"OK: the derived state at size {point} equals a replay of the log")


# -- recover --------------------------------------------------------------------------------------


def recover(
    db: DbOption,
    source: Annotated[
        str,
        typer.Option(
            "--from", help="a mirror folder, service URL or database of the same log to copy from"
        ),
    ],
    key: KeyFileOption = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="processes checking statements")
    ] = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Bring back the entries a database lost (a restored older backup) from a verified copy.

    SOURCE is verified in full against the log's key; it must extend the database and the
    checkpoint the signer remembers publishing. Its missing entries, their tiles and its signed
    checkpoint are written to the database in one transaction; nothing new is signed."""
    from ledger.server.admission import StatementPolicy
    from ledger.server.integrity import prefix_roots, verify_stored_head
    from ledger.server.logview import LogView
    from ledger.server.published import ForkError, PublishedCheckpoint
    from ledger.statements.entry import LogEntry
    from ledger.storage.base import StoredEntry
    from ledger.storage.sql import SqlLogStore
    from ledger.tlog.merkle import leaf_hash, root_at
    from ledger.tlog.tiles import ENTRIES_LEVEL, TileID, TileNodeReader, decode_bundle
    from ledger.verifier.sources import fetch_tile, tile_reader
    from ledger.verifier.verify import verify_ledger

    try:
        store = SqlLogStore(db)
        view = LogView(store)
    except LedgerError as exc:
        fail(str(exc))
    # The log's own keys (Ed25519, and ML-DSA-44 for a hybrid log) pin the copy.
    vkeys = " ".join(
        v for v in (view.identity.log_vkey, getattr(view.identity, "mldsa_vkey", None)) if v
    )
    copy, log_key = open_source(source, vkeys)
    path = _published_file(view, key)
    published = None if path is None else PublishedCheckpoint(path, view.log_key, view.origin)
    try:
        with progress_bar(quiet) as bar:
            task = bar.add_task(f"verifying {source}", total=None)
            verified = verify_ledger(
                copy,
                log_key,
                workers=workers,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        target = verified.checkpoint
        note = verified.checkpoint_note
        copy_nodes = TileNodeReader(tile_reader(copy, target.size), target.size)

        def copy_root_at(size: int) -> bytes:
            return target.root_hash if size == target.size else root_at(size, copy_nodes)

        # The copy must extend what the signer published (and so be this log's history): an
        # early refusal from the tiles it serves, proved below from the tiles written.
        if published is not None:
            published.check(target.size, copy_root_at, doing="recover", tree=f"the copy {source}")
        with store.append_transaction() as tx:
            head = tx.checkpoint()
            stored, tree, _ = verify_stored_head(
                head, view.log_key, view.origin, tx.read_tile, tx.read_entries
            )
            if stored.size > target.size:
                fail(
                    f"couldn't recover from {source}: its checkpoint of size {target.size} does "
                    f"not extend the database's of size {stored.size}",
                    1,
                )
            if stored.size == target.size:
                emit(
                    {"ok": True, "recovered": 0, "size": stored.size},
                    as_json,
                    f"nothing to recover: the database already holds size {stored.size}",
                )
                return
            policy = StatementPolicy(view.origin)
            entries: list[StoredEntry] = []
            for bundle in range(stored.size // 256, (target.size + 255) // 256):
                width = min(256, target.size - bundle * 256)
                datas = decode_bundle(fetch_tile(copy, TileID(ENTRIES_LEVEL, bundle, width)), width)
                for offset, data in enumerate(datas):
                    index = bundle * 256 + offset
                    if index < stored.size:
                        continue
                    entry = LogEntry.decode(data)
                    prepared = policy.prepare(entry.statement.encode("utf-8"))
                    tree.append(leaf_hash(data))
                    entries.append(
                        StoredEntry(
                            index=index,
                            data=data,
                            statement_id=prepared.statement_id,
                            statement_type=prepared.statement_type,
                            log_time_ms=entry.log_time_ms,
                            subjects=prepared.subjects,
                            signers=prepared.signers,
                        )
                    )
            # The database's tree extended with the copy's entries is exactly the tree the
            # signed checkpoint covers: so the database is a prefix of the copy's history.
            if tree.size != target.size or tree.root() != target.root_hash:
                fail(
                    f"couldn't recover from {source}: the database (size {stored.size}) with "
                    f"its entries does not hash to its signed checkpoint of size {target.size}: "
                    "the database is not a prefix of it, or it changed while being read",
                    1,
                )
            tx.commit_batch(head, note, target.size, entries, tree.changed_tiles())
            if published is not None:
                # Proved from the tiles just staged in this transaction (the copy's served
                # tiles were only a hint): a refusal here rolls everything back.
                published.check(
                    target.size,
                    prefix_roots(target, target, tx.read_tile),
                    doing="recover",
                    tree=f"the copy {source}",
                )
        if published is not None:
            published.confirm(note)
    except ForkError as exc:
        fail(str(exc), 1)
    except LedgerError as exc:
        fail(f"couldn't recover from {source}: {exc}", 1)
    emit(
        {"ok": True, "recovered": len(entries), "size": target.size, "from": source},
        as_json,
        f"recovered {len(entries)} entries from {source}: the database is at size "
        f"{target.size}, its checkpoint the one the log signed",
    )


def register(app: typer.Typer) -> None:
    """Add ``fsck`` and ``recover`` to ``app``."""
    app.command()(fsck)
    app.command()(recover)
    app.command("check-derived")(check_derived_command)
