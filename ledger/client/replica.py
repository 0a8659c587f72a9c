"""The local verified replica: the log's protocol state, verified here, kept up to date.

:class:`VerifiedReplica` keeps a :class:`~ledger.verifier.trust.TrustState` — a checkpoint
signed with the pinned log key, the tree's right edge, the last log time and the protocol state
replayed from every entry up to it — and brings it to a newer checkpoint by the verifier's
incremental path (:func:`~ledger.verifier.verify.verify_ledger` from the trust state): a
consistency proof from the trusted checkpoint (computed from the source's tiles), then only the
new entries are fetched and checked (statements, signatures, hash chain, protocol admission,
tiles, root). What the client says is *verified* about the log's derived state (the precedent,
subjects, the offer in force) is computed from this state and nothing else.

Verification can be long on a large log (about 6,000 entries a second in one process), so
:meth:`VerifiedReplica.advance` takes a budget: more new entries than that are left for later,
or for a background thread, and the caller answers from the server, labelled unverified.

The state can be kept in a file (``state_path``, the verifier's trust-state format, written
atomically): it is loaded at start, written after the first verification and then at most every
``save_interval_s``, and on :meth:`VerifiedReplica.close`.

:func:`recompute_precedent` replays a prefix of the log from entry 0 against a verified head,
for a report at a past tree size.

Failures: a source whose checkpoint contradicts the trusted one raises
:class:`~ledger.verifier.failures.SplitViewError` (with evidence); anything else that fails
verification raises :class:`~ledger.verifier.failures.VerificationFailure` (a
:class:`~ledger.errors.VerificationError`). A failed run leaves the replica at its last good
state (reloaded from ``state_path``, or empty). Thread-safe.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from ledger.client.answers import VerifiedHead
from ledger.errors import LedgerError, ProofError, VerificationError
from ledger.protocol.audit import precedent_report
from ledger.statements.entry import LogEntry
from ledger.tlog.checkpoint import Checkpoint, LogKey
from ledger.tlog.merkle import CompactRange, leaf_hash
from ledger.tlog.tiles import ENTRIES_LEVEL, TILE_WIDTH, TileID, decode_bundle
from ledger.verifier.consistency import check_consistent
from ledger.verifier.replay import ReplayCheck
from ledger.verifier.sources import LogSource
from ledger.verifier.trust import TrustState, load_trust_state, save_trust_state
from ledger.verifier.verify import verify_ledger

DEFAULT_CATCH_UP: Final = 10_000
"""New entries a client verifies within one call by default (about 1.5 s in one process);
beyond that it answers from the server, labelled unverified, until the replica catches up."""


class TileSource(Protocol):
    """What :func:`recompute_precedent` reads: entry bundles by tile (any verifier
    ``LogSource``, e.g. :class:`~ledger.client.source.HttpLogSource`, is one). May raise any
    LedgerError."""

    def tile(self, tile: TileID) -> bytes:
        """The bytes of a hash tile or entry bundle."""


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """How far the replica got: ``verified_size`` entries verified, ``target_size`` those of
    the checkpoint it was asked to reach, ``catching_up`` whether a run is under way, and
    ``checked_size`` how far that run has checked (its entries count as verified only once the
    run has matched the checkpoint's root)."""

    verified_size: int
    target_size: int
    catching_up: bool
    checked_size: int = 0

    @property
    def caught_up(self) -> bool:
        """Whether every entry of the target checkpoint is verified."""
        return self.verified_size >= self.target_size


@dataclass(frozen=True, slots=True)
class ReplicaRun:
    """One verification run that succeeded: entries ``[start_size, end_size)`` verified,
    ``tiles_checked`` hash tiles compared, in the background or not."""

    start_size: int
    end_size: int
    tiles_checked: int
    background: bool


class _Cancelled(LedgerError):
    """A background run stopped by :meth:`VerifiedReplica.close`."""


class _AtCheckpoint:
    """A LogSource serving one checkpoint note (the one being verified to) and ``source``'s
    tiles, so that a run reaches exactly the checkpoint its caller accepted."""

    def __init__(self, source: LogSource, note: bytes) -> None:
        self._source = source
        self._note = note

    def checkpoint(self) -> bytes:
        return self._note

    def tile(self, tile: TileID) -> bytes:
        return self._source.tile(tile)


class VerifiedReplica:
    """A locally verified copy of the log's protocol state (see the module docstring).

    ``source`` serves the log's tiles; ``log_key`` is the pinned log key. The starting state is
    ``trusted``, else the file ``state_path`` if it exists (checked against ``log_key``:
    :class:`~ledger.errors.MalformedError` if it is not a valid state for this log), else
    nothing (the first run verifies from entry 0). ``workers`` is the verifier's
    (``verify_ledger``: None lets it start worker processes for large runs).

    Invariant: :meth:`reading` yields the state only between runs; a run advances the
    protocol state in place, so while one is under way readers get None.
    """

    def __init__(
        self,
        source: LogSource,
        log_key: LogKey,
        *,
        trusted: TrustState | None = None,
        state_path: Path | None = None,
        workers: int | None = None,
        save_interval_s: float = 60.0,
    ) -> None:
        self._source = source
        self.log_key = log_key
        self.state_path = state_path
        self._workers = workers
        self._save_interval_s = save_interval_s
        if trusted is None and state_path is not None and state_path.exists():
            trusted = load_trust_state(state_path, log_key)
        self._state = trusted
        self._saved_at: float | None = time.monotonic() if trusted is not None else None
        self._dirty = False
        self._lock = threading.Lock()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._target = 0
        self._progress = 0
        self._cancel = False
        self._failure: LedgerError | None = None
        self.runs: list[ReplicaRun] = []
        """Every successful run, oldest first (to see what was verified when)."""

    # -- what it holds --------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of entries verified (0 before the first run)."""
        with self._lock:
            return 0 if self._state is None else self._state.size

    @property
    def checkpoint_note(self) -> bytes | None:
        """The signed checkpoint the replica has verified up to, or None."""
        with self._lock:
            return None if self._state is None else self._state.checkpoint_note

    def status(self, target_size: int) -> ReplicaStatus:
        """How far the replica is from a checkpoint of ``target_size`` entries."""
        with self._lock:
            size = 0 if self._state is None else self._state.size
            return ReplicaStatus(
                size, target_size, self._busy, self._progress if self._busy else size
            )

    @contextmanager
    def reading(self, size: int, *, exact: bool = False) -> Iterator[TrustState | None]:
        """The verified state, if it covers at least ``size`` entries (exactly ``size`` with
        ``exact``) and no run is under way; else None. No run starts while the block runs:
        keep it short and never call :meth:`advance` inside it."""
        with self._lock:
            state = self._state
            usable = (
                not self._busy
                and state is not None
                and (state.size == size if exact else state.size >= size)
            )
            yield state if usable else None

    def head(self, state: TrustState) -> VerifiedHead:
        """The verified tree head of ``state`` (one :meth:`reading` yielded)."""
        c = state.checkpoint
        return VerifiedHead(c.origin, c.size, c.root_hash, c, state.checkpoint_note)

    # -- catching up ----------------------------------------------------------------------------

    def advance(
        self, note: bytes, checkpoint: Checkpoint, *, budget: int | None, background: bool
    ) -> ReplicaStatus:
        """Bring the replica to ``checkpoint`` (``note``, already verified with the pinned key
        by the caller) if at most ``budget`` entries are new (None: however many), verifying
        only the new ones, in this thread. With more, start verifying them in a background
        thread if ``background``, else leave the replica as it is. A background run under way
        is waited for if what it has left is within ``budget``.

        Returns where the replica stands. Raises the verifier's failure (a split view, a
        source that serves anything but the log the checkpoint signs), also one a background
        run met since the last call.
        """
        self._wait_for_background(budget)
        with self._lock:
            self._raise_failure()
            if self._busy:
                return ReplicaStatus(self._size(), checkpoint.size, True, self._progress)
            state = self._state
            size = self._size()
            if checkpoint.size <= size:
                if state is not None and checkpoint.size == size:
                    check_consistent(self._source, state, note, checkpoint)
                return ReplicaStatus(size, checkpoint.size, False, size)
            if budget is not None and checkpoint.size - size > budget:
                if not background:
                    return ReplicaStatus(size, checkpoint.size, False, size)
                self._start(checkpoint.size)
                thread = threading.Thread(
                    target=self._background,
                    args=(note, state),
                    name="amnesty-replica",
                    daemon=True,
                )
                self._thread = thread
                thread.start()
                return ReplicaStatus(size, checkpoint.size, True, size)
            self._start(checkpoint.size)
        self._run(note, state, background=False)
        return self.status(checkpoint.size)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background run to end (for ``timeout`` seconds at most)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def close(self) -> None:
        """Stop a background run (its progress is lost) and save the state to ``state_path``
        if it changed since it was last saved."""
        with self._lock:
            self._cancel = True
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            state, dirty = self._state, self._dirty
            self._cancel = False
        if dirty and state is not None:
            self._save(state)

    def _size(self) -> int:
        return 0 if self._state is None else self._state.size

    def _start(self, target: int) -> None:
        """Mark a run as under way (holding the lock)."""
        self._busy = True
        self._target = target
        self._progress = self._size()

    def _raise_failure(self) -> None:
        """Raise, once, what a background run failed with (holding the lock)."""
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _wait_for_background(self, budget: int | None) -> None:
        with self._lock:
            thread = self._thread if self._busy else None
            left = self._target - self._progress
        if thread is not None and (budget is None or left <= budget):
            thread.join()

    def _background(self, note: bytes, trusted: TrustState | None) -> None:
        try:
            self._run(note, trusted, background=True)
        except LedgerError as exc:
            with self._lock:
                if not isinstance(exc, _Cancelled):
                    self._failure = exc
        finally:
            with self._lock:
                self._thread = None

    def _on_progress(self, done: int, total: int) -> None:
        with self._lock:
            self._progress = self._target - total + done
            if self._cancel:
                raise _Cancelled("couldn't finish catching up: the replica was closed")

    def _run(self, note: bytes, trusted: TrustState | None, *, background: bool) -> None:
        """Verify from ``trusted`` to the checkpoint ``note`` (a run marked by :meth:`_start`),
        then publish the new state and save it if it is time to."""
        start = 0 if trusted is None else trusted.size
        try:
            result = verify_ledger(
                _AtCheckpoint(self._source, note),
                self.log_key,
                trusted=trusted,
                workers=self._workers,
                progress=self._on_progress,
            )
            state = result.trust_state(self.log_key)
        except BaseException:
            with self._lock:
                if trusted is not None and trusted.protocol.size != trusted.size:
                    # The run advanced the protocol state in place: it is not trusted's any more.
                    self._state = self._reload()
                self._busy = False
            raise
        with self._lock:
            self._state = state
            self._dirty = True
            self._busy = False
            self.runs.append(ReplicaRun(start, state.size, result.tiles_checked, background))
            due = self.state_path is not None and (
                self._saved_at is None or time.monotonic() - self._saved_at >= self._save_interval_s
            )
            if due:
                # Saved while marked busy: no run may change the state being written.
                self._busy = True
        if due:
            try:
                self._save(state)
            finally:
                with self._lock:
                    self._busy = False

    def _reload(self) -> TrustState | None:
        """The last saved state, or None (after a failed run spoiled the one in memory)."""
        self._dirty = False
        if self.state_path is None or not self.state_path.exists():
            return None
        try:
            return load_trust_state(self.state_path, self.log_key)
        except LedgerError:
            return None

    def _save(self, state: TrustState) -> None:
        if self.state_path is None:
            return
        save_trust_state(self.state_path, state)
        with self._lock:
            self._saved_at = time.monotonic()
            if self._state is state:
                self._dirty = False


def recompute_precedent(
    source: TileSource, origin: str, head: VerifiedHead, audit_time_ms: int | None
) -> dict[str, Any]:
    """Replay entries ``[0, head.size)`` of the log ``origin`` from ``source``'s entry bundles,
    verifying each (leaf hashes against ``head``'s root, hash chain, statement signatures,
    authority, admission), and compute the precedent report at ``audit_time_ms`` (None: the
    last entry's log time, the report as it stood then). Bundles are read at the width
    ``head``'s checkpoint serves. O(head.size): for a past tree size; the replica answers at
    its own."""
    check = ReplayCheck(origin)
    tree = CompactRange()
    served = head.checkpoint.size
    for bundle in range((head.size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, served - bundle * TILE_WIDTH)
        datas = decode_bundle(
            source.tile(TileID(ENTRIES_LEVEL, bundle, width)), expected_count=width
        )
        for offset, data in enumerate(datas):
            index = bundle * TILE_WIDTH + offset
            if index >= head.size:
                break
            entry = LogEntry.decode(data)
            if entry.index != index or entry.prev != tree.root():
                raise VerificationError(
                    f"couldn't replay entry {index}: its index or prev breaks the chain"
                )
            leaf = leaf_hash(data)
            check(entry, leaf)
            tree.append(leaf)
    if tree.root() != head.root_hash:
        raise ProofError(
            f"couldn't replay the log: {head.size} entries hash to {tree.root().hex()}, "
            f"the verified head says {head.root_hash.hex()}"
        )
    return precedent_report(
        check.state,
        checkpoint={
            "origin": origin,
            "size": head.size,
            "root_hash_b64": base64.b64encode(head.root_hash).decode(),
        },
        audit_time_ms=check.last_log_time_ms if audit_time_ms is None else audit_time_ms,
    )
