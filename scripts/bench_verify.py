"""Benchmark the verifier: full verification on all cores against the raw Ed25519 rate, memory,
and incremental verification after new entries. Rerun with::

    .venv/bin/python scripts/bench_verify.py                   # 1,000,000 entries
    .venv/bin/python scripts/bench_verify.py --entries 100000  # quicker

The log is the project's demo history scaled with ``ledger.statements.demo.scale_statements`` (what
``amnesty demo --scale N`` appends: new subjects apply and are decided, grantees attest), built
through the real sequencer and admission policy, and cached in ``--data`` (default
``data/bench``) so that reruns skip the build. Its last ``--new`` (1,000) entries are appended
after a checkpoint of their own.

What is measured, in one run:

1. raw Ed25519: ``crypto_sign_open`` (the call ``ledger.tlog.note`` makes) on a real statement, on
   one core and on two processes at once — the physical limit;
2. full verification with :func:`ledger.verifier.verify.verify_ledger` from the database, as of the
   checkpoint before the last ``--new`` entries, with ``--workers`` processes: entries/s and
   signatures/s (every statement's signatures; body statements carry 3 in this log), compared
   with (1); peak memory of the verifier process (``VmHWM``) and of the largest worker, and the
   verifier's resident memory sampled along the run;
3. the same run without statements (tree and chain only, :func:`ledger.verifier.verify.verify_log`),
   whose memory shows the streaming engine alone;
4. saving the trust state (JSON), then an incremental run from it up to the latest checkpoint:
   loading the state, proving consistency and verifying the new entries, saving the new state.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nacl.bindings

from ledger.server.admission import StatementPolicy
from ledger.server.logview import LogView
from ledger.server.sequencer import Prepared, Receipt, Sequencer
from ledger.statements.demo import DemoAuthor, DemoKeys, Ref, build_demo, scale_statements
from ledger.storage.base import LogIdentity
from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import Checkpoint, sign_checkpoint
from ledger.tlog.merkle import EMPTY_ROOT, leaf_hash
from ledger.tlog.note import Signer
from ledger.tlog.tiles import TileID
from ledger.verifier.trust import load_trust_state, save_trust_state
from ledger.verifier.verify import verify_ledger, verify_log

ORIGIN = "bench.amnesty-ledger.example/log"
BODY_TYPES = {
    "keyset",
    "offer",
    "offer_amendment",
    "offer_withdrawal",
    "decision",
    "enforcement_action",
    "violation_finding",
    "revocation",
    "grievance_answer",
    "batch_decision",
    "batch_grievance_answer",
}


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- building the log -------------------------------------------------------------------------

_POLICY: dict[str, StatementPolicy] = {}
"""The admission policy of a build worker process (set by its initializer)."""


def _init_prepare(origin: str) -> None:
    _POLICY["policy"] = StatementPolicy(origin)


def _prepare(data: bytes) -> Prepared:
    return _POLICY["policy"].prepare(data)


def build(path: Path, entries: int, new: int) -> dict[str, Any]:
    """Build (or reuse) the benchmark log; return its metadata."""
    meta_path = path.with_suffix(".json")
    if meta_path.exists() and path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if meta["entries"] == entries and meta["new"] == new:
            return meta
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    signer = Signer.from_seed(ORIGIN, b"\x07" * 32)
    store = SqlLogStore(url, create=True)
    store.create_log(
        LogIdentity(ORIGIN, signer.vkey, time.time_ns() // 1_000_000, None),
        sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), signer),
    )
    policy = StatementPolicy(ORIGIN)
    sequencer = Sequencer(store, signer, policy, max_batch=1 << 20)
    started = time.perf_counter()
    with ProcessPoolExecutor(
        os.cpu_count() or 1, initializer=_init_prepare, initargs=(ORIGIN,)
    ) as pool:

        def append(datas: Sequence[bytes]) -> list[tuple[int, bytes]]:
            prepared = list(pool.map(_prepare, datas, chunksize=64))
            out = []
            for result in sequencer.sequence_now(prepared):
                if not isinstance(result, Receipt):
                    raise result
                out.append((result.index, leaf_hash(result.entry)))
            return out

        author = DemoAuthor(
            ORIGIN, DemoKeys.deterministic(), append, lambda: time.time_ns() // 1_000_000
        )
        demo = build_demo(author)
        offer = demo.refs["offer"]

        def progress(done: int) -> None:
            if done % 50_000 < 1000:
                print(f"  built {demo.size + done:,} entries", file=sys.stderr, flush=True)

        scale_statements(author, offer, entries - new - demo.size, progress=progress)
        before = LogView(store).latest().size
        attest(author, demo.subjects, new)
    size = LogView(store).latest().size
    meta = {
        "entries": entries,
        "new": new,
        "size": size,
        "size_before_new": before,
        "log_vkey": signer.vkey,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    store.close()
    meta_path.write_text(json.dumps(meta))
    return meta


def attest(author: DemoAuthor, grantees: list[Ref], count: int) -> None:
    """``count`` attestations by the demo's grantees (fresh periods), in batches of 500."""
    keys = [author.keys.subject(name) for name in ("Prometheus-7", "Kestrel")]
    start = author.clock()
    for first in range(0, count, 500):
        author.many(
            [
                author.by_subject(
                    keys[n % 2],
                    "attestation",
                    author.attestation(grantees[n % 2], start + n, start + n + 1, f"Bench {n}."),
                )
                for n in range(first, min(count, first + 500))
            ]
        )


class AsOf:
    """The log as a source that serves an earlier checkpoint (the tiles it implies exist)."""

    def __init__(self, view: LogView, size: int) -> None:
        self.view = view
        self.note = view.checkpoint_at(size).note

    def checkpoint(self) -> bytes:
        return self.note

    def tile(self, tile: TileID) -> bytes:
        return self.view.tile(tile)


# -- raw Ed25519 ------------------------------------------------------------------------------


def _raw_loop(args: tuple[bytes, bytes, int]) -> float:
    signed, public_key, count = args
    started = time.perf_counter()
    for _ in range(count):
        nacl.bindings.crypto_sign_open(signed, public_key)
    return time.perf_counter() - started


def raw_ed25519(count: int) -> tuple[float, float]:
    """Verifications per second on one core, and on two processes at once."""
    signer = Signer.from_seed("raw.example", b"\x01" * 32)
    message = ("amnesty-ledger.statement/v1\n" + "x" * 560 + "\n").encode()
    signed = signer.sign(message) + message
    public_key = signer.verifier_key.public_key
    one = count / _raw_loop((signed, public_key, count))
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        started = time.perf_counter()
        pool.map(_raw_loop, [(signed, public_key, count)] * 2)
        two = 2 * count / (time.perf_counter() - started)
    return one, two


# -- the runs ---------------------------------------------------------------------------------


def signatures(types: dict[str, int]) -> int:
    return sum(n * (3 if t in BODY_TYPES else 1) for t, n in types.items())


def full_run(view: LogView, size: int, workers: int, statements: bool) -> dict[str, Any]:
    samples: list[tuple[int, float]] = []
    step = max(1, size // 10)

    def progress(done: int, total: int) -> None:
        if done // step != (done - 256) // step or done == total:
            samples.append((done, rss_mb()))

    source = AsOf(view, size)
    cpu_before = os.times()
    started = time.perf_counter()
    if statements:
        result = verify_ledger(source, view.log_key, workers=workers, progress=progress)
    else:
        result = verify_log(source, view.log_key, progress=progress)
    seconds = time.perf_counter() - started
    cpu = os.times()  # the workers have been joined: their CPU time is in children_*
    return {
        "result": result,
        "seconds": seconds,
        "rate": result.entries / seconds,
        "samples": samples,
        "peak_mb": rss_mb("VmHWM"),
        "cpu_self": cpu.user + cpu.system - cpu_before.user - cpu_before.system,
        "cpu_workers": cpu.children_user
        + cpu.children_system
        - cpu_before.children_user
        - cpu_before.children_system,
    }


def _full_child(queue: Any, db: str, size: int, workers: int, statements: bool) -> None:
    import resource

    view = LogView(SqlLogStore(db))
    out = full_run(view, size, workers, statements)
    result = out.pop("result")
    out["entries"] = result.entries
    out["types"] = result.details.get("statement_types", {})
    out["worker_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if statements:
        state = Path(db.removeprefix("sqlite:///") + ".trust.json")
        started = time.perf_counter()
        save_trust_state(state, result.trust_state(view.log_key))
        out["save_seconds"] = time.perf_counter() - started
        out["state_mb"] = state.stat().st_size / 1e6
    queue.put(out)


def in_child(db: str, size: int, workers: int, statements: bool) -> dict[str, Any]:
    """A full run in a fresh process, so that its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_full_child, args=(queue, db, size, workers, statements))
    process.start()
    out: dict[str, Any] = queue.get()
    process.join()
    return out


def incremental(db: str, workers: int | None) -> dict[str, Any]:
    view = LogView(SqlLogStore(db))
    path = Path(db.removeprefix("sqlite:///") + ".trust.json")
    started = time.perf_counter()
    trusted = load_trust_state(path, view.log_key)
    loaded = time.perf_counter()
    result = verify_ledger(view, view.log_key, trusted=trusted, workers=workers)
    verified = time.perf_counter()
    save_trust_state(path.with_suffix(".next.json"), result.trust_state(view.log_key))
    saved = time.perf_counter()
    return {
        "entries": result.entries,
        "start": result.start_size,
        "load": loaded - started,
        "verify": verified - loaded,
        "save": saved - verified,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path("data/bench"))
    args = parser.parse_args()

    path = (args.data / f"verify-{args.entries}.db").resolve()
    print(f"log: {path}", file=sys.stderr)
    meta = build(path, args.entries, args.new)
    db = f"sqlite:///{path}"
    size = meta["size_before_new"]
    print(f"log of {meta['size']:,} entries ready; verifying {size:,}", file=sys.stderr)

    one, two = raw_ed25519(30_000)
    full = in_child(db, size, args.workers, statements=True)
    one_after, two_after = raw_ed25519(30_000)
    plain = in_child(db, size, 0, statements=False)
    inc = incremental(db, None)

    sigs = signatures(full["types"])
    raw_one = (one + one_after) / 2
    raw_two = (two + two_after) / 2
    print(
        f"\nRun of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"log of {meta['size']:,} entries (demo history scaled; built in {meta['build_seconds']} s)\n"
    )
    print("| measure | value |")
    print("|---|---:|")
    print(
        f"| raw Ed25519 verify, 1 core (before / after the run) | {one:,.0f} / {one_after:,.0f} per s |"
    )
    print(
        f"| raw Ed25519 verify, 2 processes (before / after) | {two:,.0f} / {two_after:,.0f} per s |"
    )
    print(
        f"| full verification, {args.workers} workers: entries | {full['entries']:,} in {full['seconds']:.1f} s = **{full['rate']:,.0f} entries/s** |"
    )
    print(
        f"| signatures verified (body statements carry 3) | {sigs:,} = {sigs / full['seconds']:,.0f} per s |"
    )
    print(f"| entries/s vs raw verify rate, 1 core | **{full['rate'] / raw_one:.0%}** |")
    entries = full["entries"]
    per_entry = (full["cpu_self"] + full["cpu_workers"]) / entries * 1e6
    ed25519 = sigs / entries / raw_one * 1e6
    print(
        f"| CPU per entry: verifier process + workers | {full['cpu_self'] / entries * 1e6:.0f} + "
        f"{full['cpu_workers'] / entries * 1e6:.0f} = {per_entry:.0f} µs, of which Ed25519 "
        f"{ed25519:.0f} µs ({ed25519 / per_entry:.0%}) |"
    )
    print(
        f"| cores kept busy / entries/s if 2 cores were free | "
        f"{(full['cpu_self'] + full['cpu_workers']) / full['seconds']:.2f} / "
        f"{2e6 / per_entry:,.0f} ({2e6 / per_entry / raw_one:.0%} of the 1-core raw rate) |"
    )
    print(
        f"| signatures/s vs raw verify rate, 2 processes | **{sigs / full['seconds'] / raw_two:.0%}** |"
    )
    print(
        f"| peak memory: verifier process / largest worker | {full['peak_mb']:,.0f} MB / {full['worker_peak_mb']:,.0f} MB |"
    )
    print(
        f"| tree and chain only (no statements), 1 process | {plain['rate']:,.0f} entries/s, peak {plain['peak_mb']:,.0f} MB |"
    )
    print(
        f"| trust state written after the full run | {full['state_mb']:,.1f} MB JSON in {full['save_seconds']:.2f} s |"
    )
    print(
        f"| incremental: {inc['entries']:,} new entries from size {inc['start']:,} | load state {inc['load']:.2f} s + verify {inc['verify']:.2f} s + save state {inc['save']:.2f} s = **{inc['load'] + inc['verify'] + inc['save']:.2f} s** |"
    )
    print("\nResident memory of the verifier along the full run (entries verified: MB):")
    print(
        "  with statements and protocol: "
        + ", ".join(f"{d:,}: {m:,.0f}" for d, m in full["samples"])
    )
    print(
        "  tree and chain only:          "
        + ", ".join(f"{d:,}: {m:,.0f}" for d, m in plain["samples"])
    )


if __name__ == "__main__":
    main()
