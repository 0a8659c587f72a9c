"""Benchmark the audit over the derived state against the same audit over an in-memory state.

    .venv/bin/python scripts/bench_derived.py --db data/bench/log-20000.db
    .venv/bin/python scripts/bench_derived.py --db /path/to/log.db --rules   # each rule's time

The log (a SQLite file with its key recorded, e.g. one ``amnesty demo --scale N`` made) is
copied to a temporary folder; its derived state is written there if it has none (the time is
printed). In one process and one run it then times, at the latest flush point:

- the full precedent report (``precedent_report``) and the summary
  (``ledger.client.views.precedent_summary``) from a read-only
  :class:`~ledger.protocol.stored.StoredProtocolState` (what a server computes), and from the
  in-memory state replayed from entry 0 (what a verifier computes), checking both are equal;
- with ``--rules``, each commitment rule and the report's counts on the stored state (where a
  scan's time goes).

Printed as seconds and as the ratio stored / in memory.
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
from ledger.protocol.audit import counts_item, precedent_report
from ledger.protocol.state import ProtocolState
from ledger.protocol.stored import StoredProtocolState
from ledger.server.derived import backfill_derived, replay_into
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
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp()) / "log.db"
    shutil.copy2(args.db, work)
    wal = Path(str(args.db) + "-wal")
    if wal.exists():
        shutil.copy2(wal, Path(str(work) + "-wal"))
    store = SqlLogStore(f"sqlite:///{work}")
    origin = store.identity().origin
    timed("derived state written (backfill, if any)", lambda: backfill_derived(store, origin))
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
    for name, compute in computations:
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
    if args.rules:
        print("\neach rule on the derived state:")
        for rule_name, rule in commitments.COMMITMENT_RULES.items():
            timed(rule_name, partial(judge, rule, stored, audit))
        timed("counts", lambda: counts_item(stored()))
    store.close()
    shutil.rmtree(work.parent)


if __name__ == "__main__":
    main()
