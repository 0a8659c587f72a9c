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
(``complete_aggregates``, timed).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.client import views
from ledger.protocol import commitments
from ledger.protocol.aggregates import summary_from_aggregates
from ledger.protocol.audit import counts_item, precedent_report
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import FactCache, StoredProtocolState
from ledger.server.derived import backfill_derived, complete_aggregates, replay_into
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
    source = store.derived_source()
    size = source.flush_point(2**62)
    assert size is not None
    checkpoint = {"origin": origin, "size": size, "root_hash_b64": "A" * 43 + "="}
    print(f"log: {size:,} entries")
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
