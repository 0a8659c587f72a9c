"""The service's state, one per process, built in ``lifespan``: the store, the sequencer, and the
read side that every query endpoint shares.

The read side:

- :class:`Heads` hands out the latest checkpoint, read from the store on every call, its log
  signature verified once per distinct note; a checkpoint that does not verify is fatal.
- :class:`Proofs` computes inclusion and consistency proofs and historical roots from the stored
  tiles through the log view's shared, bounded tile cache (tiles are append-only, so caching
  them is safe across tree sizes).
- :class:`ProtocolReader` keeps a :class:`~ledger.protocol.state.ProtocolState` that catches up
  incrementally with the store (entries appended by this process or any other) under a lock, so
  queries see the protocol at the latest checkpoint; ``at(size)`` replays a prefix for history
  (a few are cached). Replay checks every entry's leaf hash against the stored level-0 tiles, so
  a flipped bit in a stored entry stops the read side instead of being served as state.
- :class:`PrecedentCache` keeps the last precedent reports computed, and
  :meth:`LedgerService.fresh_at_latest` reuses answers judged "now" for a minute while the log
  does not grow (on a large log they take about a second to compute).

Every answer that depends on a tree size names a :class:`TreeHeadInfo`: the size and root it
was computed at and the signed checkpoint that vouches for them (see ``api.wire.TreeHead``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from api.limits import RateLimiter
from api.observability import Metrics
from api.problems import ProblemError
from api.settings import Settings
from ledger.errors import FatalError, LedgerError, MalformedError, StorageError
from ledger.protocol.audit import precedent_report, render_precedent_text
from ledger.protocol.state import ProtocolState
from ledger.server.logview import LogView, NotFoundError, SignedCheckpoint
from ledger.server.sequencer import EntryPolicy, Prepared, Receipt, Sequencer
from ledger.statements.entry import LogEntry
from ledger.statements.logged import logged_statement
from ledger.statements.statement import parse_statement, present_signers
from ledger.storage.base import EntryQuery, LogStore
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import open_checkpoint
from ledger.tlog.merkle import consistency_proof, inclusion_proof, leaf_hash, root_at
from ledger.tlog.note import Signer, VerifierKey
from ledger.tlog.tiles import TILE_WIDTH
from ledger.witness.cosigner import Cosigner

log = logging.getLogger("api.service")

T = TypeVar("T")

HASH_SIZE = 32
REPLAY_CHUNK = 4096
STATE_WAIT_S = 15.0
"""How long a query waits for the read-side protocol state before answering 503."""
PRECEDENT_FRESH_S = 60.0
"""How long the latest default precedent report (and summary) is reused at the same size."""


def now_ms() -> int:
    """The server clock in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def judged_now_ms(state: ProtocolState) -> int:
    """The time answers "judged now" use: the server clock, or the last entry's log time if the
    clock is behind it (a judgement may never precede what the log already holds)."""
    last = state.log_time_ms_at(state.size - 1) if state.size else 0
    return max(now_ms(), last)


# -- checkpoints ----------------------------------------------------------------------------------


class Heads:
    """The latest signed checkpoint of the store, verified with the log's key. Thread-safe.

    The store is read on every call (answers name the latest checkpoint, never a cached one);
    a note already verified is not verified again. A read that returns an older checkpoint
    than one already served (a slower concurrent read) yields the newer one.
    """

    def __init__(self, store: LogStore, log_key: VerifierKey, origin: str) -> None:
        self._store = store
        self._log_key = log_key
        self._origin = origin
        self._latest: SignedCheckpoint | None = None
        self._lock = threading.Lock()

    def latest(self) -> SignedCheckpoint:
        """The latest checkpoint; raises :class:`FatalError` if it does not verify."""
        note = self._store.checkpoint()
        cached = self._latest
        if cached is not None and cached.note == note:
            return cached
        signed = self._open(note, "the stored checkpoint")
        with self._lock:
            previous = self._latest
            if previous is not None and signed.size < previous.size:
                return previous
            self._latest = signed
            return signed

    def exactly(self, size: int) -> SignedCheckpoint | None:
        """The checkpoint this log signed at exactly ``size``, verified, if there is one."""
        note = self._store.checkpoint_at(size)
        return None if note is None else self._open(note, f"the checkpoint of size {size}")

    @property
    def last_seen(self) -> SignedCheckpoint | None:
        """The newest checkpoint this process has read (no store access)."""
        return self._latest

    def _open(self, note: bytes, what: str) -> SignedCheckpoint:
        try:
            checkpoint = open_checkpoint(note, self._log_key)
        except LedgerError as exc:
            raise FatalError(f"couldn't trust {what}: {exc}") from exc
        if checkpoint.origin != self._origin:
            raise FatalError(
                f"couldn't trust {what}: origin {checkpoint.origin!r} is not {self._origin!r}"
            )
        return SignedCheckpoint(note, checkpoint)


@dataclass(frozen=True, slots=True)
class TreeHeadInfo:
    """A tree (``size``, ``root_hash``) and the signed checkpoint vouching for it: ``signed``
    covers at least ``size`` entries and ``consistency`` proves ``size`` -> ``signed.size``.
    ``note`` is ``signed.note`` as served: with any witness cosignatures kept for it (same
    text, so the log's signature and every proof stay valid)."""

    origin: str
    size: int
    root_hash: bytes
    signed: SignedCheckpoint
    note: bytes
    consistency: tuple[bytes, ...] = ()


# -- proofs ---------------------------------------------------------------------------------------


class Proofs:
    """Inclusion and consistency proofs and roots from stored tiles, through the log view's
    shared tile cache (tiles are append-only, so one cache serves every tree size).

    Thread-safe (the view's tile lock). Callers check sizes against a checkpoint first: the
    tiles of a size beyond the latest checkpoint are not there.
    """

    def __init__(self, view: LogView) -> None:
        self._view = view

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        with self._view.tiles_lock:
            return inclusion_proof(index, size, self._view.node_reader(size))

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof from ``size1`` to ``size2`` leaves."""
        with self._view.tiles_lock:
            return consistency_proof(size1, size2, self._view.node_reader(size2))

    def root(self, size: int) -> bytes:
        """The RFC 6962 root of the first ``size`` leaves."""
        with self._view.tiles_lock:
            return root_at(size, self._view.node_reader(size))


# -- protocol state -------------------------------------------------------------------------------


def replay_into(state: ProtocolState, store: LogStore, origin: str, end: int) -> None:
    """Apply entries ``[state.size, end)`` of ``store`` to ``state``, in order.

    Entries were admitted when they were appended, so signatures are not checked again
    (:func:`~ledger.statements.statement.present_signers`), but each entry must hash to the leaf hash in
    the stored level-0 tile (tiles whose root the sequencer checks against the signed one). Raises :class:`StorageError` naming the first entry that is missing, does not decode,
    does not hash to its tile, or that the protocol refuses; ``state`` then holds every entry
    before it.
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
                raise StorageError(
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
                raise StorageError(f"couldn't replay entry {index}: {exc}") from exc
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
                replay_into(self._state, self._store, self._origin, head.size)
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
                replay_into(state, self._store, self._origin, size)
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


# -- precedent ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Precedent:
    """A computed precedent report, the tree head it names, and its renderings (lazily)."""

    report: dict[str, Any]
    head: TreeHeadInfo
    text: str | None = None
    body: bytes | None = None

    def rendered(self) -> str:
        """The plain-text rendering (:func:`render_precedent_text`), computed once."""
        if self.text is None:
            self.text = render_precedent_text(self.report)
        return self.text


class PrecedentCache:
    """The last few reports by (size, audit time), and the latest default one with the moment
    it was computed. Thread-safe."""

    def __init__(self, keep: int = 4) -> None:
        self._keep = keep
        self._items: OrderedDict[tuple[int, int], Precedent] = OrderedDict()
        self._latest: tuple[float, Precedent] | None = None
        self._lock = threading.Lock()

    def recent(self, size: int) -> Precedent | None:
        """The latest default report if it is of ``size`` and fresh (see PRECEDENT_FRESH_S)."""
        latest = self._latest
        if latest is None:
            return None
        computed, precedent = latest
        fresh = time.monotonic() - computed < PRECEDENT_FRESH_S
        return precedent if fresh and precedent.head.size == size else None

    def get(self, size: int, audit_time_ms: int) -> Precedent | None:
        with self._lock:
            found = self._items.get((size, audit_time_ms))
            if found is not None:
                self._items.move_to_end((size, audit_time_ms))
            return found

    def put(
        self, size: int, audit_time_ms: int, precedent: Precedent, *, latest: bool = False
    ) -> None:
        with self._lock:
            if latest:
                self._latest = (time.monotonic(), precedent)
            self._items[(size, audit_time_ms)] = precedent
            while len(self._items) > self._keep:
                self._items.popitem(last=False)


# -- submissions in flight ------------------------------------------------------------------------


class Waiting:
    """Submissions this process is waiting on, and since when (for /healthz). Thread-safe."""

    def __init__(self) -> None:
        self._since: dict[int, int] = {}
        self._next = 0
        self._lock = threading.Lock()

    def start(self, at_ms: int | None = None) -> int:
        """Register a submission that arrived at ``at_ms`` (default now); return its token."""
        with self._lock:
            self._next += 1
            self._since[self._next] = now_ms() if at_ms is None else at_ms
            return self._next

    def done(self, token: int) -> None:
        with self._lock:
            self._since.pop(token, None)

    def count(self) -> int:
        return len(self._since)

    def oldest_ms(self) -> int | None:
        with self._lock:
            return min(self._since.values(), default=None)


@dataclass(frozen=True, slots=True)
class HealthInfo:
    """The inputs and verdict of the health rule (see :meth:`LedgerService.health`)."""

    healthy: bool
    reasons: tuple[str, ...]
    size: int | None
    sequencer: Literal["running", "halted", "none"]
    waiting: int
    oldest_waiting_ms: int | None
    last_signed_ms: int | None
    state_size: int


# -- the service ----------------------------------------------------------------------------------


def _settler(
    loop: asyncio.AbstractEventLoop,
    answer: asyncio.Future[tuple[Receipt, T]],
    finish: Callable[[Receipt], T],
) -> Callable[[Future[Receipt]], None]:
    """A done-callback for a sequencer future: in the sequencer's thread (or at once, if the
    future is already done) it runs ``finish`` on the receipt and hands the outcome — or the
    exception, never lost — to ``answer`` on its loop."""

    def settle(done: Future[Receipt]) -> None:
        try:
            receipt = done.result()
            outcome: tuple[Receipt, T] | BaseException = (receipt, finish(receipt))
        except BaseException as exc:
            outcome = exc
        # RuntimeError: the loop has closed (shutting down) and nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, answer, outcome)

    return settle


def _resolve(answer: asyncio.Future[Any], outcome: object) -> None:
    """Settle ``answer`` (on its loop) with a result or an exception, unless it was cancelled
    (the client went away)."""
    if answer.done():
        return
    if isinstance(outcome, BaseException):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)


@dataclass
class LedgerService:
    """Everything a request handler needs; one per process."""

    settings: Settings
    store: SqlLogStore
    view: LogView
    origin: str
    log_key: VerifierKey
    policy: EntryPolicy
    sequencer: Sequencer | None
    limiter: RateLimiter
    metrics: Metrics
    heads: Heads
    proofs: Proofs
    reader: ProtocolReader
    cosigner: Cosigner | None = None
    precedents: PrecedentCache = field(default_factory=PrecedentCache)
    waiting: Waiting = field(default_factory=Waiting)
    _fresh: dict[str, tuple[float, int, object]] = field(default_factory=dict)
    _fresh_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def read_only(self) -> bool:
        """True when this process has no sequencer (no log key, or ``read_only``)."""
        return self.sequencer is None

    # -- writes -------------------------------------------------------------------------------

    def _writer(self) -> Sequencer:
        """This process's sequencer; a 503 problem on a read-only server."""
        if self.sequencer is None:
            raise ProblemError(
                503,
                "Read-only server",
                "couldn't accept the submission: this server serves reads only (no log key); "
                "submit to the log's writing server",
                kind="read-only",
            )
        return self.sequencer

    async def submit(self, prepared: Prepared, finish: Callable[[Receipt], T]) -> tuple[Receipt, T]:
        """Queue a prepared submission, wait until it is durably committed, and return its
        receipt with ``finish(receipt)``.

        ``finish`` (building the answer: a proof against the new checkpoint) runs in the
        sequencer's thread as the batch settles, so the answer costs the event loop one wake-up
        and no thread-pool hop; it must be quick, and whatever it raises is the caller's.
        Raises :class:`~ledger.server.sequencer.QueueFullError` at once when the sequencer's queue is
        full (answered 503 with ``Retry-After``), and a 503 problem on a read-only server.
        """
        sequencer = self._writer()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[Receipt, T]] = loop.create_future()
        token = self.waiting.start()
        try:
            sequencer.submit(prepared).add_done_callback(_settler(loop, answer, finish))
            return await answer
        finally:
            self.waiting.done(token)

    async def submit_many(
        self, prepared: list[Prepared], finish: Callable[[Receipt], T]
    ) -> list[tuple[Receipt, T] | LedgerError]:
        """Queue every prepared submission at once (so they share batches) and wait for all.

        One outcome per submission, in order: ``(receipt, finish(receipt))`` as in
        :meth:`submit`, or the :class:`~ledger.errors.LedgerError` that refused it — a full
        queue refuses the submissions it has no room for, not the ones already queued. Other
        exceptions propagate.
        """
        sequencer = self._writer()
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[tuple[Receipt, T]]] = []
        token = self.waiting.start()
        try:
            for one in prepared:
                answer: asyncio.Future[tuple[Receipt, T]] = loop.create_future()
                try:
                    future = sequencer.submit(one)
                except LedgerError as exc:
                    answer.set_exception(exc)
                else:
                    future.add_done_callback(_settler(loop, answer, finish))
                waits.append(answer)
            outcomes = await asyncio.gather(*waits, return_exceptions=True)
        finally:
            self.waiting.done(token)
        results: list[tuple[Receipt, T] | LedgerError] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, LedgerError):
                raise outcome
            results.append(outcome)
        return results

    # -- tree heads and proofs ----------------------------------------------------------------

    def tree_head(self, size: int | None = None) -> TreeHeadInfo:
        """The tree head of ``size`` entries (default: the latest checkpoint's).

        Vouched for by the checkpoint signed at exactly that size if there is one, else by the
        latest checkpoint with a consistency proof. Raises :class:`NotFoundError` beyond it.
        """
        latest = self.heads.latest()
        return self.tree_head_under(latest, latest.size if size is None else size)

    def tree_head_under(self, latest: SignedCheckpoint, size: int) -> TreeHeadInfo:
        """As :meth:`tree_head`, against ``latest`` (a checkpoint already read)."""
        if size > latest.size or size < 0:
            raise NotFoundError(
                f"couldn't find tree size {size}: the latest checkpoint has {latest.size} entries"
            )
        if size == latest.size:
            return self.head_of(latest)
        exact = self.heads.exactly(size)
        if exact is not None:
            return self.head_of(exact)
        proof = tuple(self.proofs.consistency(size, latest.size))
        note = self.view.witnessed(latest)
        return TreeHeadInfo(self.origin, size, self.proofs.root(size), latest, note, proof)

    def head_of(self, signed: SignedCheckpoint) -> TreeHeadInfo:
        """The tree head of exactly ``signed``'s size, its note with any cosignatures."""
        return TreeHeadInfo(
            self.origin,
            signed.size,
            signed.checkpoint.root_hash,
            signed,
            self.view.witnessed(signed),
        )

    # -- entries ------------------------------------------------------------------------------

    def entry(self, index: int, size: int) -> bytes:
        """The leaf data of entry ``index``, which must be below ``size``."""
        if not 0 <= index < size:
            raise NotFoundError(f"couldn't find entry {index}: the tree has {size} entries")
        data = self.store.read_entries(index, index + 1)
        if not data:
            raise NotFoundError(f"couldn't find entry {index}")
        return data[0]

    def query_entries(self, query: EntryQuery) -> list[tuple[int, bytes]]:
        """Entries matching ``query``; ``query.subject`` may name a subject by id or by any
        vkey it held, which finds every entry indexed under any of its keys (see
        :func:`ledger.statements.logged.subject_keys`)."""
        if query.subject is None:
            return self.store.query_entries(query)
        keys = self.subject_index_keys(query.subject)
        found: dict[int, bytes] = {}
        for key in keys:
            for index, data in self.store.query_entries(replace(query, subject=key)):
                found[index] = data
        return [(i, found[i]) for i in sorted(found)[: query.limit]]

    def subject_index_keys(self, key: str) -> list[str]:
        """The index strings of the subject ``key`` names (its application and grievance
        indexes and its vkeys), or ``[key]`` when it names no subject (e.g. a wild model's key)."""
        with self.reader.latest() as (state, _):
            subject_id = state.subject_id_of(int(key) if key.isascii() and key.isdecimal() else key)
            if subject_id is None:
                return [key]
            subject = state.subjects[subject_id]
            keys = [str(i) for i in subject.applications]
            keys += [str(g.index) for g in state.grievances.values() if g.subject_id == subject_id]
            keys += subject.vkeys
            return keys

    # -- precedent ----------------------------------------------------------------------------

    def precedent(self, at: int | None, audit_time_ms: int | None) -> Precedent:
        """The precedent report at the latest checkpoint, or at tree size ``at``.

        The audit time defaults to now (to the second) at the latest checkpoint — a report of
        the same size computed less than :data:`PRECEDENT_FRESH_S` ago is reused, as it names
        its own audit time — and to the last entry's log time for a past size (the report as it
        stood then); it may never precede the last entry's log time
        (:class:`~ledger.errors.RefusedError`). O(state) to compute: on a large log, seconds.
        """
        latest = self.heads.latest()
        if at is None or at == latest.size:
            if audit_time_ms is None:
                recent = self.precedents.recent(latest.size)
                if recent is not None:
                    return recent
            with self.reader.latest() as (state, head):
                audit = audit_time_ms
                if audit is None:
                    last = state.log_time_ms_at(state.size - 1) if state.size else 0
                    audit = max(last, now_ms() // 1000 * 1000)
                cached = self.precedents.get(head.size, audit)
                if cached is not None:
                    return cached
                info = self.head_of(head)
                report = precedent_report(state, checkpoint=_summary(info), audit_time_ms=audit)
            precedent = Precedent(report, info)
            self.precedents.put(info.size, audit, precedent, latest=audit_time_ms is None)
            return precedent
        info = self.tree_head_under(latest, at)
        state = self.reader.at(at)
        audit = audit_time_ms
        if audit is None:
            audit = state.log_time_ms_at(at - 1) if at else 0
        cached = self.precedents.get(at, audit)
        if cached is not None:
            return cached
        precedent = Precedent(
            precedent_report(state, checkpoint=_summary(info), audit_time_ms=audit), info
        )
        self.precedents.put(at, audit, precedent)
        return precedent

    def fresh_at_latest(self, name: str, compute: Callable[[ProtocolState, TreeHeadInfo], T]) -> T:
        """``compute(state, head)`` at the latest checkpoint, under the read side's lock; the
        result is reused for :data:`PRECEDENT_FRESH_S` while the log keeps the same size (for
        answers judged "now" that cost O(state) to compute: the summary, /llms.txt)."""
        latest = self.heads.latest()
        with self._fresh_lock:
            cached = self._fresh.get(name)
        if (
            cached is not None
            and cached[1] == latest.size
            and time.monotonic() - cached[0] < PRECEDENT_FRESH_S
        ):
            return cast(T, cached[2])
        with self.reader.latest() as (state, head):
            value = compute(state, self.head_of(head))
            size = head.size
        with self._fresh_lock:
            self._fresh[name] = (time.monotonic(), size, value)
        return value

    # -- health -------------------------------------------------------------------------------

    def health(self) -> HealthInfo:
        """Apply the health rule.

        Healthy iff (1) the latest stored checkpoint verifies under the log's key, (2) the
        sequencer, if this process runs one, has not halted, and (3) no submission has been
        waiting longer than ``settings.healthy_checkpoint_age_s`` since the later of the last
        checkpoint this process signed and the moment the submission arrived. An idle log signs
        nothing and waits on nothing, so it stays healthy however old its checkpoint; a log
        that takes submissions but signs no checkpoint for them goes unhealthy.
        """
        reasons: list[str] = []
        size: int | None = None
        try:
            size = self.heads.latest().size
        except LedgerError as exc:
            reasons.append(f"the latest checkpoint can't be trusted: {exc}")
        sequencer: Literal["running", "halted", "none"] = "none"
        last_signed: int | None = None
        if self.sequencer is not None:
            sequencer = "running"
            if self.sequencer.fatal is not None:
                sequencer = "halted"
                reasons.append(f"the sequencer halted: {self.sequencer.fatal}")
            last_signed = self.sequencer.last_signed_ms or None
        oldest = self.waiting.oldest_ms()
        if oldest is not None:
            since = max(oldest, last_signed or 0)
            stalled = now_ms() - since
            limit = self.settings.healthy_checkpoint_age_s * 1000
            if stalled > limit:
                reasons.append(
                    f"a submission has waited {stalled} ms without a checkpoint being signed "
                    f"(limit {limit} ms)"
                )
        return HealthInfo(
            healthy=not reasons,
            reasons=tuple(reasons),
            size=size,
            sequencer=sequencer,
            waiting=self.waiting.count(),
            oldest_waiting_ms=oldest,
            last_signed_ms=last_signed,
            state_size=self.reader.size,
        )

    def update_gauges(self) -> None:
        """Refresh the gauges that are read, not counted (called before each scrape)."""
        m = self.metrics
        seen = self.heads.last_seen
        if seen is not None:
            m.tree_size.set(seen.size)
        m.state_size.set(self.reader.size)
        m.waiting.set(self.waiting.count())
        if self.sequencer is not None:
            m.pending.set(self.sequencer.pending)
            if self.sequencer.last_signed_ms:
                m.checkpoint_age.set((now_ms() - self.sequencer.last_signed_ms) / 1000)


def _summary(head: TreeHeadInfo) -> dict[str, Any]:
    return {
        "origin": head.origin,
        "size": head.size,
        "root_hash_b64": base64.b64encode(head.root_hash).decode(),
    }


def load_signer(settings: Settings, view: LogView) -> Signer | None:
    """The log's signer from its key file, checked against the log's vkey; None if read-only."""
    if settings.read_only:
        return None
    key_path = settings.key_path
    if key_path is None and view.identity.key_path:
        key_path = Path(view.identity.key_path)
    if key_path is None:
        return None
    try:
        text = key_path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise FatalError(f"couldn't read the log key {key_path}: {exc}") from exc
    signer = Signer.parse_private_key(text)
    if signer.vkey != view.identity.log_vkey:
        raise FatalError(
            f"couldn't use key {key_path}: its vkey {signer.vkey} is not this log's "
            f"{view.identity.log_vkey}"
        )
    return signer
