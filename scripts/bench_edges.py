"""Measure what the hardened edges cost each request: :class:`~api.limits.RequestDeadline` (a
task per request, so that no request waits past its bound) and :class:`~api.limits.HeaderLimits`.

    .venv/bin/python scripts/bench_edges.py                 # 50,000 calls
    .venv/bin/python scripts/bench_edges.py --calls 200000

In one run, in process (no network, so the middleware's own cost is not hidden by it): an
ASGI app that answers 200 at once is called directly, bare and behind the edges, alternating
rounds; prints the microseconds per call of each and the overhead, then, for scale, the time a
real ``GET /checkpoint`` takes over loopback against ``amnesty serve`` on a demo log.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from starlette.types import Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.limits import HeaderLimits, RequestDeadline
from tests.livelog import Server, make_demo_log


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _round(app: object, calls: int) -> float:
    """Seconds per call of ``calls`` calls of ``app``."""
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/checkpoint",
        "headers": [(b"host", b"x"), (b"user-agent", b"bench")],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    started = time.perf_counter()
    for _ in range(calls):
        await app(scope, receive, send)  # type: ignore[operator]
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    edged = HeaderLimits(RequestDeadline(_ok, seconds=15.0), max_count=64, max_bytes=16384)
    bare_times: list[float] = []
    edged_times: list[float] = []
    for _ in range(args.rounds):
        bare_times.append(asyncio.run(_round(_ok, args.calls)))
        edged_times.append(asyncio.run(_round(edged, args.calls)))
    bare = statistics.median(bare_times) * 1e6
    with_edges = statistics.median(edged_times) * 1e6
    print(f"bare ASGI app:          {bare:7.2f} µs/call")
    print(f"behind the edges:       {with_edges:7.2f} µs/call")
    print(f"overhead:               {with_edges - bare:7.2f} µs/call ({with_edges / bare:.1f}x)")

    with tempfile.TemporaryDirectory() as folder:
        db = make_demo_log(Path(folder))
        server = Server(db, Path(folder) / "server.log")
        server.start()
        try:
            with httpx.Client() as client:
                for _ in range(200):
                    client.get(server.url + "/checkpoint")
                started = time.perf_counter()
                count = 2000
                for _ in range(count):
                    assert client.get(server.url + "/checkpoint").status_code == 200
                real = (time.perf_counter() - started) / count * 1e6
        finally:
            server.stop()
    print(f"GET /checkpoint, loopback, amnesty serve: {real:7.1f} µs/request")
    print(f"the edges' share of it: {(with_edges - bare) / real:.1%}")


if __name__ == "__main__":
    main()
