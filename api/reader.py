"""The read side's protocol state: caught up with the store, and replays of prefixes.

:class:`ProtocolReader` keeps a :class:`~ledger.protocol.state.ProtocolState` that catches up
incrementally with the store (entries appended by this process or any other) under a lock, so
queries see the protocol at the latest checkpoint; ``at(size)`` replays a prefix for history
(a few are cached). :func:`replay_into` does the catching up: it checks every entry's leaf hash
against the stored level-0 tiles, so a flipped bit in a stored entry stops the read side
instead of being served as state, and — through :attr:`ProtocolReader.on_damage` — stops the
process from writing on top of the damage.

Invariants: the latest state is only read or advanced with the reader's lock held (it is
mutable and not thread-safe); a historical state, once cached, is never mutated; a state only
ever holds a prefix of the log that the stored tiles vouch for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from api.heads import Heads
from api.problems import ProblemError
from ledger.errors import FatalError, LedgerError, MalformedError, StorageError
from ledger.protocol.state import ProtocolState
from ledger.server.logview import SignedCheckpoint
from ledger.statements.entry import LogEntry
from ledger.statements.logged import logged_statement
from ledger.statements.statement import parse_statement, present_signers
from ledger.storage.base import LogStore
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.tiles import TILE_WIDTH

HASH_SIZE = 32
REPLAY_CHUNK = 4096
STATE_WAIT_S = 15.0
"""How long a query waits for the read-side protocol state before answering 503."""


# -- protocol state -------------------------------------------------------------------------------


def replay_into(state: ProtocolState, store: LogStore, origin: str, end: int) -> None:
    """Apply entries ``[state.size, end)`` of ``store`` to ``state``, in order.

    Entries were admitted when they were appended, so signatures are not checked again
    (:func:`~ledger.statements.statement.present_signers`), but each entry must hash to the leaf
    hash in the stored level-0 tile (tiles whose root the sequencer checks against the signed
    one). Raises :class:`StorageError` naming the first entry that is missing, does not decode,
    does not hash to its tile, or that the protocol refuses; ``state`` then holds every entry
    before it. Damage — an entry that does not hash to its tile, does not decode, or that the
    protocol refuses (the sequencer admitted it) — is a :class:`~ledger.errors.FatalError`.
    """
    position = state.size
    while position < end:
        stop = min(end, position + REPLAY_CHUNK)
        datas = store.read_entries(position, stop)
        if len(datas) != stop - position:
            raise StorageError(
                f"couldn't replay entries [{position}, {stop}): the store returned {len(datas)}"
            )
        tiles: dict[int, bytes] = {}
        for offset, data in enumerate(datas):
            index = position + offset
            leaf = leaf_hash(data)
            tile_index = index // TILE_WIDTH
            tile = tiles.get(tile_index)
            if tile is None:
                tile = tiles[tile_index] = store.read_tile(0, tile_index)
            at = (index % TILE_WIDTH) * HASH_SIZE
            if tile[at : at + HASH_SIZE] != leaf:
                raise FatalError(
                    f"couldn't replay entry {index}: it does not hash to the leaf hash in the "
                    "stored level-0 tile (a corrupted store?)"
                )
            try:
                entry = LogEntry.decode(data)
                if entry.index != index:
                    raise MalformedError(f"it says it is entry {entry.index}")
                signed = parse_statement(entry.statement.encode("utf-8"), origin=origin)
                state.apply(logged_statement(signed, present_signers(signed), entry, leaf))
            except LedgerError as exc:
                raise FatalError(
                    f"couldn't replay entry {index}: {exc} (a corrupted store?)"
                ) from exc
        position = stop


class ProtocolReader:
    """The read side's protocol state at the latest checkpoint, and replays of prefixes."""

    def __init__(self, store: LogStore, heads: Heads, origin: str, history: int = 3) -> None:
        self._store = store
        self._heads = heads
        self._origin = origin
        self._state = ProtocolState()
        self._lock = threading.Lock()
        self._history: OrderedDict[int, ProtocolState] = OrderedDict()
        self._history_size = history
        self._history_lock = threading.Lock()
        self.on_damage: Callable[[FatalError], None] | None = None
        """Called with the error when a replay finds damage in the store (the service stops
        writing); the error is raised to the caller regardless."""

    def _replay(self, state: ProtocolState, end: int) -> None:
        try:
            replay_into(state, self._store, self._origin, end)
        except FatalError as exc:
            if self.on_damage is not None:
                self.on_damage(exc)
            raise

    @property
    def size(self) -> int:
        """Entries replayed into the latest state so far (no lock: a hint for /healthz)."""
        return self._state.size

    @contextmanager
    def latest(self) -> Iterator[tuple[ProtocolState, SignedCheckpoint]]:
        """Hold the lock, catch up with the latest checkpoint, and yield the state and it.

        Everything read from the state must be read inside the ``with`` block: the state is
        mutable and not thread-safe. Waits at most :data:`STATE_WAIT_S` for the lock (held for
        minutes only while a large log is first replayed), then answers 503 with
        ``Retry-After`` and the progress made.
        """
        if not self._lock.acquire(timeout=STATE_WAIT_S):
            raise ProblemError(
                503,
                "Catching up",
                f"couldn't read the protocol state now: it is replaying the log "
                f"({self._state.size} entries so far); retry shortly",
                kind="catching-up",
                headers={"Retry-After": "10"},
            )
        try:
            head = self._heads.latest()
            if self._state.size < head.size:
                self._replay(self._state, head.size)
            yield self._state, head
        finally:
            self._lock.release()

    def at(self, size: int) -> ProtocolState:
        """A state replayed from entry 0 to ``size`` (cached; never mutated afterwards).

        ``size`` must not exceed the latest checkpoint (the caller checks). O(size), so one
        replay runs at a time: while one runs, another size is refused at once with a 503 and
        ``Retry-After`` rather than tying up a worker thread per request.
        """
        state = self._history.get(size)
        if state is not None:
            return state
        if not self._history_lock.acquire(blocking=False):
            raise ProblemError(
                503,
                "Busy replaying",
                f"couldn't replay the log to size {size} now: another historical replay is "
                "running; retry shortly",
                kind="busy",
                headers={"Retry-After": "5"},
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
        """Catch up now (called in a background thread at startup)."""
        with self.latest():
            pass
