"""Benchmark ``amnesty fsck``: how fast it re-derives a whole database, against ``amnesty
verify`` of the same database in the same run. Rerun with::

    .venv/bin/python scripts/bench_fsck.py                    # 100,000 entries
    .venv/bin/python scripts/bench_fsck.py --entries 1000000  # the 1M target

The log is the one ``scripts/bench_verify.py`` builds (the demo history scaled through the real
sequencer, cached in ``--data``, default ``data/bench``). What is measured, in one run:

1. the baseline: :func:`ledger.verifier.verify.verify_ledger` from the database (what ``amnesty
   verify DB`` runs: checkpoint, every entry against its tile, every tile, the hash chain, every
   statement's signatures, the protocol);
2. ``fsck``'s own steps on top of it (``ledger.cli.integrity``): every stored checkpoint row
   (signature, size, root against the tree) and every entry's index columns re-derived;
3. the whole of ``fsck`` (1 + 2), as entries/s and as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_verify import build

from ledger.cli.integrity import check_checkpoint_rows, check_entry_columns
from ledger.server.logview import LogView
from ledger.storage.sql import SqlLogStore
from ledger.verifier.verify import verify_ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=Path("data/bench"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    path = args.data / f"log-{args.entries}.db"
    meta = build(path, args.entries, 1000)
    store = SqlLogStore(f"sqlite:///{path}")
    view = LogView(store)
    size = view.latest().size

    started = time.perf_counter()
    verify_ledger(view, view.log_key, workers=args.workers)
    verify_s = time.perf_counter() - started

    started = time.perf_counter()
    rows = check_checkpoint_rows(store, view, size)
    rows_s = time.perf_counter() - started
    started = time.perf_counter()
    columns = check_entry_columns(store, size)
    columns_s = time.perf_counter() - started
    store.close()

    fsck_s = verify_s + rows_s + columns_s
    print(f"log: {size:,} entries, {rows:,} checkpoint rows ({meta['log_vkey'].split('+')[0]})")
    print(f"workers: {args.workers} on {os.cpu_count()} CPUs")
    print(f"1. verify (baseline):      {verify_s:8.1f} s  {size / verify_s:10,.0f} entries/s")
    print(f"2a. checkpoint rows:       {rows_s:8.1f} s  {rows / rows_s:10,.0f} rows/s")
    print(f"2b. entry columns:         {columns_s:8.1f} s  {columns / columns_s:10,.0f} entries/s")
    print(
        f"3. fsck (1 + 2):           {fsck_s:8.1f} s  {size / fsck_s:10,.0f} entries/s  "
        f"= {fsck_s / verify_s:.2f} x verify"
    )
    print(f"   projected for 1,000,000 entries: {fsck_s * 1_000_000 / size:,.0f} s")


if __name__ == "__main__":
    main()
