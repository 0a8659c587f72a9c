"""The sequencer: batches submissions, appends them durably, signs one checkpoint per batch.

Life of a submission:

1. The caller *prepares* it (parse, canonical checks, signature verification) outside any lock,
   in its own thread: :meth:`EntryPolicy.prepare`. Bad input fails here and touches nothing.
2. :meth:`Sequencer.submit` queues the prepared submission and returns a future. If the queue is
   full the call raises :class:`QueueFullError` at once (pushback, never unbounded memory).
3. The sequencer thread takes up to ``max_batch`` submissions, waiting at most ``max_delay_ms``
   after the first, and runs one **append transaction** under the store's write lock: it checks
   that the stored checkpoint is the one it last signed (or catches up with what another writer
   appended, re-deriving the tree from the stored tiles and checking it against the signed root),
   admits each submission against the protocol state, wraps it in a :class:`~ledger.statements.entry.LogEntry`
   chained to the root of all earlier entries, signs a checkpoint for the new size and commits
   entries, tiles and checkpoint together with a compare-and-swap on the old checkpoint.
4. **Only after that commit has returned** is each future resolved with its index: an index is
   never handed out for an entry that a crash could still lose.

Refuse to guess: a stored checkpoint whose signature or root does not match the stored tree, or a
stored tree that is not an extension of the largest checkpoint this signer remembers publishing
(:mod:`ledger.server.published`), raises :class:`~ledger.errors.FatalError`; the sequencer stops
and every pending and later submission fails with that error.

The signer's invariant — it never signs a checkpoint that is not a proven extension of every
checkpoint it signed and published before — is enforced here, in three steps: when the stored
state is loaded (:meth:`Sequencer._load`: the stored tree must extend the remembered checkpoint),
before each signature (:meth:`Sequencer._append`: the tree about to be signed must extend it
again, the file being re-read under the write lock), and by remembering each new checkpoint
before its commit (:meth:`~ledger.server.published.PublishedCheckpoint.record_pending`).

Kept whole: one batch's life, from the queue to the receipts, with the invariant each step
protects, reads best in one place.

Time never halts the log: entry times never decrease, so a clock behind the last entry's log time
(stepped back, or another writer's clock a little ahead) makes the batch use the last entry's
time, and a step larger than :data:`CLOCK_STEP_WARN_MS` is logged loudly and counted
(:attr:`Sequencer.clock_steps`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from ledger.errors import FatalError, LedgerError, StorageError
from ledger.server.integrity import entries_matching_tiles, prefix_roots, verify_stored_head
from ledger.server.published import PublishedCheckpoint, UntrustedStoreError
from ledger.statements.entry import LogEntry
from ledger.storage.base import AppendTransaction, LogStore, StoredEntry
from ledger.tlog.checkpoint import Checkpoint, sign_checkpoint
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import Signer, VerifierKey
from ledger.tlog.tiles import TiledTree, TileID

log = logging.getLogger("ledger.server.sequencer")

CLOCK_STEP_WARN_MS = 1000
"""A clock this far behind the last entry's log time is reported as a step (warning + count);
less is ordinary skew between writers, logged at debug level."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A submission that parsed and whose signatures verified; state-free, safe to queue."""

    statement: str
    statement_id: bytes
    statement_type: str
    subjects: tuple[str, ...] = ()
    signers: tuple[str, ...] = ()
    context: object = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a submitter gets once its entry is durably committed.

    ``checkpoint`` is the signed checkpoint that covers ``index``; ``duplicate`` is true when the
    statement was already in the log (then ``index`` is where it already was).
    """

    index: int
    entry: bytes
    checkpoint: bytes
    duplicate: bool = False


class EntryPolicy(Protocol):
    """What may enter the log, and the state that decides it (the protocol, in production).

    Contract: ``prepare`` is pure and thread-safe. ``admit`` must not change state; ``apply``
    records an admitted entry. ``catch_up`` applies an entry that is already in the log (written
    by this or another process) without admission checks beyond its own consistency. ``reset``
    forgets what is not committed (after a failed batch): a policy whose state is the store's
    derived state is then at its last flush point at once; an in-memory one forgets everything
    and the sequencer replays from entry 0, without holding the store's write lock.
    """

    @property
    def size(self) -> int:
        """How many log entries the state has applied."""

    def reset(self) -> None:
        """Forget all state."""

    def prepare(self, submission: bytes) -> Prepared:
        """Parse and verify a submission; raise a :class:`LedgerError` subclass if it is bad."""

    def catch_up(self, entry: LogEntry, leaf: bytes) -> None:
        """Apply an entry already in the log."""

    def admit(self, prepared: Prepared, entry: LogEntry, leaf: bytes) -> object:
        """Check admissibility as ``entry`` (leaf hash ``leaf``); return a token for :meth:`apply`.

        Raises a :class:`LedgerError` subclass to refuse; must not change any state.
        """

    def apply(self, admitted: object, entry: LogEntry, leaf: bytes) -> None:
        """Record an admitted entry in the state."""

    def advance(self, size: int) -> None:
        """Adopt state stored for a log size ``<= size`` if it is ahead of this state (derived
        state in the database, written by another writer or a backfill); else nothing."""

    def derived_rows(self) -> Sequence[tuple[str, bytes, bytes]] | None:
        """The derived state's changes since the last commit, to write with the batch at the
        new size (``None``: the policy keeps no derived state in the store)."""

    def committed(self) -> None:
        """The rows of :meth:`derived_rows` were committed with the batch."""


class StoredLog(Protocol):
    """What loading the stored state reads: an append transaction, or the store itself."""

    def read_tile(self, level: int, index: int) -> bytes:
        """The stored hash tile, or ``b""``."""

    def read_entries(self, start: int, end: int) -> list[bytes]:
        """Leaf data of entries ``[start, end)``, in order."""


class QueueFullError(StorageError):
    """The sequencer has more pending submissions than it accepts; try again later."""


@dataclass(slots=True)
class _Pending:
    prepared: Prepared
    future: Future[Receipt] = field(default_factory=Future)


def clock_ms() -> int:
    """The system clock in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class Sequencer:
    """Turns prepared submissions into durably committed, checkpointed log entries.

    Usable from many threads: :meth:`submit` is thread-safe. One sequencer per process; several
    processes (or machines, with PostgreSQL) may each run one against the same store, and the
    store's write lock plus the checkpoint compare-and-swap keep them from forking the log.
    """

    def __init__(
        self,
        store: LogStore,
        signer: Signer,
        policy: EntryPolicy,
        *,
        max_batch: int = 1024,
        max_delay_ms: int = 10,
        max_pending: int = 20_000,
        clock: Callable[[], int] = clock_ms,
        extra_signers: Sequence[Signer] = (),
        on_commit: Callable[[Sequence[tuple[TileID, bytes]]], None] | None = None,
        published: PublishedCheckpoint | None = None,
        on_fatal: Callable[[FatalError], None] | None = None,
        checkpoint_signers: Callable[[AppendTransaction, int], Sequence[Signer]] | None = None,
    ) -> None:
        """``on_commit``, if given, is called in the sequencer's thread after each batch is
        durably committed — never for a batch that rolled back — with the hash tiles that batch
        wrote, before any submitter of the batch learns its index (a reader's tile cache fed
        from it serves the receipts' proofs without reading the store). It must be quick and
        must not raise; an exception from it is logged and otherwise ignored.

        ``published`` is the signer's memory of what it published (a writing server always
        passes one; without it the sequencer trusts the store's checkpoint as the largest).
        ``on_fatal``, if given, is called once with the error when the sequencer halts.

        ``checkpoint_signers``, if given, replaces ``extra_signers``: called under the write
        lock once a batch is applied, with the transaction and the size before the batch, it
        gives the signers of that batch's checkpoint beside ``signer`` (the log's ML-DSA-44
        key from the entry that anchors it on: :mod:`ledger.server.log_key`). It may stage
        writes in the transaction; a :class:`FatalError` from it stops the sequencer."""
        self._store = store
        self._published = published
        self.on_fatal = on_fatal
        self._on_commit = on_commit
        self._signer = signer
        self._log_key: VerifierKey = signer.verifier_key
        self._policy = policy
        self._max_batch = max_batch
        self._max_delay = max_delay_ms / 1000
        self._clock = clock
        self._extra_signers = tuple(extra_signers)
        self._checkpoint_signers = checkpoint_signers
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_pending)
        self._origin = store.identity().origin
        self._tree: TiledTree | None = None
        self._head: bytes | None = None  # the checkpoint our tree and policy state match
        self._head_checkpoint: Checkpoint | None = None  # ``_head``, opened
        self._ahead = False  # the tree and policy hold entries of a batch not (yet) committed
        self._flushed = False  # the batch being committed carries the policy's derived rows
        self._last_log_time_ms = 0
        self._fatal: FatalError | None = None
        self._thread: threading.Thread | None = None
        self.last_signed_ms = 0
        self.batches = 0
        self.clock_steps = 0
        """Batches whose clock was more than :data:`CLOCK_STEP_WARN_MS` behind the log."""
        self.clock_behind_ms = 0
        """How far the clock was behind the last entry's log time at the last batch (0: not)."""

    # -- public -------------------------------------------------------------------------------

    @property
    def fatal(self) -> FatalError | None:
        """The fatal error that stopped this sequencer, if any."""
        return self._fatal

    @property
    def pending(self) -> int:
        """Submissions queued and not yet committed or refused."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the sequencer thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sequencer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish queued work, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def warm_up(self) -> None:
        """Check the stored state against the signed checkpoint and replay it into the policy.

        Called once at startup so that a corrupted store is refused before anything is served
        (raises :class:`~ledger.errors.FatalError`) and the first submission is not slowed by
        the replay. Runs without the store's write lock (committed entries never change), so
        other writers go on while this one replays the log; the first batch then replays, under
        the lock, only what they appended meanwhile.
        """
        try:
            self._load(self._store, self._store.checkpoint(), locked=False)
        except FatalError as exc:
            self.halt(exc)
            raise

    def halt(self, error: FatalError) -> None:
        """Stop writing for good: every pending and later submission fails with ``error``.
        Called by the sequencer itself on a fatal error, and by the service when a reader finds
        damage in the store (never append on top of damage). The first error is kept."""
        if self._fatal is not None:
            return
        log.critical("sequencer stopped: %s", error)
        self._fatal = error
        if self.on_fatal is not None:
            try:
                self.on_fatal(error)
            except Exception:
                log.exception("on_fatal hook failed")

    def submit(self, prepared: Prepared) -> Future[Receipt]:
        """Queue a prepared submission. The future resolves only after a durable commit.

        Raises :class:`QueueFullError` at once when too much is pending, and the fatal error if
        the sequencer has stopped.
        """
        if self._fatal is not None:
            raise self._fatal
        pending = _Pending(prepared)
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise QueueFullError(
                f"couldn't queue submission: {self._queue.maxsize} submissions are pending"
            ) from None
        return pending.future

    def sequence_now(self, batch: Sequence[Prepared]) -> list[Receipt | LedgerError]:
        """Append one batch synchronously in the calling thread (tools and tests; no queue)."""
        pendings = [_Pending(p) for p in batch]
        self._sequence(pendings)
        results: list[Receipt | LedgerError] = []
        for p in pendings:
            exc = p.future.exception()
            if exc is None:
                results.append(p.future.result())
            elif isinstance(exc, LedgerError):
                results.append(exc)
            else:
                raise exc
        return results

    # -- the batch ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self._max_delay
            stop = False
            while len(batch) < self._max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=max(remaining, 0))
                        if remaining > 0
                        else (self._queue.get_nowait())
                    )
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._sequence(batch)
            if stop:
                return

    def _sequence(self, batch: list[_Pending]) -> None:
        """Run one append transaction for ``batch`` and settle every future in it."""
        if self._fatal is not None:
            for p in batch:
                p.future.set_exception(self._fatal)
            return
        settled: list[tuple[_Pending, Receipt | LedgerError]] = []
        tiles: list[tuple[TileID, bytes]] = []
        try:
            if self._tree is None:
                # A failed batch forgot the state (or this is the first batch): rebuild it from
                # what is committed without holding the write lock, so that other writers are
                # not held up by the replay; the transaction then catches up only with what
                # they appended meanwhile.
                self._load(self._store, self._store.checkpoint(), locked=False)
            self._flushed = False
            with self._store.append_transaction() as tx:
                settled, tiles = self._append(tx, batch)
            self._ahead = False
            if self._flushed:
                self._policy.committed()
            # Committed: the batch is durable. Only now may anyone learn their index, and only
            # now may its tiles be handed on (a rolled-back batch's tiles must never be served).
        except FatalError as exc:
            self.halt(exc)
            self._forget_state()
            for p in batch:
                p.future.set_exception(exc)
            return
        except LedgerError as exc:
            # The transaction rolled back. If the batch had applied entries, the in-memory tree
            # and state are ahead of the store: forget them, the next batch re-derives both from
            # the store (outside the write lock). If it failed before (the database down or
            # locked, as most storage failures are), they still match the store: keep them.
            log.error("batch of %d rolled back: %s", len(batch), exc)
            if self._ahead:
                self._forget_state()
            for p in batch:
                p.future.set_exception(exc)
            return
        except Exception as exc:
            log.exception("batch of %d failed unexpectedly", len(batch))
            if self._ahead:
                self._forget_state()
            error = StorageError(f"couldn't append batch: {type(exc).__name__}: {exc}")
            for p in batch:
                p.future.set_exception(error)
            return
        if tiles and self._on_commit is not None:
            try:
                self._on_commit(tiles)
            except Exception:
                log.exception("on_commit hook failed (the batch is committed regardless)")
        for pending, outcome in settled:
            if isinstance(outcome, Receipt):
                pending.future.set_result(outcome)
            else:
                pending.future.set_exception(outcome)
        # Committed, and remembered as pending before the commit (so before anyone could be
        # served it): now remember it as published, after the submitters have their receipts.
        # When more submissions wait, the next batch's record_pending does it instead (its
        # stored checkpoint is this one), saving a durable write per batch. A failure here
        # loses nothing: the pending record covers the checkpoint.
        if tiles and self._published is not None and self._head and self._queue.empty():
            try:
                self._published.confirm(self._head)
            except LedgerError as exc:
                log.error("couldn't confirm the published checkpoint: %s", exc)

    def _forget_state(self) -> None:
        self._ahead = False
        self._tree = None
        self._head = None
        self._head_checkpoint = None
        self._policy.reset()

    def _append(
        self, tx: AppendTransaction, batch: list[_Pending]
    ) -> tuple[list[tuple[_Pending, Receipt | LedgerError]], list[tuple[TileID, bytes]]]:
        """Append ``batch`` in ``tx``: the outcome for each submission, and the hash tiles
        written (empty when nothing was appended)."""
        self._ahead = False
        head = tx.checkpoint()
        if head != self._head or self._tree is None or self._policy.size != self._tree.size:
            self._load(tx, head, locked=True)
        tree = self._tree
        stored_checkpoint = self._head_checkpoint
        assert tree is not None and stored_checkpoint is not None
        now = self._log_time()
        # An outcome is an error, the index of the entry this batch appends, or (as a
        # one-tuple) the index of an entry already logged: in an earlier batch, or earlier in
        # this one when the same statement was submitted twice at once — the second submitter
        # is told it is a duplicate, exactly as if it had come a batch later.
        outcomes: list[tuple[_Pending, LedgerError | int | tuple[int]]] = []
        stored: list[StoredEntry] = []
        # One query finds every statement of the batch that is already logged.
        seen = tx.find_statements([p.prepared.statement_id for p in batch])
        for pending in batch:
            prepared = pending.prepared
            existing = seen.get(prepared.statement_id)
            if existing is not None:
                outcomes.append((pending, (existing,)))
                continue
            index = tree.size
            entry = LogEntry(
                index=index, log_time_ms=now, prev=tree.root(), statement=prepared.statement
            )
            try:
                data = entry.encode()
                leaf = leaf_hash(data)
                admitted = self._policy.admit(prepared, entry, leaf)
            except LedgerError as exc:
                outcomes.append((pending, exc))
                continue
            self._ahead = True  # from here on, a rollback leaves the tree and policy ahead
            tree.append(leaf)
            self._policy.apply(admitted, entry, leaf)
            seen[prepared.statement_id] = index
            stored.append(
                StoredEntry(
                    index=index,
                    data=data,
                    statement_id=prepared.statement_id,
                    statement_type=prepared.statement_type,
                    log_time_ms=now,
                    subjects=prepared.subjects,
                    signers=prepared.signers,
                )
            )
            outcomes.append((pending, index))
        new_head = head
        tiles: list[tuple[TileID, bytes]] = []
        if stored:
            checkpoint = Checkpoint(origin=self._origin, size=tree.size, root_hash=tree.root())
            if self._published is not None:
                # Before every signature: the tree to sign extends what this signer published.
                # Under the write lock, so a pending checkpoint beyond the store never committed.
                self._published.drop_void_pending(stored_checkpoint.size)
                self._published.check(
                    tree.size,
                    prefix_roots(checkpoint, stored_checkpoint, tx.read_tile),
                    doing=f"sign a checkpoint of size {tree.size}",
                )
            extra = self._extra_signers
            if self._checkpoint_signers is not None:
                extra = tuple(self._checkpoint_signers(tx, stored_checkpoint.size))
            new_head = sign_checkpoint(checkpoint, self._signer, extra)
            if self._published is not None:
                # Remembered before the commit, so before anyone can be served it.
                self._published.record_pending(head, new_head)
            tiles = tree.changed_tiles()
            # The policy's derived state at the new size commits with the batch or not at all.
            derived = self._policy.derived_rows()
            if derived is None:
                tx.commit_batch(head, new_head, tree.size, stored, tiles)
            else:
                tx.commit_batch(head, new_head, tree.size, stored, tiles, derived=derived)
            self._flushed = derived is not None
            self._head_checkpoint = checkpoint
            self._last_log_time_ms = now
            self.last_signed_ms = now
            self.batches += 1
        self._head = new_head
        by_index = {s.index: s.data for s in stored}
        settled: list[tuple[_Pending, Receipt | LedgerError]] = []
        for pending, outcome in outcomes:
            if isinstance(outcome, LedgerError):
                settled.append((pending, outcome))
            elif isinstance(outcome, int):
                settled.append((pending, Receipt(outcome, by_index[outcome], new_head)))
            else:
                (index,) = outcome
                data = by_index.get(index) or tx.read_entries(index, index + 1)[0]
                settled.append((pending, Receipt(index, data, new_head, duplicate=True)))
        return settled, tiles

    def _load(self, tx: StoredLog, head: bytes, *, locked: bool) -> None:
        """Re-derive the tree and the policy state from the store, checking the signed head.

        ``locked``: whether the caller holds the store's write lock (an append transaction).
        Without it the load is as sound — ``head`` and everything it covers are committed and
        never change — but a pending remembered checkpoint is not judged void (a writer sharing
        the signer's file may be committing it right now).

        Cases (stored state vs the signed checkpoint):
        - first batch of this process, or another writer appended since our last batch: load
          the frontier from the stored tiles and replay the new entries into the policy;
        - the stored tiles do not hash to the signed root, or the checkpoint's signature fails:
          the store was tampered with or corrupted. Fatal: refuse, never guess.
        - the policy has applied more entries than the signed checkpoint covers (our last batch
          rolled back after apply): it was reset by ``_forget_state``; replay from 0.
        """
        checkpoint, tree, last = verify_stored_head(
            head, self._log_key, self._origin, tx.read_tile, tx.read_entries
        )
        if self._published is not None:
            # The stored tree must extend what this signer published: a restored backup or
            # another log's database is refused here, before any signature.
            self._published.check(
                checkpoint.size,
                prefix_roots(checkpoint, checkpoint, tx.read_tile),
                doing="use the database",
            )
            if locked:
                self._published.drop_void_pending(checkpoint.size)
            self._published.confirm(head)
        if self._policy.size > checkpoint.size:
            self._policy.reset()
        # Derived state stored with the batches (ours or another writer's) spares the replay.
        self._policy.advance(checkpoint.size)
        # Every replayed entry must hash to its leaf in the stored level-0 tile, whose tree
        # hashes to the signed root: damage is refused, never appended on.
        for index, data, leaf in entries_matching_tiles(
            tx.read_tile, tx.read_entries, self._policy.size, checkpoint.size, doing="replay"
        ):
            try:
                entry = LogEntry.decode(data)
                if entry.index != index:
                    raise UntrustedStoreError(
                        f"couldn't trust the store: entry stored at {index} says it is "
                        f"entry {entry.index}"
                    )
                self._policy.catch_up(entry, leaf)
            except UntrustedStoreError:
                raise
            except LedgerError as exc:
                raise UntrustedStoreError(
                    f"couldn't trust the store: entry {index} does not replay: {exc}"
                ) from exc
        self._last_log_time_ms = last.log_time_ms if last is not None else 0
        self._tree = tree
        self._head = head
        self._head_checkpoint = checkpoint

    def _log_time(self) -> int:
        """The log time of this batch's entries: the clock, or the last entry's log time if
        the clock is behind it (log times never decrease; a writer never halts on time)."""
        now = self._clock()
        last = self._last_log_time_ms
        if now >= last:
            self.clock_behind_ms = 0
            return now
        self.clock_behind_ms = last - now
        if self.clock_behind_ms > CLOCK_STEP_WARN_MS:
            self.clock_steps += 1
            log.warning(
                "the clock reads %d ms, %d ms behind the last entry's log time %d ms (stepped "
                "back, or another writer's clock is ahead): entries take the last entry's time "
                "until the clock catches up; check NTP",
                now,
                self.clock_behind_ms,
                last,
            )
        else:
            log.debug("the clock is %d ms behind the last entry's log time", self.clock_behind_ms)
        return last
