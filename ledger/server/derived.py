"""Keeping the derived state in the store: replaying entries into a state, backfilling a log
written before derived state existed, and checking the stored state against a replay.

The derived state (:mod:`ledger.protocol.stored`, :mod:`ledger.storage.derived`) is a cache the
service trusts and a verifier never does. A writing server keeps it current with every batch;
:func:`backfill_derived` fills it in for entries that have none (a log made by an older release)
in chunks, each in its own short write transaction; :func:`complete_aggregates` adds the
precedent's aggregates and :func:`complete_report_text` the report's timelines and applications
as text (:mod:`ledger.protocol.report_text`) to a flush point written without them;
:func:`check_derived` replays the log from entry 0 in memory and names the first record (or
aggregate row, or subject's timeline text) where the stored state differs.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ledger.errors import ConflictError, FatalError, LedgerError, MalformedError, StorageError
from ledger.protocol.aggregates import TEXT_RULING, has_aggregates, ruling_text_rows
from ledger.protocol.audit import application_text, subject_head_text
from ledger.protocol.codec import encode_value
from ledger.protocol.report_text import TEXT_KINDS, completion_rows, read_ranges
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import FactCache, StoredProtocolState
from ledger.protocol.stored_compare import first_difference
from ledger.server.integrity import entries_matching_tiles
from ledger.server.published import UntrustedStoreError
from ledger.statements.entry import LogEntry
from ledger.statements.logged import logged_statement
from ledger.statements.statement import parse_statement, present_signers
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import Checkpoint
from ledger.tlog.note import parse_note

log = logging.getLogger("ledger.server.derived")

REPLAY_CHUNK = 4096
BACKFILL_CHUNK = 4096
"""Entries per flush point written by a backfill: a historical state is at most this many
entries of replay away from a flush point."""


def replay_into(
    state: ProtocolState,
    store: SqlLogStore,
    origin: str,
    end: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Apply entries ``[state.size, end)`` of ``store`` to ``state``, in order.

    Entries were admitted when they were appended, so signatures are not checked again
    (:func:`~ledger.statements.statement.present_signers`), but each entry must hash to the leaf
    hash in the stored level-0 tile (tiles whose root the sequencer checks against the signed
    one: :func:`~ledger.server.integrity.entries_matching_tiles`). Raises
    :class:`~ledger.errors.FatalError` naming the first entry that is missing, does not hash to
    its tile, does not decode, or that the protocol refuses (the sequencer admitted it);
    ``state`` then holds every entry before it.
    """
    for index, data, leaf in entries_matching_tiles(
        store.read_tile, store.read_entries, state.size, end, doing="replay", chunk=REPLAY_CHUNK
    ):
        try:
            entry = LogEntry.decode(data)
            if entry.index != index:
                raise MalformedError(f"it says it is entry {entry.index}")
            signed = parse_statement(entry.statement.encode("utf-8"), origin=origin)
            state.apply(logged_statement(signed, present_signers(signed), entry, leaf))
        except LedgerError as exc:
            raise FatalError(f"couldn't replay entry {index}: {exc} (a corrupted store?)") from exc
        if progress is not None and (index + 1 == end or (index + 1) % REPLAY_CHUNK == 0):
            progress(index + 1)


def stored_size(store: SqlLogStore) -> int:
    """The size of the store's latest checkpoint (its signature is checked by whoever serves
    or signs; here it only bounds the replay)."""
    return Checkpoint.parse(parse_note(store.checkpoint()).text).size


def backfill_derived(
    store: SqlLogStore,
    origin: str,
    *,
    chunk: int = BACKFILL_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write the derived state of every entry up to the stored checkpoint that has none,
    replaying from the latest flush point and writing a flush point every ``chunk`` entries,
    each under the store's write lock in its own transaction. Returns the entries replayed.

    Safe against other writers and other backfills: under the lock, a flush point is written
    only if the latest one is still the one this replay started from; otherwise someone else
    moved the derived state on, and the backfill continues from theirs. A crash leaves every
    chunk committed before it (each is a complete flush point) and nothing of the one after.
    """
    source = store.derived_source()
    facts = FactCache(chunks=64)
    target = stored_size(store)
    start = source.flush_point(target) or 0
    state = StoredProtocolState(source, start, facts=facts, cache_records=20_000)
    replayed = 0
    while state.size < target:
        end = min(target, state.size + chunk)
        try:
            replay_into(state, store, origin, end)
        except FatalError as exc:
            # Damage in an entry nothing has checked since it was written: refuse (a server
            # does not start on it), never write derived state from it.
            raise UntrustedStoreError(f"couldn't trust the store: {exc}") from exc
        replayed += end - state.pinned
        moved: int | None = None
        try:
            with store.append_transaction() as tx:
                current = tx.derived_flush_point()
                if (current or 0) != state.pinned:
                    moved = current
                else:
                    tx.write_derived(end, state.derived_rows())
        except (StorageError, ConflictError):
            state.rolled_back()
            raise
        if moved is None:
            state.committed()
            log.info("derived state written up to size %d of %d", end, target)
        else:
            state.repin(moved)
            target = max(target, stored_size(store))
        if progress is not None:
            progress(state.size, target)
    complete_aggregates(store)
    complete_report_text(store)
    return replayed


def complete_aggregates(store: SqlLogStore) -> int | None:
    """Complete the latest flush point with the precedent's aggregates
    (:mod:`ledger.protocol.aggregates`) if it has none (derived state written by an older
    release): one scan of the stored records, the rows written at that flush point under the
    store's write lock. Returns the flush point completed, or None if there was nothing to do.

    Until this runs (a writer runs it when it starts, after :func:`backfill_derived`), the
    precedent summary of such a log is computed by a scan, as before; a writer's next batch
    would build the aggregates too."""
    source = store.derived_source()
    with store.append_transaction() as tx:
        point = tx.derived_flush_point()
        if point is None:
            return None
        state = StoredProtocolState(source, point, facts=FactCache(chunks=64))
        if state.stored_tallies() is not None:
            return None
        log.info("building the precedent's aggregates at flush point %d (once)", point)
        tx.write_derived(point, state.derived_rows(), new_point=False)
    return point


COMPLETION_ROWS = 512
"""Report text rows written per statement by :func:`complete_report_text` (at most ~16 MB)."""


def complete_report_text(store: SqlLogStore) -> int | None:
    """Complete the latest flush point with the report text of the subjects' timelines, of
    the applications (:mod:`ledger.protocol.report_text`) and of the final judgements (with
    the aggregates: :mod:`ledger.protocol.aggregates`) if it has none (derived state written by
    an older release): one scan of the timelines, the applications and every entry's type and
    log time, and one pass of the rules over the records, the rows written at that flush point
    under the store's write lock, a few hundred at a time. Returns
    the flush point completed, or None if there was nothing to do.

    Until this runs (a writer runs it when it starts, after :func:`complete_aggregates`),
    reports at that flush point write the timelines from the entries' facts, as before; a
    writer's batches keep no text on top of a flush point without it. A flush point written
    by a writer that keeps no text after one that did (an older release still writing during
    a rolling upgrade) has none either: its stale rows are ended, then all written again.
    Flush points older than the completed one keep none: reports there are computed as
    before. Memory: the entries'
    types and log times (9 bytes each), one part per range of
    :data:`~ledger.protocol.report_text.EVENT_RANGE` entries, and the events of the last,
    open range."""
    source = store.derived_source()
    with store.append_transaction() as tx:
        point = tx.derived_flush_point()
        if point is None or read_ranges(source, point) is not None:
            return None
        log.info("keeping the report's text (timelines, applications, judgements) at %d", point)
        # Text that an earlier flush kept and a writer of an older release then left behind
        # (a rolling upgrade) is ended first, every row of it: none of it is read again.
        _write_rows(
            tx,
            point,
            ((kind, key, b"") for kind in STALE_TEXT_KINDS for key, _ in source.scan(kind, point)),
        )
        state = StoredProtocolState(source, point, facts=FactCache(chunks=64), writable=False)
        state.read_ahead()
        subjects = (
            (subject.subject_id, timeline, subject_head_text(state, subject))
            for subject, timeline in state.timelines_of(state.subjects.values())
        )
        applications = (
            (index, application_text(state, app)) for index, app in state.applications.items()
        )
        # The final judgements' text, where the flush point has the aggregates it belongs to.
        rulings = (
            (TEXT_RULING, key, encode_value(value)) for key, value in ruling_text_rows(state)
        )
        rows = completion_rows(state, subjects, applications, point)
        # The ``text_ranges`` row comes last: a flush point holds none of the text until the
        # transaction commits, and all of it after.
        _write_rows(tx, point, itertools.chain(rulings if has_aggregates(state) else (), rows))
    return point


STALE_TEXT_KINDS = (*TEXT_KINDS, TEXT_RULING)
"""Every kind of report text: what :func:`complete_report_text` ends before it writes."""


def _write_rows(tx: Any, point: int, rows: Iterable[tuple[str, bytes, bytes]]) -> None:
    """Write ``rows`` at flush point ``point``, which they complete (an empty value ends its
    record's current version), :data:`COMPLETION_ROWS` a statement."""
    batch: list[tuple[str, bytes, bytes]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= COMPLETION_ROWS:
            tx.write_derived(point, batch, new_point=False)
            batch = []
    if batch:
        tx.write_derived(point, batch, new_point=False)


def check_derived(
    store: SqlLogStore,
    origin: str,
    *,
    at: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int | None, str | None]:
    """Replay the log from entry 0 in memory up to the latest flush point (or the largest one
    ``<= at``) and compare the stored derived state there with it.

    Returns ``(flush point, None)`` when they agree, ``(flush point, difference)`` naming the
    first record that differs, and ``(None, None)`` when no derived state is stored.
    """
    source = store.derived_source()
    point = source.flush_point(stored_size(store) if at is None else at)
    if point is None:
        return None, None
    replayed = ProtocolState()
    replay_into(replayed, store, origin, point, progress)
    return point, first_difference(source, point, replayed)


def delete_derived(store: SqlLogStore) -> int:
    """Delete all of the store's derived state (to rebuild it with :func:`backfill_derived`),
    under the write lock, in one transaction. Returns the record rows deleted. Servers reading
    meanwhile fall back to replaying (they find no flush point) until it is rebuilt."""
    with store.append_transaction() as tx:
        return tx.delete_derived()
