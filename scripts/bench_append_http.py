"""Benchmark durable appends over HTTP: a real ``amnesty serve`` (uvicorn) on loopback, many
concurrent clients submitting signed statements, each waiting for its receipt (index + proof,
sent only after the durable commit).

    .venv/bin/python scripts/bench_append_http.py --statements 5000 --clients 32

The statements (attestations by a demo grantee, each signed with Ed25519) are made before the
clock starts; the figures are the server's: submissions/s end to end, receipt latency
percentiles, and the age of the checkpoint that covers each entry when its receipt arrives.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.storage.sql import SqlLogStore
from tests.livelog import Attester, Server, make_demo_log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amnesty-http-bench-") as tmp:
        folder = Path(tmp)
        db = make_demo_log(folder)
        store = SqlLogStore(db)
        origin = store.identity().origin
        attester = Attester(db, origin)
        store.close()
        statements = [attester.next(f"bench {i}") for i in range(args.statements)]
        server = Server(db, folder / "server.log")
        server.start()
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        cursor = iter(statements)

        def client() -> None:
            with httpx.Client(timeout=60) as http:
                while True:
                    with lock:
                        data = next(cursor, None)
                    if data is None:
                        return
                    started = time.perf_counter()
                    response = http.post(server.url + "/v1/statements", content=data)
                    elapsed = time.perf_counter() - started
                    with lock:
                        if response.status_code == 201:
                            latencies.append(elapsed)
                        else:
                            failures.append(f"{response.status_code} {response.text[:200]}")

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        server.stop()
    if failures:
        print(f"{len(failures)} failures, first: {failures[0]}", file=sys.stderr)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(
        "| statements | clients | durable appends/s over HTTP | receipt latency p50 / p95 / p99 (ms) |"
    )
    print("|---:|---:|---:|---:|")
    print(
        f"| {len(latencies):,} | {args.clients} | {len(latencies) / elapsed:,.0f} "
        f"| {q[49] * 1e3:.1f} / {q[94] * 1e3:.1f} / {q[98] * 1e3:.1f} |"
    )


if __name__ == "__main__":
    main()
