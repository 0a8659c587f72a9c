"""The read side's protocol state: at the latest checkpoint or any earlier size, from the
derived state stored in the database.

:class:`ProtocolReader` gives each query a :class:`~ledger.protocol.stored.StoredProtocolState`
pinned at the store's largest flush point at or below the size asked for, with the few entries
after it (at most one batch, or one backfill chunk) replayed on top
(:func:`~ledger.server.derived.replay_into`, which checks each against its stored level-0 tile,
and the precedent's aggregates settled for them: :func:`~ledger.protocol.aggregates.settle`):
no replay from entry 0, nothing held between queries but a fixed-size cache of per-entry facts,
and the same answer from every process reading the same database.

A log without derived state (written by an older release, and no writer has started since to
backfill it) is served as before, from an in-memory state replayed from entry 0 under a lock,
and the log says so once.

Invariants: a state is built for one query and never shared; the derived state it reads is
never written by a reader; a replayed entry that does not hash to its tile stops the process
from writing (:attr:`ProtocolReader.on_damage`) and fails the query.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from api.heads import Heads
from api.problems import retry_later
from ledger.errors import FatalError
from ledger.protocol.aggregates import settle
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import FactCache, StoredProtocolState
from ledger.protocol.terms import MAX_SAFE_INTEGER
from ledger.server.derived import replay_into
from ledger.server.logview import SignedCheckpoint
from ledger.storage.sql import SqlLogStore

log = logging.getLogger("api.reader")

STATE_WAIT_S = 15.0
"""How long a query waits for the in-memory fallback state before answering 503."""
LAG_WARN = 65_536
"""Entries past the latest flush point beyond which the log warns (no writer keeps the
derived state current: start one, or run ``amnesty check-derived --backfill``)."""

__all__ = ["ProtocolReader", "replay_into"]


class ProtocolReader:
    """The protocol state for queries, read from the stored derived state (see the module)."""

    def __init__(
        self,
        store: SqlLogStore,
        heads: Heads,
        origin: str,
        history: int = 3,
        *,
        facts: FactCache | None = None,
    ) -> None:
        self._store = store
        self._source = store.derived_source()
        self._heads = heads
        self._origin = origin
        self._facts = facts if facts is not None else FactCache()
        self._size = 0
        # The fallback for a log without derived state: an in-memory state and a few replays.
        self._state = ProtocolState()
        self._lock = threading.Lock()
        self._history: OrderedDict[int, ProtocolState] = OrderedDict()
        self._history_size = history
        self._history_lock = threading.Lock()
        self._warned_lag = False
        self._warned_no_derived_state = False
        self.on_damage: Callable[[FatalError], None] | None = None
        """Called with the error when a replay finds damage in the store (the service stops
        writing); the error is raised to the caller regardless."""

    def _replay(self, state: ProtocolState, end: int) -> None:
        try:
            replay_into(state, self._store, self._origin, end)
        except FatalError as exc:
            self._damaged(exc)
            raise

    def _damaged(self, exc: FatalError) -> None:
        if self.on_damage is not None:
            self.on_damage(exc)

    @property
    def size(self) -> int:
        """The size of the latest state a query was given (a hint for /healthz)."""
        return self._size

    def log_time_ms_at(self, index: int) -> int:
        """The log time of committed entry ``index``, from the process's per-entry facts (the
        entry read with its 256-entry chunk, checked against its level-0 tile): no protocol
        state needed, so it answers on a log without derived state too, while the in-memory
        state is still being replayed."""
        try:
            return self._facts.fact(self._source, index)[1]
        except FatalError as exc:  # the entry does not hash to its tile: a damaged store
            self._damaged(exc)
            raise

    def stored_at(self, size: int) -> StoredProtocolState | None:
        """A read-only stored state at ``size``, or ``None`` if no derived state is stored
        at or below it."""
        point = self._source.flush_point(size)
        if point is None:
            return None
        state = StoredProtocolState(self._source, point, facts=self._facts)
        if size - point > LAG_WARN and not self._warned_lag:
            self._warned_lag = True
            log.warning(
                "the derived state is %d entries behind size %d: start a writer or run "
                "`amnesty check-derived --backfill` (queries replay the gap meanwhile)",
                size - point,
                size,
            )
        if point < size:
            self._replay(state, size)
            settle(state, build=False)  # the precedent's aggregates of the replayed entries
        state.writable = False
        return state

    def _fallback(self, size: int) -> None:
        """Say once that queries replay the log from entry 0 because it has no derived state
        — not for a size below the first flush point of a log that has some (``?at=`` an
        early size: a replay of fewer entries than one flush holds)."""
        if self._warned_no_derived_state:
            return
        if self._source.flush_point(MAX_SAFE_INTEGER) is not None:
            log.debug("size %d lies below the first flush point: replayed from entry 0", size)
            return
        self._warned_no_derived_state = True
        log.warning(
            "this log has no derived state: queries replay it from entry 0; start a "
            "writer (it backfills) or run `amnesty check-derived --backfill`"
        )

    @contextmanager
    def latest(self) -> Iterator[tuple[ProtocolState, SignedCheckpoint]]:
        """The state at the latest checkpoint, and that checkpoint.

        From the stored derived state: built for this call, never shared. On a log without
        derived state, the in-memory fallback, caught up under a lock: waits at most
        :data:`STATE_WAIT_S`, then answers 503 with ``Retry-After`` and the progress made.
        """
        head = self._heads.latest()
        stored = self.stored_at(head.size)
        if stored is not None:
            self._size = max(self._size, head.size)
            try:
                yield stored, head
            except FatalError as exc:  # an entry read for the query is damaged
                self._damaged(exc)
                raise
            return
        self._fallback(head.size)
        if not self._lock.acquire(timeout=STATE_WAIT_S):
            raise retry_later(
                "Catching up",
                f"couldn't read the protocol state now: it is replaying the log "
                f"({self._state.size} entries so far); retry shortly",
                kind="catching-up",
                retry_after_s=10,
            )
        try:
            head = self._heads.latest()
            if self._state.size < head.size:
                self._replay(self._state, head.size)
            self._size = self._state.size
            yield self._state, head
        finally:
            self._lock.release()

    def at(self, size: int) -> ProtocolState:
        """The state at tree size ``size`` (never mutated afterwards).

        ``size`` must not exceed the latest checkpoint (the caller checks). From the stored
        derived state: the flush point at or below ``size`` and at most a batch of replay. On
        a log without derived state, a replay from entry 0 (cached; one at a time: while one
        runs, another size is refused at once with a 503 and ``Retry-After``).
        """
        stored = self.stored_at(size)
        if stored is not None:
            return stored
        self._fallback(size)
        state = self._history.get(size)
        if state is not None:
            return state
        if not self._history_lock.acquire(blocking=False):
            raise retry_later(
                "Busy replaying",
                f"couldn't replay the log to size {size} now: another historical replay is "
                "running; retry shortly",
                kind="busy",
                retry_after_s=5,
            )
        try:
            state = self._history.get(size)
            if state is None:
                state = ProtocolState()
                self._replay(state, size)
                self._history[size] = state
                while len(self._history) > self._history_size:
                    self._history.popitem(last=False)
            return state
        finally:
            self._history_lock.release()

    def warm_up(self) -> None:
        """Read the state at the latest checkpoint once (at startup: on a log without derived
        state, this is the replay from entry 0)."""
        with self.latest():
            pass
