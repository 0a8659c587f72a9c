"""The verifier: re-derive a log from what any source serves and check every link.

Sources (:mod:`ledger.verifier.sources`) are anything that can hand out a signed checkpoint and
tlog-tiles resources: the live service over HTTP, a static mirror directory, or a database. The
verifier trusts none of them: it needs only the log's vkey, and (to continue) its own
:class:`~ledger.verifier.trust.TrustState` from a previous run.

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
   verify — otherwise :class:`~ledger.verifier.failures.SplitViewError` carries evidence
   (:mod:`ledger.verifier.evidence`), or a plain failure if the source's tiles do not even
   match its own checkpoint;
3. stream the new entry bundles in order, bounded memory (a window of bundles in flight); the
   entries of a partly verified first bundle must be the ones verified before;
4. per entry (in worker processes for :func:`verify_ledger`): its leaf hash, canonical JSON
   envelope, ``index`` is its position; the statement parses for this origin and every listed
   signer's signature line verifies;
5. per entry, in order (in this process): its leaf hash is the one the level-0 tile serves, its
   ``log_time_ms`` does not decrease, its ``prev`` is the root of all entries before it (the
   hash chain), then the protocol admits and applies it (or ``entry_check`` accepts it);
6. recompute every hash tile and compare it byte for byte with the tile the source serves;
7. the recomputed root must equal the checkpoint's root hash;
8. if the entries anchored the log's ML-DSA-44 key (a ``log_key`` entry), the checkpoint, which
   includes it, must verify under that key too, with the pinned policy
   (:mod:`ledger.verifier.log_keys`); a later run checks it at step 1.

Where each step is: 1 and 2 in :mod:`ledger.verifier.consistency`, 3 in
:mod:`ledger.verifier.bundles`, 4 in :mod:`ledger.verifier.entry_checks`, 5 in
:mod:`ledger.verifier.chain`; 6 and 7 here, in :class:`_TileCheck` and :class:`_Run`, which
drives a run from step 3 on.

A leaf hash that differs from the served level-0 tile means one of the two was altered; the
verifier decides which from the next entry's ``prev`` (or, for the last entry, from the signed
root) and names that one. Every failure raises
:class:`~ledger.verifier.failures.VerificationFailure` naming the first bad entry (``index``)
and the resource it came from (``where``: a tile path or ``checkpoint``).
"""

from __future__ import annotations

import base64
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Final

from ledger.errors import LedgerError, MalformedError
from ledger.protocol.audit import precedent_report
from ledger.protocol.state import ProtocolState
from ledger.tlog.checkpoint import Checkpoint, LogKey
from ledger.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, TiledTree, TileID, tile_width_at
from ledger.verifier.bundles import Bundle, fetch_bundles
from ledger.verifier.chain import Chain, EntryCheck
from ledger.verifier.consistency import check_consistent, open_source_checkpoint
from ledger.verifier.entry_checks import (
    ChunkError,
    check_statement_entries,
    decode_entries,
    statement_pool,
)
from ledger.verifier.failures import VerificationFailure
from ledger.verifier.log_keys import open_checkpoint_at
from ledger.verifier.sources import LogSource, fetch_tile
from ledger.verifier.trust import TrustState

PARALLEL_THRESHOLD: Final = 8 * TILE_WIDTH
"""Below this many new entries :func:`verify_ledger` checks signatures in this process: starting
worker processes would cost more than it saves."""


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

    def trust_state(self, log_key: LogKey, tools: dict[str, Any] | None = None) -> TrustState:
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
    log_key: LogKey,
    *,
    entry_check: EntryCheck | None = None,
    progress: Progress | None = None,
) -> VerifiedLog:
    """Fully verify the tree and hash chain of the log ``source`` serves, signed by ``log_key``.

    Steps 1 and 3-7 of the module docstring, in this process; step 5 hands each entry to
    ``entry_check`` (statements are not parsed otherwise). Raises
    :class:`~ledger.verifier.failures.VerificationFailure`.
    """
    note, checkpoint = open_source_checkpoint(source, log_key)
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
    log_key: LogKey,
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

    Raises :class:`~ledger.verifier.failures.SplitViewError` (with evidence) when the source's
    checkpoint is inconsistent with ``trusted``, and
    :class:`~ledger.verifier.failures.VerificationFailure` for anything else that fails.
    """
    # Step 1: the checkpoint (under the ML-DSA-44 key too if the trusted history anchored it).
    anchored = None if trusted is None else trusted.protocol.log_key
    note, checkpoint = open_source_checkpoint(source, log_key, anchored)
    if trusted is None:
        start = _Start.empty()
    else:
        if trusted.log_vkey != log_key.vkey():
            raise VerificationFailure(
                f"couldn't continue from the trust state: it is for {trusted.log_vkey}, not "
                f"{log_key.vkey()}"
            )
        # Step 2: consistent with what was verified before.
        check_consistent(source, trusted, note, checkpoint)
        try:
            start = _Start.from_trust(trusted)
        except LedgerError as exc:
            raise VerificationFailure(f"couldn't continue from the trust state: {exc}") from exc
    new = checkpoint.size - start.size
    if workers is None:
        workers = (os.cpu_count() or 1) if new >= PARALLEL_THRESHOLD else 0
    run = _Run(source, checkpoint, start, statements=True, progress=progress, sink=sink)
    if workers > 0 and new > 0:
        with statement_pool(workers) as pool:
            run.execute(pool=pool, in_flight=2 * workers + 2, fetch_threads=fetch_threads)
    else:
        run.execute(pool=None, in_flight=1, fetch_threads=fetch_threads)
    learned = run.chain.protocol.log_key
    if learned is not None and learned != anchored:
        # Step 8: the new entries anchored the log's ML-DSA-44 key (a log_key entry the body's
        # threshold signed), and the checkpoint includes that entry: from here on the key signs
        # every checkpoint, so this one must carry its line (under the pinned policy).
        try:
            open_checkpoint_at(note, log_key, learned)
        except LedgerError as exc:
            raise VerificationFailure(
                f"couldn't verify the checkpoint of size {checkpoint.size} under the "
                f"ML-DSA-44 key the log added at entry {learned.index}: {exc}",
                where="checkpoint",
            ) from exc
    return run.result(note)


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


_Job = Future[Any] | tuple[Any, ChunkError | None]
"""Step 4's ``(results, first failure)`` for one bundle, or its future in a worker process."""


class _Run:
    """One verification run from ``start`` to ``checkpoint``: a pipeline over the new
    bundles, in log order (steps 3-7):

    - :func:`~ledger.verifier.bundles.fetch_bundles` fetches each bundle and its level-0 tile
      (step 3);
    - :meth:`_check_entries` checks its entries each on its own (step 4), in a worker process
      when there is a pool;
    - :meth:`_finish`, in order: :class:`~ledger.verifier.chain.Chain` links each entry to the
      tree of the entries before it and replays it (step 5), then :class:`_TileCheck` compares
      the tiles the entries so far completed (step 6);
    - :meth:`_end`: the recomputed root against the checkpoint's (step 7).
    """

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
        self.statements = statements
        self.progress = progress
        self.sink = sink
        self.chain = Chain(
            start.tree,
            start.last_log_time_ms,
            start.protocol,
            statements=statements,
            entry_check=entry_check,
        )
        self.tiles = _TileCheck(source, checkpoint.size, start.edge_tiles, sink)

    def execute(self, *, pool: Executor | None, in_flight: int, fetch_threads: int) -> None:
        """Steps 3-7. With a ``pool``, step 4 runs there for up to ``in_flight`` bundles while
        this process does step 5 in order; memory stays bounded by that window."""
        window: deque[tuple[Bundle, _Job]] = deque()
        bundles = fetch_bundles(
            self.source, self.size, self.start.size, self.start.level0_edge, fetch_threads
        )
        for bundle in bundles:
            window.append((bundle, self._check_entries(bundle, pool)))
            while len(window) > in_flight:
                self._finish(*window.popleft())
        while window:
            self._finish(*window.popleft())
        self._end()

    def result(self, note: bytes) -> VerifiedLog:
        """The result of the run :meth:`execute` completed; ``note`` is the checkpoint's text."""
        details: dict[str, object] = {}
        if self.statements:
            details["statement_types"] = dict(sorted(self.chain.types.items()))
        return VerifiedLog(
            checkpoint=self.checkpoint,
            checkpoint_note=note,
            entries=self.size - self.start.size,
            tiles_checked=self.tiles.checked,
            last_log_time_ms=self.chain.last_time,
            start_size=self.start.size,
            protocol=self.chain.protocol if self.statements else None,
            edge_tiles=tuple(self.tiles.edges),
            details=details,
        )

    def _check_entries(self, bundle: Bundle, pool: Executor | None) -> _Job:
        """Step 4 for ``bundle``'s new entries (:mod:`ledger.verifier.entry_checks`): decode
        the envelopes only, or, with statements, check statements and signatures too — in
        ``pool`` when there is one, else right here."""
        origin = self.checkpoint.origin
        if not self.statements:
            return decode_entries(bundle.first, bundle.entries)
        if pool is None:
            return check_statement_entries(origin, bundle.first, bundle.entries)
        return pool.submit(check_statement_entries, origin, bundle.first, bundle.entries)

    def _finish(self, bundle: Bundle, job: _Job) -> None:
        """Steps 5 and 6 for ``bundle``, whose predecessors are finished.

        The entries step 4 passed join the chain in order; then the first entry it failed, if
        any, fails the run. With no suspect entry, the tiles those entries completed are
        compared and handed to the sink, then the bundle itself: the sink receives only what
        was verified, each bundle after its tiles.
        """
        items, error = job.result() if isinstance(job, Future) else job
        self.chain.extend(bundle, items)
        if error is not None:
            self.chain.fail(bundle, *error)
        if self.chain.suspect is None:
            self.tiles.compare(self.chain.tree, bundle)
            if self.sink is not None:
                self.sink(bundle.tile, bundle.data)
        if self.progress is not None:
            self.progress(self.chain.tree.size - self.start.size, self.size - self.start.size)

    def _end(self) -> None:
        """Step 7, once every bundle is finished: a suspect entry left is judged by the signed
        root; then the recomputed root must be the checkpoint's, and the edge tiles are trimmed
        to the final tree's right edge (for the trust state)."""
        root = self.chain.tree.root()
        if self.chain.suspect is not None:
            self.chain.blame_suspect(root == self.checkpoint.root_hash)
        if root != self.checkpoint.root_hash:
            raise VerificationFailure(
                f"couldn't verify the log: its {self.size} entries hash to "
                f"{root.hex()}, the checkpoint says {self.checkpoint.root_hash.hex()}",
                where="checkpoint",
            )
        self.tiles.trim_edges()


# ------------------------------------------------------------------------------- step 6


class _TileCheck:
    """Step 6: the hash tiles the recomputed tree completes, compared byte for byte with the
    ones the source serves.

    Only tiles a checkpoint of the run's size implies are compared (not an intermediate partial
    tile that later entries of the run extend). ``checked`` counts the tiles compared, each of
    which goes to the sink; ``edges[L]`` is the last partial tile compared at level ``L`` (at
    first, the trusted edge tiles), trimmed by :meth:`trim_edges` to the final tree's edge.
    """

    def __init__(self, source: LogSource, size: int, edges: list[bytes], sink: Sink | None) -> None:
        self.source = source
        self.size = size
        self.edges = edges
        self.sink = sink
        self.checked = 0

    def compare(self, tree: TiledTree, bundle: Bundle) -> None:
        """Step 6 for the tiles the entries so far completed, and (at the end) the edge tiles
        of the final tree. Tiles a tree of this size does not imply are not fetched."""
        for tile, expected in tree.changed_tiles():
            if tile.width != tile_width_at(tile.level, tile.index, self.size):
                continue  # an intermediate partial tile no checkpoint of this size implies
            served = bundle.served if tile == bundle.level0 else fetch_tile(self.source, tile)
            if served != expected:
                # Level 0 hash by hash was step 5; above it only the tile itself can be wrong.
                raise VerificationFailure(
                    f"couldn't verify {tile.path()}: it does not match the tree recomputed from "
                    "the entries",
                    where=tile.path(),
                )
            self.checked += 1
            if not tile.is_full:
                while len(self.edges) <= tile.level:
                    self.edges.append(b"")
                self.edges[tile.level] = served
            if self.sink is not None:
                self.sink(tile, served)

    def trim_edges(self) -> None:
        """Keep the edge tiles of the final tree only, for the trust state."""
        # Levels whose width is now 0 hold none, and a full tile completed at the edge ends
        # that level's partial tile.
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
