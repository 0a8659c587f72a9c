"""The verifier: re-derive a log from what any source serves and check every link.

Sources are anything that can hand out a signed checkpoint and tlog-tiles resources: the live
service over HTTP (:class:`ledger.client.json_api.HttpLogSource`), a static mirror directory
(:class:`DirectorySource`), or a database (:class:`ledger.server.logview.LogView`). The verifier trusts
none of them: it needs only the log's vkey, and (to continue) its own :class:`~ledger.verifier.trust.
TrustState` from a previous run.

Two entry points share one engine:

- :func:`verify_log` checks the tree and the hash chain, and hands every entry in order to an
  optional ``entry_check`` (for example :class:`ledger.verifier.replay.ReplayCheck`);
- :func:`verify_ledger` checks everything an amnesty log promises — tree, chain, every
  statement's format and signatures on all cores, and the protocol replayed in order — from
  scratch or incrementally from a trust state, with split-view detection.

Steps of a verification (the numbers the code's comments use):

1. open the checkpoint: the log's signature must verify and the origin must be the key's name;
2. with a trust state: the new checkpoint must not be older; at the same size it must have the
   same root; at a larger size the consistency proof, computed from the source's tiles, must
   verify — otherwise :class:`SplitViewError` carries evidence (:mod:`ledger.verifier.evidence`), or a
   plain failure if the source's tiles do not even match its own checkpoint;
3. stream the new entry bundles in order, bounded memory (a window of bundles in flight); the
   entries of a partly verified first bundle must be the ones verified before;
4. per entry (in worker processes for :func:`verify_ledger`): its leaf hash, canonical JSON
   envelope, ``index`` is its position; the statement parses for this origin and every listed
   signer's signature line verifies;
5. per entry, in order (in this process): its leaf hash is the one the level-0 tile serves, its
   ``log_time_ms`` does not decrease, its ``prev`` is the root of all entries before it (the
   hash chain), then the protocol admits and applies it (or ``entry_check`` accepts it);
6. recompute every hash tile and compare it byte for byte with the tile the source serves;
7. the recomputed root must equal the checkpoint's root hash.

A leaf hash that differs from the served level-0 tile means one of the two was altered; the
verifier decides which from the next entry's ``prev`` (or, for the last entry, from the signed
root) and names that one. Every failure raises :class:`VerificationFailure` naming the first bad
entry (``index``) and the resource it came from (``where``: a tile path or ``checkpoint``).
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from ledger.errors import LedgerError, MalformedError, ProofError, VerificationError
from ledger.protocol.audit import precedent_report
from ledger.protocol.state import ProtocolState
from ledger.protocol.statements import LoggedStatement
from ledger.statements.entry import LogEntry
from ledger.statements.statement import STATEMENT_HEADER, parse_statement, verified_signers
from ledger.tlog.checkpoint import Checkpoint, open_checkpoint
from ledger.tlog.merkle import HASH_SIZE, consistency_proof, leaf_hash, root_at, verify_consistency
from ledger.tlog.note import VerifierKey
from ledger.tlog.tiles import (
    ENTRIES_LEVEL,
    TILE_HEIGHT,
    TILE_WIDTH,
    TiledTree,
    TileID,
    TileNodeReader,
    TileReader,
    decode_bundle,
    parse_tile_path,
    tile_width_at,
)
from ledger.verifier.evidence import SplitView
from ledger.verifier.trust import TrustState

PARALLEL_THRESHOLD: Final = 8 * TILE_WIDTH
"""Below this many new entries :func:`verify_ledger` checks signatures in this process: starting
worker processes would cost more than it saves."""


class LogSource(Protocol):
    """Where a verifier reads a log from. Each method raises a LedgerError if it cannot.

    With ``fetch_threads > 1`` the verifier calls :meth:`tile` from several threads at once.
    """

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note."""

    def tile(self, tile: TileID) -> bytes:
        """The bytes of a hash tile or entry bundle."""


class VerificationFailure(VerificationError):
    """The log failed verification.

    ``index`` names the first bad entry when there is one; ``where`` the resource at fault (a
    tile or bundle path, ``checkpoint``, or ``consistency proof``).
    """

    def __init__(self, message: str, *, index: int | None = None, where: str | None = None):
        super().__init__(message)
        self.index = index
        self.where = where


class SplitViewError(VerificationFailure):
    """The source's checkpoint contradicts the trusted one; ``evidence`` proves it."""

    def __init__(self, message: str, evidence: SplitView) -> None:
        super().__init__(message, where="checkpoint")
        self.evidence = evidence


EntryCheck = Callable[[LogEntry, bytes], None]
"""Called for every entry, in order, with the entry and its leaf hash; raises to reject it."""

Progress = Callable[[int, int], None]
"""Called with (entries verified so far, entries to verify) in this run."""

Sink = Callable[[TileID, bytes], None]
"""Receives every bundle and tile the run verified, as served (a mirror writes them)."""


@dataclass
class VerifiedLog:
    """The result of a successful verification.

    ``entries`` counts the entries verified in this run: ``checkpoint.size - start_size``.
    ``protocol`` is the replayed protocol state (:func:`verify_ledger` only) and ``edge_tiles``
    the tree's right edge; together with the checkpoint they make the next run's trust state.
    """

    checkpoint: Checkpoint
    checkpoint_note: bytes
    entries: int
    tiles_checked: int
    last_log_time_ms: int
    start_size: int = 0
    protocol: ProtocolState | None = None
    edge_tiles: tuple[bytes, ...] = ()
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "ok": True,
            "origin": self.checkpoint.origin,
            "size": self.checkpoint.size,
            "root_hash": base64.b64encode(self.checkpoint.root_hash).decode(),
            "start_size": self.start_size,
            "entries_verified": self.entries,
            "tiles_checked": self.tiles_checked,
            "last_log_time_ms": self.last_log_time_ms,
            **self.details,
        }

    def precedent_report(self, audit_time_ms: int) -> dict[str, Any]:
        """The precedent audit of the replayed protocol at this checkpoint
        (:func:`ledger.protocol.audit.precedent_report`), judged at ``audit_time_ms`` or at the
        last entry's log time if that is later. :func:`verify_ledger` results only."""
        if self.protocol is None:
            raise MalformedError(
                "couldn't compute the precedent report: this verification did not replay the "
                "protocol"
            )
        return precedent_report(
            self.protocol,
            checkpoint={
                "origin": self.checkpoint.origin,
                "size": self.checkpoint.size,
                "root_hash_b64": base64.b64encode(self.checkpoint.root_hash).decode(),
            },
            audit_time_ms=max(audit_time_ms, self.last_log_time_ms),
        )

    def trust_state(self, log_key: VerifierKey, tools: dict[str, Any] | None = None) -> TrustState:
        """The trust state to continue from this result (:func:`verify_ledger` results only)."""
        if self.protocol is None:
            raise MalformedError(
                "couldn't make a trust state: this verification did not replay the protocol"
            )
        return TrustState(
            log_vkey=log_key.vkey(),
            checkpoint_note=self.checkpoint_note,
            checkpoint=self.checkpoint,
            last_log_time_ms=self.last_log_time_ms,
            edge_tiles=self.edge_tiles,
            protocol=self.protocol,
            tools=dict(tools or {}),
        )


# ------------------------------------------------------------------------- entry points


def verify_log(
    source: LogSource,
    log_key: VerifierKey,
    *,
    entry_check: EntryCheck | None = None,
    progress: Progress | None = None,
) -> VerifiedLog:
    """Fully verify the tree and hash chain of the log ``source`` serves, signed by ``log_key``.

    Steps 1 and 3-7 of the module docstring, in this process; step 5 hands each entry to
    ``entry_check`` (statements are not parsed otherwise). Raises :class:`VerificationFailure`.
    """
    note, checkpoint = _open(source, log_key)
    run = _Run(
        source,
        checkpoint,
        _Start.empty(),
        statements=False,
        entry_check=entry_check,
        progress=progress,
    )
    run.execute(pool=None, in_flight=1, fetch_threads=1)
    return run.result(note)


def verify_ledger(
    source: LogSource,
    log_key: VerifierKey,
    *,
    trusted: TrustState | None = None,
    workers: int | None = None,
    fetch_threads: int = 1,
    progress: Progress | None = None,
    sink: Sink | None = None,
) -> VerifiedLog:
    """Verify an amnesty log: everything in the module docstring, steps 1-7.

    ``trusted`` (from a previous run) makes the run incremental: only entries after its size
    are fetched and verified, and its protocol state is advanced in place. ``workers`` processes
    check statements and signatures (default: one per CPU when there are at least
    :data:`PARALLEL_THRESHOLD` new entries, else none: all in this process); the protocol is
    replayed here, in log order. ``fetch_threads`` fetches bundles and tiles concurrently (for
    remote sources). ``sink`` receives every verified bundle and tile (see :data:`Sink`).

    Raises :class:`SplitViewError` (with evidence) when the source's checkpoint is inconsistent
    with ``trusted``, and :class:`VerificationFailure` for anything else that fails.
    """
    # Step 1: the checkpoint.
    note, checkpoint = _open(source, log_key)
    if trusted is None:
        start = _Start.empty()
    else:
        if trusted.log_vkey != log_key.vkey():
            raise VerificationFailure(
                f"couldn't continue from the trust state: it is for {trusted.log_vkey}, not "
                f"{log_key.vkey()}"
            )
        # Step 2: consistent with what was verified before.
        _check_consistent(source, trusted, note, checkpoint)
        try:
            start = _Start.from_trust(trusted)
        except LedgerError as exc:
            raise VerificationFailure(f"couldn't continue from the trust state: {exc}") from exc
    new = checkpoint.size - start.size
    if workers is None:
        workers = (os.cpu_count() or 1) if new >= PARALLEL_THRESHOLD else 0
    run = _Run(source, checkpoint, start, statements=True, progress=progress, sink=sink)
    if workers > 0 and new > 0:
        with _statement_pool(workers) as pool:
            run.execute(pool=pool, in_flight=2 * workers + 2, fetch_threads=fetch_threads)
    else:
        run.execute(pool=None, in_flight=1, fetch_threads=fetch_threads)
    return run.result(note)


def tile_reader(source: LogSource, size: int) -> TileReader:
    """A :data:`~ledger.tlog.tiles.TileReader` over the hash tiles ``source`` serves for the tree of
    ``size`` entries (for :class:`~ledger.tlog.tiles.TileNodeReader` and ``TiledTree.load``).

    Fetch failures raise :class:`VerificationFailure` naming the tile.
    """

    def read(level: int, index: int) -> bytes:
        width = tile_width_at(level, index, size)
        if width == 0:
            raise VerificationFailure(
                f"couldn't read tile (level {level}, index {index}): the tree of size {size} has "
                "no such tile"
            )
        return _fetch(source, TileID(level, index, width))

    return read


# ------------------------------------------------------------------------- steps 1 and 2


def _open(source: LogSource, log_key: VerifierKey) -> tuple[bytes, Checkpoint]:
    try:
        note = source.checkpoint()
    except LedgerError as exc:
        raise VerificationFailure(
            f"couldn't fetch the checkpoint: {exc}", where="checkpoint"
        ) from exc
    try:
        return note, open_checkpoint(note, log_key)
    except LedgerError as exc:
        raise VerificationFailure(
            f"couldn't open the checkpoint: {exc}", where="checkpoint"
        ) from exc


def _check_consistent(
    source: LogSource, trusted: TrustState, note: bytes, checkpoint: Checkpoint
) -> None:
    """Step 2: raise unless ``checkpoint`` extends the trusted one."""
    old = trusted.checkpoint
    if checkpoint.size < old.size:
        raise VerificationFailure(
            f"couldn't verify the checkpoint: the source serves size {checkpoint.size}, older than "
            f"the size {old.size} verified before (a stale or rolled-back view)",
            where="checkpoint",
        )
    if checkpoint.size == old.size:
        if checkpoint.root_hash != old.root_hash:
            raise SplitViewError(
                f"couldn't verify the checkpoint: it has size {old.size} like the one verified "
                f"before, but root {checkpoint.root_hash.hex()} instead of {old.root_hash.hex()}: "
                "a split view",
                SplitView(
                    checkpoint1=trusted.checkpoint_note,
                    checkpoint2=note,
                    consistency_proof=(),
                    prefix_root=checkpoint.root_hash,
                    failed_check="equal sizes, different roots",
                ),
            )
        return
    reader = TileNodeReader(tile_reader(source, checkpoint.size), checkpoint.size)
    try:
        proof = consistency_proof(old.size, checkpoint.size, reader)
        verify_consistency(old.size, checkpoint.size, proof, old.root_hash, checkpoint.root_hash)
        return
    except VerificationFailure:
        raise
    except ProofError as exc:
        failed = str(exc)
    except LedgerError as exc:
        raise VerificationFailure(
            f"couldn't prove consistency from size {old.size} to {checkpoint.size}: {exc}",
            where="consistency proof",
        ) from exc
    # The proof fails from the trusted root. It is evidence only if it ties the source's own
    # tree of the old size to the new root; otherwise the source merely served bad tiles.
    prefix_root = root_at(old.size, reader)
    try:
        verify_consistency(old.size, checkpoint.size, proof, prefix_root, checkpoint.root_hash)
    except ProofError as exc:
        raise VerificationFailure(
            f"couldn't prove consistency from size {old.size} to {checkpoint.size}: {failed}; "
            f"the source's tiles do not match its own checkpoint either ({exc})",
            where="consistency proof",
        ) from exc
    raise SplitViewError(
        f"couldn't verify the checkpoint: the first {old.size} entries of the tree of size "
        f"{checkpoint.size} hash to {prefix_root.hex()}, but the checkpoint verified before says "
        f"{old.root_hash.hex()}: a split view",
        SplitView(
            checkpoint1=trusted.checkpoint_note,
            checkpoint2=note,
            consistency_proof=tuple(proof),
            prefix_root=prefix_root,
            failed_check=failed,
        ),
    )


# --------------------------------------------------------------------- steps 3 to 7: the run


@dataclass(slots=True)
class _Start:
    """Where a run starts: the verified tree, its last log time, its protocol state."""

    size: int
    tree: TiledTree
    last_log_time_ms: int
    level0_edge: bytes
    edge_tiles: list[bytes]
    protocol: ProtocolState

    @classmethod
    def empty(cls) -> _Start:
        return cls(0, TiledTree.empty(), 0, b"", [], ProtocolState())

    @classmethod
    def from_trust(cls, trusted: TrustState) -> _Start:
        return cls(
            trusted.size,
            trusted.tree(),
            trusted.last_log_time_ms,
            trusted.level0_edge(),
            list(trusted.edge_tiles),
            trusted.protocol,
        )


@dataclass(slots=True)
class _Bundle:
    """A fetched bundle: its new entries (from ``first``) and the served level-0 tile."""

    tile: TileID
    data: bytes
    first: int
    entries: list[bytes]
    level0: TileID
    served: bytes


@dataclass(slots=True)
class _Suspect:
    """An entry whose leaf hash differs from the one the level-0 tile serves for it."""

    index: int
    tile: TileID
    bundle: TileID


_Checked = tuple[bytes, bytes, int, bytes, str, int]
"""Step 4's result for one statement entry: leaf hash, prev, log time, statement id, the
statement's canonical JSON line, and a bit mask of the listed signers whose signature verified."""

_Decoded = tuple[bytes, LogEntry]
"""Step 4's result for one entry when statements are not parsed: leaf hash and entry."""

_ChunkError = tuple[int, str]


def check_statement_entries(
    origin: str, first: int, entries: Sequence[bytes]
) -> tuple[list[_Checked], _ChunkError | None]:
    """Step 4 for ``entries`` (indexes from ``first``): runs in a worker process.

    Returns the results of the entries that passed, in order, and ``(index, message)`` for the
    first one that failed, if any. Pure: no I/O, no shared state.
    """
    out: list[_Checked] = []
    header = len(STATEMENT_HEADER) + 1
    for offset, data in enumerate(entries):
        index = first + offset
        try:
            entry = LogEntry.decode(data)
            if entry.index != index:
                raise MalformedError(f"it says it is entry {entry.index}")
            signed = parse_statement(entry.statement.encode("utf-8"), origin=origin)
            verified = verified_signers(signed)
        except LedgerError as exc:
            return out, (index, str(exc))
        statement = signed.statement
        mask = 0
        for position, vkey in enumerate(statement.signers):
            if vkey in verified:
                mask |= 1 << position
        line = statement.text[header:-1]
        out.append(
            (leaf_hash(data), entry.prev, entry.log_time_ms, statement.statement_id, line, mask)
        )
    return out, None


def _decode_entries(
    first: int, entries: Sequence[bytes]
) -> tuple[list[_Decoded], _ChunkError | None]:
    """Step 4 without statements: decode the envelopes."""
    out: list[_Decoded] = []
    for offset, data in enumerate(entries):
        index = first + offset
        try:
            entry = LogEntry.decode(data)
        except LedgerError as exc:
            return out, (index, f"it does not decode: {exc}")
        if entry.index != index:
            return out, (index, f"it says it is entry {entry.index}")
        out.append((leaf_hash(data), entry))
    return out, None


def _statement_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for step 4, all started before this function returns.

    They are forked where the platform can (fast, and no re-import of the caller's main module,
    which ``spawn`` and ``forkserver`` would run again). A forked child only ever runs
    :func:`check_statement_entries`: pure computation on the bytes it is sent, touching no lock
    that another thread of this process could hold. Starting them all now, before the fetch
    threads, keeps those threads out of the fork.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    for started in [pool.submit(os.getpid) for _ in range(workers)]:
        started.result()
    return pool


class _Run:
    """One verification run from ``start`` to ``checkpoint`` (steps 3-7)."""

    def __init__(
        self,
        source: LogSource,
        checkpoint: Checkpoint,
        start: _Start,
        *,
        statements: bool,
        entry_check: EntryCheck | None = None,
        progress: Progress | None = None,
        sink: Sink | None = None,
    ) -> None:
        self.source = source
        self.checkpoint = checkpoint
        self.size = checkpoint.size
        self.start = start
        self.tree = start.tree
        self.last_time = start.last_log_time_ms
        self.protocol = start.protocol
        self.edges = start.edge_tiles
        self.entry_check = entry_check
        self.statements = statements
        self.progress = progress
        self.sink = sink
        self.suspect: _Suspect | None = None
        self.tiles_checked = 0
        self.types: Counter[str] = Counter()

    # -- driving -------------------------------------------------------------------------------

    def execute(self, *, pool: Executor | None, in_flight: int, fetch_threads: int) -> None:
        """Steps 3-7. With a ``pool``, step 4 runs there for up to ``in_flight`` bundles while
        this process does step 5 in order; memory stays bounded by that window."""
        window: deque[tuple[_Bundle, Future[Any] | tuple[Any, _ChunkError | None]]] = deque()
        origin = self.checkpoint.origin
        for bundle in self._bundles(fetch_threads):
            job: Future[Any] | tuple[Any, _ChunkError | None]
            if not self.statements:
                job = _decode_entries(bundle.first, bundle.entries)
            elif pool is None:
                job = check_statement_entries(origin, bundle.first, bundle.entries)
            else:
                job = pool.submit(check_statement_entries, origin, bundle.first, bundle.entries)
            window.append((bundle, job))
            while len(window) > in_flight:
                self._finish(*window.popleft())
        while window:
            self._finish(*window.popleft())
        self._end()

    def result(self, note: bytes) -> VerifiedLog:
        details: dict[str, object] = {}
        if self.statements:
            details["statement_types"] = dict(sorted(self.types.items()))
        return VerifiedLog(
            checkpoint=self.checkpoint,
            checkpoint_note=note,
            entries=self.size - self.start.size,
            tiles_checked=self.tiles_checked,
            last_log_time_ms=self.last_time,
            start_size=self.start.size,
            protocol=self.protocol if self.statements else None,
            edge_tiles=tuple(self.edges),
            details=details,
        )

    # -- step 3: fetching ----------------------------------------------------------------------

    def _bundles(self, threads: int) -> Iterator[_Bundle]:
        """The bundles holding new entries, in order, each with its level-0 tile."""
        first_bundle = self.start.size // TILE_WIDTH
        last_bundle = (self.size + TILE_WIDTH - 1) // TILE_WIDTH
        indexes = range(first_bundle, last_bundle if self.size > self.start.size else first_bundle)
        if threads <= 1:
            for b in indexes:
                yield self._prepare(b, *self._fetch_pair(b))
            return
        with ThreadPoolExecutor(threads) as fetcher:
            pending: deque[tuple[int, Future[tuple[bytes, bytes]]]] = deque()
            for b in indexes:
                pending.append((b, fetcher.submit(self._fetch_pair, b)))
                if len(pending) > 2 * threads:
                    head, future = pending.popleft()
                    yield self._prepare(head, *future.result())
            while pending:
                head, future = pending.popleft()
                yield self._prepare(head, *future.result())

    def _fetch_pair(self, b: int) -> tuple[bytes, bytes]:
        width = tile_width_at(ENTRIES_LEVEL, b, self.size)
        return (
            _fetch(self.source, TileID(ENTRIES_LEVEL, b, width)),
            _fetch(self.source, TileID(0, b, width)),
        )

    def _prepare(self, b: int, data: bytes, served: bytes) -> _Bundle:
        width = tile_width_at(ENTRIES_LEVEL, b, self.size)
        bundle_id = TileID(ENTRIES_LEVEL, b, width)
        tile_id = TileID(0, b, width)
        try:
            entries = decode_bundle(data, expected_count=width)
        except LedgerError as exc:
            raise VerificationFailure(
                f"couldn't verify {bundle_id.path()}: {exc}", where=bundle_id.path()
            ) from exc
        if len(served) != width * HASH_SIZE:
            raise VerificationFailure(
                f"couldn't verify {tile_id.path()}: it is {len(served)} bytes, not "
                f"{width * HASH_SIZE}",
                where=tile_id.path(),
            )
        first = b * TILE_WIDTH
        known = max(0, self.start.size - first)
        if known:
            self._check_known(bundle_id, tile_id, first, entries[:known], served)
        return _Bundle(bundle_id, data, first + known, entries[known:], tile_id, served)

    def _check_known(
        self, bundle: TileID, tile: TileID, first: int, entries: list[bytes], served: bytes
    ) -> None:
        """Step 3: entries verified in an earlier run must come back unchanged."""
        edge = self.start.level0_edge
        for offset, data in enumerate(entries):
            index = first + offset
            trusted = edge[offset * HASH_SIZE : (offset + 1) * HASH_SIZE]
            if leaf_hash(data) != trusted:
                raise VerificationFailure(
                    f"couldn't verify entry {index} in {bundle.path()}: it is not the entry "
                    f"verified at size {self.start.size} (its leaf hash changed)",
                    index=index,
                    where=bundle.path(),
                )
            if served[offset * HASH_SIZE : (offset + 1) * HASH_SIZE] != trusted:
                raise VerificationFailure(
                    f"couldn't verify {tile.path()}: the hash it serves for entry {index} is not "
                    f"the one verified at size {self.start.size}",
                    where=tile.path(),
                )

    # -- step 5: in order ----------------------------------------------------------------------

    def _finish(self, bundle: _Bundle, job: Future[Any] | tuple[Any, _ChunkError | None]) -> None:
        items, error = job.result() if isinstance(job, Future) else job
        base = bundle.first % TILE_WIDTH
        for offset, item in enumerate(items):
            index = bundle.first + offset
            position = (base + offset) * HASH_SIZE
            served = bundle.served[position : position + HASH_SIZE]
            if self.statements:
                leaf, prev, log_time = item[0], item[1], item[2]
            else:
                leaf, prev, log_time = item[0], item[1].prev, item[1].log_time_ms
            self._link(index, leaf, prev, log_time, served, bundle)
            try:
                if self.statements:
                    self._replay(index, item)
                elif self.entry_check is not None:
                    self.entry_check(item[1], leaf)
            except LedgerError as exc:
                raise VerificationFailure(
                    f"couldn't verify entry {index} in {bundle.tile.path()}: {exc}",
                    index=index,
                    where=bundle.tile.path(),
                ) from exc
            self.tree.append(leaf)
            self.last_time = log_time
        if error is not None:
            index, message = error
            if self.suspect is not None:
                self._blame_suspect(None)
            raise VerificationFailure(
                f"couldn't verify entry {index} in {bundle.tile.path()}: {message}",
                index=index,
                where=bundle.tile.path(),
            )
        if self.suspect is None:
            self._compare_tiles(bundle)
            if self.sink is not None:
                self.sink(bundle.tile, bundle.data)
        if self.progress is not None:
            self.progress(self.tree.size - self.start.size, self.size - self.start.size)

    def _link(
        self, index: int, leaf: bytes, prev: bytes, log_time: int, served: bytes, bundle: _Bundle
    ) -> None:
        """Step 5's chain checks for entry ``index``, before it joins the tree."""
        root = self.tree.root()
        if self.suspect is not None:
            self._blame_suspect(prev == root)
        if leaf != served:
            self.suspect = _Suspect(index, bundle.level0, bundle.tile)
        if log_time < self.last_time:
            raise VerificationFailure(
                f"couldn't verify entry {index} in {bundle.tile.path()}: log time {log_time} ms is "
                f"before the previous entry's {self.last_time} ms",
                index=index,
                where=bundle.tile.path(),
            )
        if prev != root:
            raise VerificationFailure(
                f"couldn't verify entry {index} in {bundle.tile.path()}: its prev {prev.hex()} is "
                f"not the root of the {index} entries before it ({root.hex()})",
                index=index,
                where=bundle.tile.path(),
            )

    def _blame_suspect(self, entry_confirmed: bool | None) -> None:
        """Name what was altered: the suspect entry or its level-0 tile. ``entry_confirmed`` is
        whether the evidence (the next entry's ``prev``, or the signed root) agrees with the
        entry as served; ``None`` when there is no such evidence."""
        suspect = self.suspect
        assert suspect is not None
        i, tile, bundle = suspect.index, suspect.tile.path(), suspect.bundle.path()
        if entry_confirmed:
            raise VerificationFailure(
                f"couldn't verify {tile}: the hash it serves for entry {i} is not entry {i}'s "
                "leaf hash, and the rest of the log confirms the entry: the tile was altered",
                where=tile,
            )
        if entry_confirmed is None:
            raise VerificationFailure(
                f"couldn't verify entry {i} in {bundle}: its leaf hash is not the one {tile} "
                "serves for it",
                index=i,
                where=bundle,
            )
        raise VerificationFailure(
            f"couldn't verify entry {i} in {bundle}: its leaf hash is not the one {tile} serves "
            "for it, and the rest of the log commits to the tile's: the entry was altered",
            index=i,
            where=bundle,
        )

    def _replay(self, index: int, item: _Checked) -> None:
        leaf, _prev, log_time, statement_id, line, mask = item
        # The line passed the strict canonical parser in step 4; plain json reads it the same.
        fields = json.loads(line)
        signers = tuple(fields["signers"])
        statement = LoggedStatement(
            index=index,
            log_time_ms=log_time,
            leaf_hash=leaf,
            statement_id=statement_id,
            type=fields["type"],
            v=fields["v"],
            time_ms=fields["time_ms"],
            signers=signers,
            verified_signers=frozenset(s for n, s in enumerate(signers) if mask >> n & 1),
            body=fields["body"],
        )
        self.protocol.admit(statement)
        self.protocol.apply(statement)
        self.types[statement.type] += 1

    # -- steps 6 and 7 -------------------------------------------------------------------------

    def _compare_tiles(self, bundle: _Bundle) -> None:
        """Step 6 for the tiles the entries so far completed, and (at the end) the edge tiles
        of the final tree. Tiles a tree of this size does not imply are not fetched."""
        for tile, expected in self.tree.changed_tiles():
            if tile.width != tile_width_at(tile.level, tile.index, self.size):
                continue  # an intermediate partial tile no checkpoint of this size implies
            served = bundle.served if tile == bundle.level0 else _fetch(self.source, tile)
            if served != expected:
                # Level 0 hash by hash was step 5; above it only the tile itself can be wrong.
                raise VerificationFailure(
                    f"couldn't verify {tile.path()}: it does not match the tree recomputed from "
                    "the entries",
                    where=tile.path(),
                )
            self.tiles_checked += 1
            if not tile.is_full:
                while len(self.edges) <= tile.level:
                    self.edges.append(b"")
                self.edges[tile.level] = served
            if self.sink is not None:
                self.sink(tile, served)

    def _end(self) -> None:
        if self.suspect is not None:
            self._blame_suspect(self.tree.root() == self.checkpoint.root_hash)
        # Step 7: the root.
        if self.tree.root() != self.checkpoint.root_hash:
            raise VerificationFailure(
                f"couldn't verify the log: its {self.size} entries hash to "
                f"{self.tree.root().hex()}, the checkpoint says {self.checkpoint.root_hash.hex()}",
                where="checkpoint",
            )
        # The edge tiles of the final tree, for the trust state: levels whose width is now 0
        # hold none, and a full tile completed at the edge ends that level's partial tile.
        levels = max(len(self.edges), _levels(self.size))
        self.edges = [
            self.edges[level] if level < len(self.edges) and _edge_width(self.size, level) else b""
            for level in range(levels)
        ]
        while self.edges and not self.edges[-1]:
            self.edges.pop()


def _levels(size: int) -> int:
    levels = 0
    while size >> (TILE_HEIGHT * levels):
        levels += 1
    return levels


def _edge_width(size: int, level: int) -> int:
    return (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)


def _fetch(source: LogSource, tile: TileID) -> bytes:
    try:
        return source.tile(tile)
    except VerificationFailure:
        raise
    except LedgerError as exc:
        raise VerificationFailure(
            f"couldn't fetch {tile.path()}: {exc}", where=tile.path()
        ) from exc


class DirectorySource:
    """A static tlog-tiles mirror on disk: ``DIR/checkpoint`` and ``DIR/tile/...``.

    Safe for concurrent use.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def checkpoint(self) -> bytes:
        return self._read(self.root / "checkpoint", "checkpoint")

    def tile(self, tile: TileID) -> bytes:
        path = tile.path()
        parse_tile_path(path)
        return self._read(self.root / path, path)

    def _read(self, path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise VerificationFailure(
                f"couldn't read {what} from {self.root}: {exc}", where=what
            ) from exc
