"""Benchmark durable appends over HTTP: a real ``amnesty serve`` (uvicorn) on loopback, many
concurrent clients submitting signed statements, each waiting for its receipt (index + proof,
sent only after the durable commit).

    .venv/bin/python scripts/bench_append_http.py --statements 5000 --clients 32
    .venv/bin/python scripts/bench_append_http.py --statements 20000 --clients 8 --batch 250

The statements (attestations by a demo grantee, each signed with Ed25519) are made before the
clock starts; the figures are the server's: submissions/s end to end, receipt latency
percentiles, and the age of the checkpoint that covers each entry when its receipt arrives.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.storage.sql import SqlLogStore
from tests.livelog import Attester, Server, make_demo_log


def _tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (``--workers N``: uvicorn's worker processes)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            pids.extend(_tree_pids(int(child)))
    return pids


def _process_cpu_seconds(server: Server) -> float:
    """User + system CPU so far of the server process and its worker processes (from /proc;
    a process that exited in between is not counted)."""
    assert server.process is not None
    total = 0
    for pid in _tree_pids(server.process.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _client_process(
    url: str,
    statements: list[bytes],
    threads: int,
    batch: int,
    ready: Any,
    go: Any,
    results: multiprocessing.Queue[object],
) -> None:
    """Submit ``statements`` from ``threads`` threads once ``go`` is set (after signalling
    ``ready``: the process has started and imported httpx, which must not be timed), one per
    request, or ``batch`` per request to ``/v1/statements/batch`` when ``batch`` > 1; put
    (latencies, failures) on ``results``: one latency per statement logged (its request's)."""
    lock = threading.Lock()
    groups = [statements[i : i + batch] for i in range(0, len(statements), batch)]
    cursor = iter(groups)
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    group = next(cursor, None)
                if group is None:
                    return
                started = time.perf_counter()
                if batch == 1:
                    response = http.post(url + "/v1/statements", content=group[0])
                    statuses = [response.status_code]
                else:
                    body = {"statements": [s.decode() for s in group]}
                    response = http.post(url + "/v1/statements/batch", json=body)
                    statuses = (
                        [r["status"] for r in response.json()["results"]]
                        if response.status_code == 200
                        else [response.status_code]
                    )
                elapsed = time.perf_counter() - started
                with lock:
                    for status in statuses:
                        if status == 201:
                            latencies.append(elapsed)
                        else:
                            failures.append(f"{status} {response.text[:200]}")

    pool = [threading.Thread(target=client) for _ in range(threads)]
    ready.release()
    go.wait()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    results.put((latencies, failures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in all")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="server processes (serve --workers)")
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="statements per request (>1: POST /v1/statements/batch; latency is per request)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amnesty-http-bench-") as tmp:
        folder = Path(tmp)
        db = make_demo_log(folder)
        store = SqlLogStore(db)
        origin = store.identity().origin
        attester = Attester(db, origin)
        store.close()
        statements = [attester.next(f"bench {i}") for i in range(args.statements)]
        extra = ["--workers", str(args.workers)] if args.workers > 1 else []
        server = Server(db, folder / "server.log", extra=extra)
        server.start()
        # Clients in several processes (threads within each), so that the load generator's
        # own GIL does not cap the rate it can offer.
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        share = [statements[i :: args.client_processes] for i in range(args.client_processes)]
        threads_each = max(1, args.clients // args.client_processes)
        ready = context.Semaphore(0)
        go = context.Event()
        processes = [
            context.Process(
                target=_client_process,
                args=(server.url, part, threads_each, args.batch, ready, go, results),
            )
            for part in share
        ]
        for process in processes:
            process.start()
        for _ in processes:  # the clock starts once every client process is up
            ready.acquire()
        cpu_before = _process_cpu_seconds(server)
        started = time.perf_counter()
        go.set()
        latencies: list[float] = []
        failures: list[str] = []
        for _ in processes:
            got, failed = results.get()
            latencies.extend(got)
            failures.extend(failed)
        elapsed = time.perf_counter() - started
        server_cpu = _process_cpu_seconds(server) - cpu_before
        for process in processes:
            process.join()
        server.stop()
    if failures:
        print(f"{len(failures)} failures, first: {failures[0]}", file=sys.stderr)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(
        "| statements | per request | clients | server processes | durable appends/s over HTTP "
        "| receipt latency p50 / p95 / p99 (ms) | server CPU per submission (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    cpu = f"{server_cpu / max(1, len(latencies)) * 1e3:.2f}"
    print(
        f"| {len(latencies):,} | {args.batch} | {args.clients} | {args.workers} "
        f"| {len(latencies) / elapsed:,.0f} "
        f"| {q[49] * 1e3:.1f} / {q[94] * 1e3:.1f} / {q[98] * 1e3:.1f} | {cpu} |"
    )


if __name__ == "__main__":
    main()
