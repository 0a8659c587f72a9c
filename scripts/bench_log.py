"""Benchmark the log layer: durable appends, proof generation, full verification, memory.

Compares amnesty-ledger with pymerkle (``InmemoryTree`` and ``SqliteTree``) on the same work in
the same run, and prints a Markdown table of figures and ratios. Rerun with::

    .venv/bin/python scripts/bench_log.py                      # 10k, 100k, 1M entries
    .venv/bin/python scripts/bench_log.py --sizes 10000,100000 # quicker
    .venv/bin/python scripts/bench_log.py --sizes 10000,1000000 --append-only  # appends only

What is measured (one process; SQLite file in a temporary folder, WAL, synchronous=FULL):

- append: entries/s through the real sequencer (entry envelope, RFC 6962 tree, tiles, signed
  checkpoint per batch of 1,024, durable commit), with payloads already prepared (statement
  parsing and signature checks are measured by scripts/bench_verify.py); the last line gives
  the rate at the largest size over the rate at the smallest, measured in this one run;
- proofs: inclusion and consistency proofs per second at the largest size, generated from the
  stored tiles (fresh LRU) and checked once against the reference verifier;
- verify: full verification of the stored log (every bundle, chain link and tile), entries/s;
- peak memory: resident set high-water mark of this process after each phase.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.server.logview import LogView
from ledger.server.sequencer import Sequencer
from ledger.tlog.merkle import verify_consistency, verify_inclusion
from ledger.verifier.verify import verify_log
from tests.support import OpaquePolicy, create_log, make_signer


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (VmHWM: reset by exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def payload(i: int) -> bytes:
    return f"benchmark payload {i:09d} {'x' * 180}".encode()


def bench_append(folder: Path, size: int) -> tuple[float, LogView]:
    signer = make_signer()
    store = create_log(f"sqlite:///{folder / f'log-{size}.db'}", signer)
    policy = OpaquePolicy()
    sequencer = Sequencer(store, signer, policy, max_batch=1024)
    prepared_all = (policy.prepare(payload(i)) for i in range(size))
    started = time.perf_counter()
    batch = []
    for prepared in prepared_all:
        batch.append(prepared)
        if len(batch) == 1024:
            sequencer.sequence_now(batch)
            batch = []
    if batch:
        sequencer.sequence_now(batch)
    elapsed = time.perf_counter() - started
    return size / elapsed, LogView(store)


def bench_pymerkle_append(folder: Path, size: int) -> dict[str, float]:
    from pymerkle import InmemoryTree, SqliteTree

    out: dict[str, float] = {}
    tree = InmemoryTree()
    started = time.perf_counter()
    for i in range(size):
        tree.append_entry(payload(i))
    out["inmemory"] = size / (time.perf_counter() - started)
    db = folder / f"pymerkle-{size}.db"
    with SqliteTree(str(db)) as stree:
        started = time.perf_counter()
        chunk = 1024
        for start in range(0, size, chunk):
            stree.append_entries([payload(i) for i in range(start, min(size, start + chunk))])
        out["sqlite"] = size / (time.perf_counter() - started)
    return out


def bench_proofs(view: LogView, size: int, count: int) -> tuple[float, float]:
    rng = random.Random(1)
    root = view.latest().checkpoint.root_hash
    indexes = [rng.randrange(size) for _ in range(count)]
    leaves = {i: view.leaf_hash(i) for i in indexes[:20]}
    started = time.perf_counter()
    for i in indexes:
        proof = view.inclusion_proof(i, size)
    inclusion_rate = count / (time.perf_counter() - started)
    for i in list(leaves)[:20]:
        verify_inclusion(i, size, leaves[i], view.inclusion_proof(i, size), root)
    olds = [rng.randrange(1, size) for _ in range(count)]
    started = time.perf_counter()
    for old in olds:
        proof = view.consistency_proof(old, size)
    consistency_rate = count / (time.perf_counter() - started)
    del proof
    old = olds[0]
    tree_old = view.store.checkpoint_at(old)
    if tree_old is not None:
        from ledger.tlog.checkpoint import open_checkpoint

        cp_old = open_checkpoint(tree_old, view.log_key)
        verify_consistency(old, size, view.consistency_proof(old, size), cp_old.root_hash, root)
    return inclusion_rate, consistency_rate


def bench_pymerkle_proofs(folder: Path, size: int, count: int) -> dict[str, tuple[float, float]]:
    """Inclusion and consistency proofs/s of pymerkle's InmemoryTree and SqliteTree."""
    from pymerkle import InmemoryTree, SqliteTree

    out: dict[str, tuple[float, float]] = {}
    memory = InmemoryTree()
    for i in range(size):
        memory.append_entry(payload(i))
    with SqliteTree(str(folder / f"pymerkle-{size}.db")) as sqlite_tree:
        if sqlite_tree.get_size() != size:
            raise SystemExit(f"pymerkle sqlite tree has {sqlite_tree.get_size()} entries")
        for name, tree in (("inmemory", memory), ("sqlite", sqlite_tree)):
            rng = random.Random(1)
            indexes = [rng.randrange(1, size + 1) for _ in range(count)]
            started = time.perf_counter()
            for i in indexes:
                tree.prove_inclusion(i, size)
            inclusion_rate = count / (time.perf_counter() - started)
            olds = [rng.randrange(1, size) for _ in range(count)]
            started = time.perf_counter()
            for old in olds:
                tree.prove_consistency(old, size)
            out[name] = (inclusion_rate, count / (time.perf_counter() - started))
    return out


def bench_verify(view: LogView) -> float:
    size = view.latest().size
    started = time.perf_counter()
    verify_log(view, view.log_key)
    return size / (time.perf_counter() - started)


def _verify_in_child(url: str, queue: multiprocessing.Queue[tuple[float, float]]) -> None:
    from ledger.storage.sql import SqlLogStore

    view = LogView(SqlLogStore(url))
    rate = bench_verify(view)
    queue.put((rate, peak_rss_mb()))


def _pymerkle_in_child(
    folder: str, size: int, queue: multiprocessing.Queue[dict[str, float]]
) -> None:
    out = bench_pymerkle_append(Path(folder), size)
    out["rss"] = peak_rss_mb()
    queue.put(out)


def in_child(target: object, *args: object) -> object:
    """Run ``target(*args, queue)`` in a fresh process; its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def append_summary(rates: list[tuple[int, float]]) -> str:
    """Durable append rates of this run, and the largest size's rate over the smallest's."""
    listed = "; ".join(f"{size:,} entries {rate:,.0f}/s" for size, rate in rates)
    (small, small_rate), (large, large_rate) = min(rates), max(rates)
    return (
        f"durable appends, one run: {listed}; ratio at {large:,} / at {small:,} entries: "
        f"{large_rate / small_rate:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--proofs", type=int, default=2000, help="proofs generated per kind")
    parser.add_argument(
        "--pymerkle-max", type=int, default=1_000_000, help="largest size run on pymerkle"
    )
    parser.add_argument(
        "--append-only",
        action="store_true",
        help="measure appends only (no verification, pymerkle or proofs)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="amnesty-bench-") as tmp:
        folder = Path(tmp)
        last_view = None
        for size in sizes:
            gc.collect()
            rate, view = bench_append(folder, size)
            append_rss = peak_rss_mb()
            if args.append_only:
                print(f"size {size}: append {rate:,.0f}/s", file=sys.stderr)
                rows.append((size, rate, {}, None, append_rss, None))
                view.store.close()
                continue
            url = f"sqlite:///{folder / f'log-{size}.db'}"
            verify_rate, verify_rss = in_child(_verify_in_child, url)  # type: ignore[misc]
            pym: dict[str, float] = (
                in_child(_pymerkle_in_child, str(folder), size)  # type: ignore[assignment]
                if size <= args.pymerkle_max
                else {}
            )
            rows.append((size, rate, pym, verify_rate, append_rss, verify_rss))
            print(
                f"size {size}: append {rate:,.0f}/s, verify {verify_rate:,.0f}/s", file=sys.stderr
            )
            last_view = view
        largest = sizes[-1]
        if last_view is None:
            print(append_summary([(size, rate) for size, rate, *_ in rows]))
            return
        cold_inc, cold_cons = bench_proofs(last_view, largest, args.proofs)
        inc, cons = bench_proofs(last_view, largest, args.proofs)
        proofs: dict[str, tuple[float, float]] = {}
        if largest <= args.pymerkle_max:
            proofs = bench_pymerkle_proofs(folder, largest, args.proofs)

    def fmt(x: float | None) -> str:
        return "—" if x is None else f"{x:,.0f}"

    def ratio(a: float | None, b: float | None) -> str:
        return "—" if a is None or b is None else f"{a / b:.1f}x"

    print(
        "| entries | amnesty-ledger append, durable (entries/s) | pymerkle InmemoryTree, not "
        "durable | pymerkle SqliteTree | full verification (entries/s) "
        "| peak RSS: appender / verifier / pymerkle (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for size, rate, pym, verify_rate, append_rss, verify_rss in rows:
        print(
            f"| {size:,} | {fmt(rate)} | {fmt(pym.get('inmemory'))} | {fmt(pym.get('sqlite'))} "
            f"| {fmt(verify_rate)} | {append_rss:,.0f} / {verify_rss:,.0f} / {fmt(pym.get('rss'))} |"
        )
    print()
    mem = proofs.get("inmemory", (None, None))
    sql = proofs.get("sqlite", (None, None))
    print(
        f"| proofs at {largest:,} entries | amnesty-ledger (SQLite tiles, warm cache) "
        "| pymerkle InmemoryTree | ratio | pymerkle SqliteTree | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, ours, theirs in (
        ("inclusion proofs/s", inc, (mem[0], sql[0])),
        ("consistency proofs/s", cons, (mem[1], sql[1])),
    ):
        print(
            f"| {name} | {fmt(ours)} | {fmt(theirs[0])} | {ratio(ours, theirs[0])} "
            f"| {fmt(theirs[1])} | {ratio(ours, theirs[1])} |"
        )
    print(
        f"\nfirst pass (tiles read from SQLite): {fmt(cold_inc)} inclusion and {fmt(cold_cons)} "
        f"consistency proofs/s; warm inclusion proof latency: {1e3 / inc:.3f} ms"
    )
    print()
    print(append_summary([(size, rate) for size, rate, *_ in rows]))


if __name__ == "__main__":
    main()
