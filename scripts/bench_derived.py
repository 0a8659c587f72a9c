"""Benchmark the audit over the derived state against the same audit over an in-memory state.

    .venv/bin/python scripts/bench_derived.py --db data/bench/log-20000.db
    .venv/bin/python scripts/bench_derived.py --db /path/to/log.db --rules   # each rule's time
    .venv/bin/python scripts/bench_derived.py --db /path/to/log.db --summaries 50 --no-report

The log (a SQLite file with its key recorded, e.g. one ``amnesty demo --scale N`` made) is
copied to a temporary folder; its derived state is written there if it has none (the time is
printed). In one process and one run it then times, at the latest flush point:

- the full precedent report (``precedent_report``) and the summary
  (``ledger.client.views.precedent_summary``) from a read-only
  :class:`~ledger.protocol.stored.StoredProtocolState` (what a server computes), and from the
  in-memory state replayed from entry 0 (what a verifier computes), checking both are equal;
- the full report streamed item by item (``precedent_pieces``, what ``GET /v1/precedent``
  sends) from the stored state: the time to its first piece, its total time and length, and
  how much the process's resident memory grew while it ran (``VmRSS`` sampled every 20 ms),
  against the whole report built as a dict and encoded by one ``json.dumps`` (the previous
  way), checked byte for byte equal;
- with ``--rules``, each commitment rule and the report's counts on the stored state (where a
  scan's time goes);
- the precedent summary from the aggregates kept with the derived state
  (:func:`~ledger.protocol.aggregates.summary_from_aggregates`, what ``GET
  /v1/precedent/summary`` serves), checked equal to the full computation at the latest audit
  time and at two later ones (a month, a year: clocks run out), and its p50 over
  ``--summaries`` fresh read-only states, against the full scan of the same stored state
  measured in this run.

Printed as seconds and as the ratio stored / in memory, and aggregates / full scan. If the
log's derived state has no aggregates (written by an older release), they are built first
(``complete_aggregates``, timed), and so is its report text (``complete_report_text``, timed).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import hashlib
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.client import views
from ledger.protocol import commitments
from ledger.protocol.aggregates import summary_from_aggregates
from ledger.protocol.audit import counts_item, precedent_pieces, precedent_report
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import FactCache, StoredProtocolState
from ledger.server.derived import (
    backfill_derived,
    complete_aggregates,
    complete_report_text,
    replay_into,
)
from ledger.storage.sql import SqlLogStore


def timed(label: str, work: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``work()`` once; return the seconds it took and its result."""
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    print(f"  {label:<46} {seconds:9.3f} s", flush=True)
    return seconds, result


def compute_on(compute: Callable[[ProtocolState], Any], state: Callable[[], ProtocolState]) -> Any:
    """``compute`` on a fresh ``state()`` (a stored state holds what it loaded)."""
    return compute(state())


def judge(rule: commitments.CommitmentRule, state: Callable[[], ProtocolState], audit: int) -> Any:
    """One commitment rule on a fresh ``state()``."""
    return rule(state(), audit_time_ms=audit)


def rss_mb() -> float:
    """This process's resident memory (``VmRSS``), in MB; 0 where /proc is not there."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def release_free_memory() -> None:
    """Return freed heap pages to the system (glibc ``malloc_trim``); nothing elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakRss:
    """The largest ``VmRSS`` sampled every 20 ms while the ``with`` block runs, over the
    value when it started (MB)."""

    def __init__(self) -> None:
        self.start = 0.0
        self.peak = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakRss:
        gc.collect()
        release_free_memory()  # start from what is in use, not from what an earlier step freed
        self.start = self.peak = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def grown(self) -> float:
        return self.peak - self.start


def streamed_report(
    state: ProtocolState, checkpoint: dict[str, Any], audit: int
) -> tuple[float, float, int, str, float]:
    """The report streamed (``precedent_pieces``): seconds to the first piece, seconds in all,
    its length in UTF-8 bytes, its SHA-256, and the MB the process's RSS grew meanwhile."""
    digest = hashlib.sha256()
    length = 0
    first = 0.0
    with PeakRss() as peak:
        started = time.perf_counter()
        pieces = precedent_pieces(state, checkpoint=checkpoint, audit_time_ms=audit)
        for number, piece in enumerate(pieces):
            if number == 0:
                first = time.perf_counter() - started
            data = piece.encode("utf-8")
            digest.update(data)
            length += len(data)
        total = time.perf_counter() - started
    return first, total, length, digest.hexdigest(), peak.grown


def whole_report(
    state: ProtocolState, checkpoint: dict[str, Any], audit: int
) -> tuple[float, int, str, float]:
    """The report built whole as a dict and encoded by one ``json.dumps``: seconds, length,
    SHA-256 and the MB the process's RSS grew meanwhile."""
    with PeakRss() as peak:
        started = time.perf_counter()
        report = precedent_report(state, checkpoint=checkpoint, audit_time_ms=audit)
        data = json.dumps(report, ensure_ascii=False, sort_keys=True).encode("utf-8")
        total = time.perf_counter() - started
        length, digest = len(data), hashlib.sha256(data).hexdigest()
        del report, data
    return total, length, digest, peak.grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="a SQLite log file")
    parser.add_argument("--rules", action="store_true", help="also time each commitment rule")
    parser.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="skip the full precedent report (minutes at a million entries)",
    )
    parser.add_argument(
        "--summaries", type=int, default=50, help="summaries from the aggregates to time (p50)"
    )
    parser.add_argument(
        "--stream-only",
        action="store_true",
        help="only the streamed report against the whole one (no in-memory replay)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp()) / "log.db"
    shutil.copy2(args.db, work)
    wal = Path(str(args.db) + "-wal")
    if wal.exists():
        shutil.copy2(wal, Path(str(work) + "-wal"))
    store = SqlLogStore(f"sqlite:///{work}")
    origin = store.identity().origin
    timed("derived state and aggregates written (if none)", lambda: backfill_derived(store, origin))
    timed("aggregates built (if still none)", lambda: complete_aggregates(store))
    timed("report text kept (if still none)", lambda: complete_report_text(store))
    source = store.derived_source()
    size = source.flush_point(2**62)
    assert size is not None
    checkpoint = {"origin": origin, "size": size, "root_hash_b64": "A" * 43 + "="}
    print(f"log: {size:,} entries")
    stream_audit = views.judged_now_ms(StoredProtocolState(source, size, writable=False))
    print("precedent report, streamed against built whole (from the derived state)")
    first, total, length, streamed_digest, streamed_grown = streamed_report(
        StoredProtocolState(source, size, writable=False), checkpoint, stream_audit
    )
    print(f"  streamed: first piece {first:.3f} s, all {total:.3f} s, {length / 1e6:.1f} MB")
    whole, whole_length, whole_digest, whole_grown = whole_report(
        StoredProtocolState(source, size, writable=False), checkpoint, stream_audit
    )
    print(f"  whole: {whole:.3f} s, {whole_length / 1e6:.1f} MB")
    if (length, streamed_digest) != (whole_length, whole_digest):
        raise SystemExit("the streamed report differs from the one built whole")
    print("  byte for byte equal")
    print()
    print("| full precedent report | streamed | built whole + one json.dumps | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| time to the first byte (s) | {first:.3f} | {whole:.3f} | {whole / first:,.0f} × |")
    print(f"| all of it (s) | {total:.3f} | {whole:.3f} | {total / whole:.2f} × |")
    print(
        f"| RSS growth while computing (MB) | {streamed_grown:.0f} | {whole_grown:.0f} | "
        f"{streamed_grown / max(whole_grown, 1):.2f} × |"
    )
    print(f"| length (MB) | {length / 1e6:.1f} | {whole_length / 1e6:.1f} | |")
    print()
    if args.stream_only:
        store.close()
        shutil.rmtree(work.parent)
        return
    memory = ProtocolState()
    timed("in-memory state replayed from entry 0", lambda: replay_into(memory, store, origin, size))
    audit = views.judged_now_ms(memory)

    def stored() -> StoredProtocolState:
        return StoredProtocolState(source, size, writable=False)

    rows = []
    computations: list[tuple[str, Callable[[ProtocolState], Any]]] = [
        (
            "precedent report",
            lambda s: precedent_report(s, checkpoint=checkpoint, audit_time_ms=audit),
        ),
        ("precedent summary", lambda s: views.precedent_summary(s, audit)),
    ]
    for name, compute in computations if args.report else computations[1:]:
        print(name)
        from_store, ours = timed("from the derived state", partial(compute_on, compute, stored))
        from_memory, theirs = timed("from the in-memory state", partial(compute, memory))
        if ours != theirs:
            raise SystemExit(f"the {name} differs between the two states")
        rows.append((name, from_store, from_memory))
    print()
    print("| | derived state | in memory | ratio |")
    print("|---|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a:.3f} s | {b:.3f} s | {a / b:.1f} × |")
    print("\nprecedent summary from the aggregates")
    day = 86_400_000
    for label, at in (
        ("now", audit),
        ("in 30 days", audit + 30 * day),
        ("in a year", audit + 365 * day),
    ):
        ours = summary_from_aggregates(stored(), at)
        if ours != views.precedent_summary(memory, at):
            raise SystemExit(f"the summary from the aggregates differs at audit time {label}")
    print("  equal to the full computation now, in 30 days and in a year")
    full, _ = timed(
        "full scan of the derived state (once)", lambda: views.precedent_summary(stored(), audit)
    )
    times = []
    facts = FactCache()  # a server's readers share one
    for _ in range(max(1, args.summaries)):
        started = time.perf_counter()
        summary_from_aggregates(
            StoredProtocolState(source, size, facts=facts, writable=False), audit
        )
        times.append(time.perf_counter() - started)
    times.sort()
    p50 = times[len(times) // 2]
    print(f"  from the aggregates: p50 of {len(times)} {p50 * 1000:9.2f} ms")
    print()
    print("| precedent summary | full scan | from the aggregates (p50) | ratio |")
    print("|---|---|---|---|")
    print(f"| {size:,} entries | {full:.3f} s | {p50 * 1000:.2f} ms | {full / p50:,.0f} × faster |")
    if args.rules:
        print("\neach rule on the derived state:")
        for rule_name, rule in commitments.COMMITMENT_RULES.items():
            timed(rule_name, partial(judge, rule, stored, audit))
        timed("counts", lambda: counts_item(stored()))
    store.close()
    shutil.rmtree(work.parent)


if __name__ == "__main__":
    main()
