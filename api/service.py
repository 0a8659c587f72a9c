"""The service's state, one per process, built in ``lifespan``: the store, the sequencer, and the
read side that every query endpoint shares, behind one :class:`LedgerService`.

Its parts, one module each:

- :mod:`api.heads` — :class:`~api.heads.Heads` (the latest checkpoint, verified),
  :class:`~api.heads.TreeHeadInfo` and :class:`~api.heads.Proofs` (proofs from stored tiles);
- :mod:`api.reader` — :class:`~api.reader.ProtocolReader`, the protocol state caught up with the
  store (every replayed entry checked against the stored tiles), and replays of prefixes;
- :mod:`api.precedents` — :class:`~api.precedents.ReportStream`: a full precedent report
  (:meth:`LedgerService.precedent`) is streamed from a worker thread, item by item, and never
  kept; :meth:`LedgerService.fresh_at_latest` reuses the small answers judged "now" (what is due,
  a summary where no aggregates are stored) for a minute while the log does not grow;
- :mod:`api.writer` — :func:`~api.writer.load_signer`, the submissions in flight
  (:class:`~api.writer.Waiting`) and the bridge from the sequencer's thread to the event loop;
- :mod:`api.clock` — the wall clock, for answers judged "now".

This module holds :class:`LedgerService`, which ties them together — the write path
(:meth:`~LedgerService.submit`), tree heads, entries and the subject index, precedent reports —
and the health rule (:meth:`~LedgerService.health`).

Every answer that depends on a tree size names a :class:`~api.heads.TreeHeadInfo`: the size and
root it was computed at and the signed checkpoint that vouches for them (see
``api.wire.TreeHead``).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar, cast

from api.clock import now_ms
from api.heads import Heads, Proofs, TreeHeadInfo
from api.limits import RateLimiter
from api.memory import release_free_memory
from api.observability import Metrics
from api.precedents import HEAVY_AT_ONCE, HEAVY_WAIT_S, PRECEDENT_FRESH_S, SYNC_BUDGET_S
from api.problems import ProblemError, retry_later
from api.reader import ProtocolReader
from api.report_cache import Claim, KeptReport, Rendering, ReportCache, report_key
from api.report_sections import report_pieces
from api.settings import Settings
from api.writer import Waiting, settler
from ledger.errors import FatalError, LedgerError, MalformedError
from ledger.protocol.due import body_deadlines_ms
from ledger.protocol.keys import checked_vkey, key_label, public_key
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import StoredProtocolState
from ledger.server.logview import LogView, NotFoundError, SignedCheckpoint
from ledger.server.sequencer import EntryPolicy, Prepared, Receipt, Sequencer
from ledger.storage.base import EntryQuery
from ledger.storage.sql import SqlLogStore
from ledger.tlog.note import VerifierKey, excerpt
from ledger.witness.cosigner import Cosigner

log = logging.getLogger("api.service")

T = TypeVar("T")


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


def entry_index_key(key: str) -> str:
    """The string the entry index stores for ``key`` (a subject id, or a vkey): a vkey becomes
    its public key in standard base64, since entries are indexed by public key (a key is its
    public key, whatever its name: :func:`ledger.statements.logged.subject_keys`). Raises
    :class:`~ledger.errors.MalformedError` for a string with a ``+`` that is not a valid vkey."""
    if "+" not in key:
        return key
    try:
        return key_label(public_key(checked_vkey(key)))
    except ValueError as err:
        raise MalformedError(f"couldn't read key {excerpt(key)}: {err}") from None


@dataclass(frozen=True, slots=True)
class KeptLookup:
    """What the report cache holds for one repeatable precedent request
    (:meth:`LedgerService.kept_precedent`): the tree head to name, the report's key
    (:func:`~api.report_cache.report_key`) and the kept report, checked, or None."""

    head: TreeHeadInfo
    key: str
    kept: KeptReport | None


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
    report_cache: ReportCache | None = None
    """Where finished repeatable reports are kept (:mod:`api.report_cache`); None: not kept."""
    integrity_failure: str | None = None
    """None while the store is sound; once damage or a fork is detected (by the sequencer, or
    by a reader replaying the store), a one-line reason, and this process has stopped writing
    for good: submissions are refused with a 503 naming it, health and readiness report it.
    Set only through :meth:`stop_writing`; cleared only by a restart (which checks again)."""
    waiting: Waiting = field(default_factory=Waiting)
    _fresh: dict[str, tuple[float, int, object, float]] = field(default_factory=dict)
    _fresh_lock: threading.Lock = field(default_factory=threading.Lock)
    _refreshing: set[str] = field(default_factory=set)
    _heavy_turns: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(HEAVY_AT_ONCE)
    )

    @property
    def read_only(self) -> bool:
        """True when this process has no sequencer (no log key, or ``read_only``)."""
        return self.sequencer is None

    # -- writes -------------------------------------------------------------------------------

    def stop_writing(self, error: FatalError) -> None:
        """Damage or a fork was detected: stop writing at once and for good, and say why
        (:attr:`integrity_failure`). Never append on top of damage. Idempotent; thread-safe
        enough (the first reason wins, a later one is only logged)."""
        if self.integrity_failure is not None:
            return
        self.integrity_failure = str(error)
        log.critical("stopped writing: %s", error)
        if self.sequencer is not None:
            self.sequencer.halt(error)

    def _writer(self) -> Sequencer:
        """This process's sequencer; a 503 problem on a read-only server, or once writing has
        stopped on damage (:attr:`integrity_failure`)."""
        if self.integrity_failure is not None:
            raise ProblemError(
                503,
                "Log halted",
                f"couldn't accept the submission: writing stopped: {self.integrity_failure}",
                kind="halted",
            )
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
        Raises :class:`~ledger.server.sequencer.QueueFullError` at once when the sequencer's
        queue is full (answered 503 with ``Retry-After``), and a 503 problem on a read-only
        server.
        """
        sequencer = self._writer()
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[Receipt, T]] = loop.create_future()
        token = self.waiting.start()
        try:
            sequencer.submit(prepared).add_done_callback(settler(loop, answer, finish))
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
                    future.add_done_callback(settler(loop, answer, finish))
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
        indexes and the public keys of every key it held), or the index string of ``key``
        itself when it names no subject (e.g. a wild model's key: :func:`entry_index_key`)."""
        with self.reader.latest() as (state, _):
            subject_id = state.subject_id_of(int(key) if key.isascii() and key.isdecimal() else key)
            if subject_id is None:
                return [entry_index_key(key)]
            subject = state.subjects[subject_id]
            keys = [str(i) for i in subject.applications]
            keys += [str(g.index) for g in state.grievances.values() if g.subject_id == subject_id]
            keys += sorted({key_label(public_key(v)) for v in subject.vkeys})
            return keys

    # -- precedent ----------------------------------------------------------------------------

    @contextmanager
    def precedent(
        self,
        at: int | None,
        audit_time_ms: int | None,
        *,
        as_text: bool = False,
        claim: Claim | None = None,
    ) -> Iterator[tuple[TreeHeadInfo, Iterator[str]]]:
        """The precedent report at the latest checkpoint, or at tree size ``at``: the tree head
        it names and its JSON text in pieces (:func:`~ledger.protocol.audit.precedent_pieces`;
        with ``as_text``, its plain text: :func:`~ledger.protocol.audit.precedent_text_pieces`),
        to be read before the context is left. Computed item by item, so memory does not grow
        with the report; a repeatable request's report (an explicit audit time, or a past size)
        is also kept, as it is computed, in the report cache (:mod:`api.report_cache`), which
        answers the same request next time (:meth:`kept_precedent`). ``claim``: the request's
        claim on computing that report (:meth:`~api.report_cache.ReportCache.claim`), whose
        keeper keeps it; the caller ends it however the computation ends. A JSON report, judged
        now or not, reads and keeps what does not depend on the audit time
        (:mod:`api.report_sections`): reports at one checkpoint compute that once.

        The audit time defaults to now (to the second, never before the last entry's log time)
        at the latest checkpoint, and to the last entry's log time for a past size (the report
        as it stood then); it may never precede the last entry's log time
        (:class:`~ledger.errors.RefusedError`, raised on entering). Holds one of
        :data:`HEAVY_AT_ONCE` turns for as long as the pieces are read; a request that would
        wait longer than :data:`HEAVY_WAIT_S` for its turn gets a 503 with ``Retry-After``.
        What precedes the first piece: the state at the size (a flush point and at most a batch
        of replay) and, where the state holds the precedent's aggregates, a few range reads;
        elsewhere the rules run over the records until the first broken judgement (all of them
        when none is broken: :mod:`ledger.protocol.audit`).
        Blocking: run it in a worker thread (:class:`~api.precedents.ReportStream`).
        """
        rendering: Rendering = "text" if as_text else "json"
        cache = self.report_cache
        latest = self.heads.latest()
        if at is None or at == latest.size:
            with self.heavy("the precedent report"), self.reader.latest() as (state, head):
                info = self.head_of(head)
                if audit_time_ms is None:
                    last = state.log_time_ms_at(state.size - 1) if state.size else 0
                    audit = max(last, now_ms() // 1000 * 1000)
                    yield info, report_pieces(state, info, audit, as_text=as_text, cache=cache)
                    return
                yield (
                    info,
                    self._kept_or_computed(
                        rendering,
                        info,
                        audit_time_ms,
                        lambda: report_pieces(
                            state, info, audit_time_ms, as_text=as_text, cache=cache
                        ),
                        claim,
                    ),
                )
            return
        info = self.tree_head_under(latest, at)
        with self.heavy(f"the precedent report at size {at}"):
            audit = audit_time_ms if audit_time_ms is not None else self._log_time_before(at)

            def compute() -> Iterator[str]:
                past = self.reader.at(at)
                # A past size's lists come from the report text the database keeps (about a
                # second at a million entries): not worth 150 MB of sections on disk for the
                # rare later report at that size at another audit time.
                kept = isinstance(past, StoredProtocolState) and past.keeps_report_text()
                sections = None if kept else cache
                return report_pieces(past, info, audit, as_text=as_text, cache=sections)

            yield info, self._kept_or_computed(rendering, info, audit, compute, claim)

    def _kept_or_computed(
        self,
        rendering: Rendering,
        info: TreeHeadInfo,
        audit_time_ms: int,
        compute: Callable[[], Iterator[str]],
        claim: Claim | None = None,
    ) -> Iterator[str]:
        """A repeatable report's pieces: read from the report cache when it was kept
        meanwhile (an identical request computed it while this one waited for its turn),
        else ``compute()`` (which raises what refuses the request), kept as it passes (by
        ``claim``'s keeper when it claimed this report)."""
        cache = self.report_cache
        if cache is None:
            return compute()
        key = report_key(rendering, self.origin, info.size, info.root_hash, audit_time_ms)
        return cache.kept_or_keeping(key, compute, claim)

    def _log_time_before(self, size: int) -> int:
        """The log time of the last entry below ``size`` (0 for none): a past size's default
        audit time, read from the entry's facts (checked against its tile), not by building
        the state at ``size``."""
        return self.reader.log_time_ms_at(size - 1) if size else 0

    def kept_precedent(
        self, at: int | None, audit_time_ms: int | None, *, as_text: bool = False
    ) -> KeptLookup | None:
        """Where the report cache (:mod:`api.report_cache`) stands on exactly what
        :meth:`precedent` would compute for this request: the tree head to name now (with a
        consistency proof to the latest checkpoint), the report's key, and the kept report
        checked against its digest if there is one; or None: no cache, or a report judged
        now (no audit time, at the latest checkpoint), which is never kept. Takes no turn: a
        kept report is read, not computed. Raises
        :class:`~ledger.server.logview.NotFoundError` for a size past the tree. Blocking."""
        cache = self.report_cache
        if cache is None:
            return None
        latest = self.heads.latest()
        size = latest.size if at is None else at
        info = self.tree_head_under(latest, size)
        if audit_time_ms is None and size == latest.size:
            return None  # judged now: never the same report twice
        audit = audit_time_ms if audit_time_ms is not None else self._log_time_before(size)
        rendering: Rendering = "text" if as_text else "json"
        key = report_key(rendering, self.origin, size, info.root_hash, audit)
        return KeptLookup(info, key, cache.open(key))

    @contextmanager
    def heavy(self, what: str) -> Iterator[None]:
        """Hold one of the :data:`HEAVY_AT_ONCE` turns for a computation that scans the
        derived state, so that such requests cannot starve the cheap ones (checkpoints, tiles,
        entries, proofs) of the interpreter; 503 ``busy`` with ``Retry-After`` after
        :data:`HEAVY_WAIT_S`."""
        if not self._heavy_turns.acquire(timeout=HEAVY_WAIT_S):
            raise retry_later(
                "Busy",
                f"couldn't compute {what} now: {HEAVY_AT_ONCE} audit computation(s) are "
                "running; retry shortly",
                kind="busy",
                retry_after_s=5,
            )
        try:
            yield
        except FatalError as exc:  # an entry read for the computation is damaged
            self.stop_writing(exc)
            raise
        finally:
            self._heavy_turns.release()
            # A scan builds and drops a great many small objects: hand the freed heap back to
            # the system, so the process's memory returns to its resting size after a burst.
            release_free_memory()

    def fresh_at_latest(self, name: str, compute: Callable[[ProtocolState, TreeHeadInfo], T]) -> T:
        """``compute(state, head)`` at the latest checkpoint, for answers judged "now" that
        scan the derived state (the summary, the full report, what is due, /llms.txt), each
        naming the checkpoint it was computed at.

        Reused for :data:`PRECEDENT_FRESH_S` while the log keeps the same size. When the log
        has grown: recomputed now if the last computation took at most
        :data:`SYNC_BUDGET_S` (a small log: always the latest checkpoint); otherwise the last
        answer is returned at once and one computation of the new one starts in the background
        (per ``name``), so a large log answers in milliseconds with the checkpoint of the
        answer at most one computation behind the latest, and a request never waits for a
        scan but the very first."""
        latest = self.heads.latest()
        with self._fresh_lock:
            cached = self._fresh.get(name)
        if cached is not None:
            computed, size, value, cost = cached
            if size == latest.size and time.monotonic() - computed < PRECEDENT_FRESH_S:
                return cast(T, value)
            if cost > SYNC_BUDGET_S:
                self._refresh_later(name, compute)
                return cast(T, value)
        return self._compute_fresh(name, compute)

    def _compute_fresh(self, name: str, compute: Callable[[ProtocolState, TreeHeadInfo], T]) -> T:
        with self.heavy(name):
            started = time.perf_counter()
            with self.reader.latest() as (state, head):
                value = compute(state, self.head_of(head))
                size = head.size
            cost = time.perf_counter() - started
        with self._fresh_lock:
            self._fresh[name] = (time.monotonic(), size, value, cost)
        return value

    def _refresh_later(
        self, name: str, compute: Callable[[ProtocolState, TreeHeadInfo], T]
    ) -> None:
        """Recompute ``name`` in a background thread, unless that is already under way."""
        with self._fresh_lock:
            if name in self._refreshing:
                return
            self._refreshing.add(name)

        def run() -> None:
            try:
                self._compute_fresh(name, compute)
            except (LedgerError, ProblemError) as exc:
                log.warning("couldn't refresh %s: %s", name, exc)
            except Exception:
                log.exception("couldn't refresh %s", name)
            finally:
                with self._fresh_lock:
                    self._refreshing.discard(name)

        threading.Thread(target=run, name=f"refresh-{name}", daemon=True).start()

    # -- health -------------------------------------------------------------------------------

    def health(self) -> HealthInfo:
        """Apply the health rule.

        Healthy iff (1) the latest stored checkpoint verifies under the log's key, (2) the
        sequencer, if this process runs one, has not halted and no damage was detected in the
        store (:attr:`integrity_failure`), and (3) no submission has been
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
        if self.integrity_failure is not None:
            reasons.append(f"writing stopped on damage: {self.integrity_failure}")
        if self.sequencer is not None:
            sequencer = "running"
            if self.sequencer.fatal is not None:
                sequencer = "halted"
                if self.integrity_failure is None:
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

    def _update_due_gauges(self, seen: SignedCheckpoint | None) -> None:
        """The nearest deadline the body owes and how many are overdue, from the deadlines at
        the latest checkpoint (cached per size: only a new entry changes them). Left as they
        were while the read side is still catching up, so that a scrape never waits for it."""
        if seen is None or self.reader.size < seen.size:
            return
        try:
            deadlines = self.fresh_at_latest("due-deadlines", lambda s, _: body_deadlines_ms(s))
        except (LedgerError, ProblemError):
            return
        now = now_ms()
        m = self.metrics
        m.due_nearest.set((deadlines[0] - now) / 1000 if deadlines else math.nan)
        m.due_overdue.set(bisect.bisect_left(deadlines, now))

    def update_gauges(self) -> None:
        """Refresh the gauges that are read, not counted (called before each scrape)."""
        m = self.metrics
        seen = self.heads.last_seen
        if seen is not None:
            m.tree_size.set(seen.size)
        m.state_size.set(self.reader.size)
        m.waiting.set(self.waiting.count())
        self._update_due_gauges(seen)
        m.integrity_failure.set(0 if self.integrity_failure is None else 1)
        if self.sequencer is not None:
            m.pending.set(self.sequencer.pending)
            m.clock_behind.set(self.sequencer.clock_behind_ms)
            m.clock_steps.set(self.sequencer.clock_steps)
            if self.sequencer.last_signed_ms:
                m.checkpoint_age.set((now_ms() - self.sequencer.last_signed_ms) / 1000)
