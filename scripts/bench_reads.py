"""Benchmark the read API: ``GET /v1/entries/{index}`` (the entry, its decoded statement, an
inclusion proof against the latest checkpoint and a C2SP tlog-proof) on a large log, over
loopback, against the real server process (``amnesty serve``).

    .venv/bin/python scripts/bench_reads.py                           # 1,000,000 entries
    .venv/bin/python scripts/bench_reads.py --entries 100000 --requests 2000

The log is a realistic demo log extended with ``amnesty demo --scale`` (applications,
decisions and attestations, every statement signed and admitted for real); it is built once in
``--dir`` and reused by later runs. The server runs read-only (no sequencer), and the benchmark
waits until the server's read side has replayed the whole log (``/healthz``) so that nothing
else runs during the measurement. Requests go one at a time over one keep-alive connection, to
uniformly random indexes: a first pass with a cold tile cache, then a second pass over other
random indexes. One answer in fifty is checked with the core's verifiers (checkpoint signature,
inclusion proof, tlog-proof), and every answer must be 200.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ledger.storage.sql import SqlLogStore
from ledger.tlog.checkpoint import open_checkpoint
from ledger.tlog.merkle import leaf_hash, verify_inclusion
from ledger.tlog.note import VerifierKey
from ledger.tlog.tlogproof import open_tlog_proof, parse_tlog_proof

REPO = Path(__file__).resolve().parents[1]


def amnesty(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ledger", *args], cwd=REPO, check=True)


def build_log(folder: Path, entries: int) -> tuple[str, str]:
    """The demo log of at least ``entries`` entries in ``folder`` (built if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{folder / 'ledger.db'}"
    keys = str(folder / "keys")
    if not (folder / "ledger.db").exists():
        print(f"building the demo log in {folder} ...", file=sys.stderr)
        amnesty("demo", "--db", db, "--keys", keys)
    store = SqlLogStore(db)
    try:
        size = int(store.checkpoint().split(b"\n")[1])
        vkey = store.identity().log_vkey
    finally:
        store.close()
    if size < entries:
        print(f"extending it from {size} to {entries} entries ...", file=sys.stderr)
        started = time.perf_counter()
        amnesty("demo", "--db", db, "--keys", keys, "--scale", str(entries - size))
        print(f"  took {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return db, vkey


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger",
                "serve",
                "--db",
                db,
                "--port",
                str(port),
                "--read-only",
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            stdout=log,
            stderr=log,
            env=dict(os.environ),
        )


def wait_ready(http: httpx.Client, process: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait until the server answers and its read side has replayed the log; return the size."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            health = http.get("/healthz").json()
            if health.get("size") is not None and health["protocol_state_size"] == health["size"]:
                return int(health["size"])
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become ready")


def server_memory_mb(pid: int) -> tuple[float, float]:
    """The server's resident set now and its high-water mark (VmRSS, VmHWM), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def check(answer: dict[str, object], key: VerifierKey) -> None:
    """Verify one answer as a client would."""
    head = answer["checkpoint"]
    entry = answer["entry"]
    assert isinstance(head, dict) and isinstance(entry, dict)
    checkpoint = open_checkpoint(head["checkpoint"].encode(), key)
    data = base64.b64decode(entry["entry_b64"])
    proof = [base64.b64decode(h) for h in entry["inclusion_proof"]]
    verify_inclusion(entry["index"], checkpoint.size, leaf_hash(data), proof, checkpoint.root_hash)
    tlog = answer["tlog_proof"]
    assert isinstance(tlog, str)
    open_tlog_proof(parse_tlog_proof(tlog.encode()), leaf_hash(data), key)


def run_pass(
    http: httpx.Client, size: int, count: int, rng: random.Random, key: VerifierKey
) -> list[float]:
    latencies = []
    for n in range(count):
        index = rng.randrange(size)
        started = time.perf_counter()
        response = http.get(f"/v1/entries/{index}")
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"GET /v1/entries/{index} answered {response.status_code}")
        if n % 50 == 0:
            check(response.json(), key)
        latencies.append(elapsed * 1000)
    return latencies


def summary(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    q = statistics.quantiles(ordered, n=100)
    total_s = sum(ordered) / 1000
    return (
        f"| {name} | {len(ordered):,} | {statistics.median(ordered):.2f} | {q[89]:.2f} | "
        f"{q[98]:.2f} | {ordered[-1]:.2f} | {len(ordered) / total_s:,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=5_000, help="per pass")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/amnesty-bench-reads"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    folder = args.dir / str(args.entries)
    db, vkey = build_log(folder, args.entries)
    key = VerifierKey.parse(vkey)
    port = free_port()
    process = start_server(db, port, folder / "server.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            started = time.perf_counter()
            size = wait_ready(http, process, timeout=1800)
            replayed_s = time.perf_counter() - started
            print(f"server ready: {size:,} entries in {replayed_s:.0f} s", file=sys.stderr)
            rng = random.Random(args.seed)
            cold = run_pass(http, size, args.requests, rng, key)
            warm = run_pass(http, size, args.requests, rng, key)
            one = http.get("/v1/entries/0").content
            memory = server_memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    print(f"\nGET /v1/entries/{{index}} at {size:,} entries, loopback, one connection")
    print(f"(answer ~{len(one):,} bytes: entry, statement, inclusion proof, tlog-proof)\n")
    print("| pass | requests | median (ms) | p90 (ms) | p99 (ms) | max (ms) | requests/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(summary("first (random indexes, cold tile cache)", cold))
    print(summary("second (other random indexes)", warm))
    print(
        f"\nServer: read side replayed {size:,} entries in {replayed_s:.0f} s at startup; "
        f"resident memory {memory[0]:,.0f} MB (peak {memory[1]:,.0f} MB)."
    )


if __name__ == "__main__":
    main()
