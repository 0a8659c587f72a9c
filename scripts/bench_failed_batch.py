"""Benchmark what a failed batch costs the sequencer, and how long it holds the write lock::

    .venv/bin/python scripts/bench_failed_batch.py                   # 100,000 entries
    .venv/bin/python scripts/bench_failed_batch.py --entries 20000   # quicker

The log is the one ``scripts/bench_verify.py`` builds (cached in ``--data``). In one run:

1. the baseline: an ordinary batch of one attestation on a warm sequencer — the time the store's
   write lock is held (the append transaction) and the batch's whole time;
2. a batch refused as it begins (a lock timeout, the database down): it had applied nothing, so
   the sequencer keeps its state, and the next ordinary batch costs what the baseline costs;
3. a batch whose commit fails (the real store, its transaction made to raise after staging, as a
   lost connection would), then the next ordinary batch: the time that next batch holds the write
   lock — the replay that rebuilds the forgotten protocol state runs before it, without the lock,
   so other writers are not held up — and its whole time, replay included.

Printed as times and as ratios to the baseline, twice in the same run: with the protocol state
kept in the database (derived state, what ``amnesty serve`` runs: a failed commit is undone by
forgetting the batch) and with it in memory (what a tool without derived state runs: a failed
commit costs a replay from entry 0).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_verify import ORIGIN, build

from ledger.errors import StorageError
from ledger.server.admission import StatementPolicy
from ledger.server.derived import backfill_derived
from ledger.server.sequencer import Receipt, Sequencer
from ledger.statements.demo import DemoAuthor, DemoKeys, Ref
from ledger.storage.sql import SqlLogStore
from ledger.tlog.merkle import leaf_hash
from ledger.tlog.note import Signer


class TimedStore:
    """The real store, timing each append transaction (the write lock's hold) and failing the
    next commit when asked."""

    def __init__(self, store: SqlLogStore) -> None:
        self.store = store
        """The real store, for what must not be timed or failed (the backfill, the policy)."""
        self.held: list[float] = []
        self.fail_next = False
        self.refuse_next = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @contextmanager
    def append_transaction(self) -> Iterator[Any]:
        if self.refuse_next:
            self.refuse_next = False
            raise StorageError("couldn't begin the append: lock timeout (injected)")
        started = time.perf_counter()
        try:
            with self.store.append_transaction() as tx:
                yield tx
                if self.fail_next:
                    self.fail_next = False
                    raise StorageError("couldn't commit: the connection was lost (injected)")
        finally:
            self.held.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=Path("data/bench"))
    args = parser.parse_args()
    path = args.data / f"log-{args.entries}.db"
    build(path, args.entries, 1000)
    for derived in (True, False):
        print(
            "== protocol state " + ("in the database (derived state)" if derived else "in memory")
        )
        measure(path, derived)


def measure(path: Path, derived: bool) -> None:
    """Run the three cases on a fresh copy of the log at ``path``."""
    # The batches below append: work on a copy, never on the cached log other benchmarks share.
    work = Path(tempfile.mkdtemp()) / path.name
    shutil.copy2(path, work)
    store = TimedStore(SqlLogStore(f"sqlite:///{work}"))
    signer = Signer.from_seed(ORIGIN, b"\x07" * 32)
    if derived:
        backfill_derived(store.store, ORIGIN)
        policy = StatementPolicy(ORIGIN, store.store.derived_source())
    else:
        policy = StatementPolicy(ORIGIN)
    sequencer = Sequencer(store, signer, policy)
    started = time.perf_counter()
    sequencer.warm_up()
    warm_s = time.perf_counter() - started
    size = policy.size

    grantee_entry = store.read_entries(2, 3)[0]  # the demo's first application
    author = DemoAuthor(
        ORIGIN, DemoKeys.deterministic(), lambda d: [], lambda: int(time.time() * 1e3)
    )
    key = author.keys.subject("Prometheus-7")
    period = [int(time.time() * 1000)]

    def one_batch() -> tuple[float, float]:
        period[0] += 10
        body = author.attestation(
            Ref(2, leaf_hash(grantee_entry)), period[0], period[0] + 1, "Bench."
        )
        prepared = policy.prepare(author.by_subject(key, "attestation", body))
        before = len(store.held)
        started = time.perf_counter()
        (result,) = sequencer.sequence_now([prepared])
        whole = time.perf_counter() - started
        if not isinstance(result, Receipt | StorageError):
            raise result
        return whole, sum(store.held[before:])

    baseline = [one_batch() for _ in range(5)][-1]
    store.refuse_next = True
    refused = one_batch()
    after_refused = one_batch()
    store.fail_next = True
    failed = one_batch()
    after = one_batch()
    print(f"log: {size:,} entries; warm-up replay at start {warm_s:.1f} s (no write lock held)")
    print(
        f"1. ordinary batch:                   {baseline[0] * 1000:8.1f} ms, "
        f"write lock held {baseline[1] * 1000:6.1f} ms"
    )
    print(f"2. batch refused at begin:           {refused[0] * 1000:8.1f} ms")
    print(
        f"   next batch (state kept):          {after_refused[0] * 1000:8.1f} ms "
        f"({after_refused[0] / baseline[0]:.1f} x)"
    )
    print(f"3. batch whose commit fails:         {failed[0] * 1000:8.1f} ms")
    print(
        f"   next batch (state rebuilt first): {after[0] * 1000:8.1f} ms "
        f"({after[0] / baseline[0]:.0f} x), write lock held {after[1] * 1000:6.1f} ms "
        f"({after[1] / baseline[1]:.1f} x the ordinary batch's)"
    )


if __name__ == "__main__":
    main()
